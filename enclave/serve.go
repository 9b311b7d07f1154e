package enclave

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/web3signer"
)

// Config is what Serve needs.
type Config struct {
	// KeyDir is the Web3Signer key directory to write, on an in-memory
	// filesystem inside the enclave (a tmpfs). Required.
	KeyDir string
	// InterchangeFile is where the empty EIP-3076 interchange of the new
	// keys is written (outside KeyDir). Required.
	InterchangeFile string
	// NewOpener makes the envelope.Opener for a request from the
	// forwarded credentials: in production a KMS client reaching KMS
	// through the vsock proxy, wrapped by envelope.NewNitroKMSOpener with
	// the NSM attester. Required.
	NewOpener func(ctx context.Context, region string, creds Credentials) (envelope.Opener, error)
	// Verifier is the generator's verification key, configured in the
	// enclave image (never taken from the parent): a record it does not
	// authenticate is not opened. Required.
	Verifier provenance.Verifier
	// Logger receives structured logs; nil discards them. No secret is
	// ever logged.
	Logger *slog.Logger
	// WriteOptions are passed to web3signer.WriteKeyDir (for example
	// web3signer.RawConfigs, or WithKeystoreOptions in tests).
	WriteOptions []web3signer.Option
	// MaxMessageSize bounds the request (MaxMessageSize if 0).
	MaxMessageSize int
}

// deadliner is implemented by net.Conn.
type deadliner interface{ SetDeadline(time.Time) error }

// Serve handles one load request on conn: it reads the request, opens every
// record through the custody pipeline with cfg.NewOpener, checks statuses,
// and writes the Web3Signer key directory and the interchange. It answers
// with a Result in every case it can (per-key statuses, never key
// material) and returns an error wrapping ErrRefused if nothing was
// loaded, or the transport or protocol error.
//
// Loading is all-or-nothing: if any key is refused or fails, no file is
// written.
func Serve(ctx context.Context, conn io.ReadWriter, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.KeyDir == "" || cfg.InterchangeFile == "" || cfg.NewOpener == nil {
		return errors.New("enclave: Config needs KeyDir, InterchangeFile and NewOpener")
	}
	if d, ok := conn.(deadliner); ok {
		if dl, ok := ctx.Deadline(); ok {
			_ = d.SetDeadline(dl)
		}
	}
	if c, ok := conn.(io.Closer); ok {
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		defer stop()
	}
	msg, err := ReadMessage(conn, cfg.MaxMessageSize)
	if err != nil {
		log.Error("reading the request", slog.String("error", err.Error()))
		if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrProtocol) {
			replyError(conn, err)
		}
		return err
	}
	if msg.Type != TypeLoad {
		err := fmt.Errorf("%w: expected a load request, got %q", ErrProtocol, msg.Type)
		replyError(conn, err)
		return err
	}
	req := msg.Load
	defer func() { req.Credentials = Credentials{} }()
	log.Info("load request", slog.Any("request", req))
	res := load(ctx, req, cfg, log)
	if err := WriteMessage(conn, &Message{Type: TypeResult, Result: res}); err != nil {
		log.Error("sending the result", slog.String("error", err.Error()))
		return err
	}
	if !res.OK {
		return fmt.Errorf("%w: %s", ErrRefused, res.Error)
	}
	return nil
}

// replyError tells the parent why its request was not read, best effort:
// the parent may still be writing, so the reply must not block for long.
func replyError(conn io.ReadWriter, err error) {
	if d, ok := conn.(deadliner); ok {
		_ = d.SetDeadline(time.Now().Add(2 * time.Second))
	}
	_ = WriteMessage(conn, &Message{Type: TypeResult, Result: &Result{Error: err.Error()}})
}

func refuse(res *Result, msg string) *Result {
	res.OK = false
	res.Error = msg
	return res
}

// load does the work of Serve; every failure is reported in the Result.
func load(ctx context.Context, req *LoadRequest, cfg Config, log *slog.Logger) *Result {
	res := &Result{}
	switch {
	case req.Version != ProtocolVersion:
		return refuse(res, fmt.Sprintf("protocol version %d, want %d", req.Version, ProtocolVersion))
	case len(req.Records) == 0:
		return refuse(res, "no records")
	case len(req.Records) > MaxRecords:
		return refuse(res, fmt.Sprintf("%d records, at most %d", len(req.Records), MaxRecords))
	}
	if _, err := web3signer.EmptyInterchange(req.GenesisValidatorsRoot, nil); err != nil {
		return refuse(res, "genesis validators root is not 32 bytes of hex")
	}

	// Statuses first: a refused key stops the load before any Decrypt.
	seen := map[string]bool{}
	refused := false
	for _, r := range req.Records {
		ks := KeyStatus{Pubkey: r.Pubkey, Status: KeySkipped}
		switch {
		case !store.ValidPubkey(r.Pubkey):
			ks.Status, ks.Reason = KeyFailed, "malformed pubkey"
		case seen[r.Pubkey]:
			ks.Status, ks.Reason = KeyFailed, "pubkey repeated"
		case r.Status == store.StatusRetired:
			ks.Status, ks.Reason = KeyRefused, "retired"
		case r.Status == store.StatusDeposited && !req.Takeover:
			ks.Status, ks.Reason = KeyRefused, "deposited: may be active on another signer (takeover not requested)"
		case r.Status == store.StatusDeposited:
			ks.NeedsSlashingHistory = true
		case r.Status == store.StatusGenerated || r.Status == store.StatusExported:
		default:
			ks.Status, ks.Reason = KeyRefused, "unknown status"
		}
		if ks.Status != KeySkipped {
			refused = true
			log.Warn("key refused", slog.String("pubkey", short(r.Pubkey)), slog.String("reason", ks.Reason))
		}
		seen[r.Pubkey] = true
		res.Keys = append(res.Keys, ks)
	}
	if refused {
		return refuse(res, "some keys may not be loaded here; nothing was loaded")
	}

	op, err := cfg.NewOpener(ctx, req.Region, req.Credentials)
	if err != nil {
		log.Error("making the opener", slog.String("error", err.Error()))
		return refuse(res, "cannot reach the key service")
	}
	opener := custody.NewOpener(nil, op, cfg.Verifier)
	secrets := make([]*custody.Secret, 0, len(req.Records))
	defer func() {
		for _, s := range secrets {
			s.Destroy()
		}
	}()
	keys := make([]web3signer.Key, 0, len(req.Records))
	var fresh []string
	failed := false
	for i, r := range req.Records {
		s, err := opener.OpenRecord(ctx, r.store())
		if err != nil {
			failed = true
			res.Keys[i].Status, res.Keys[i].Reason = KeyFailed, reasonOf(err)
			// The error chain names no secret (envelope and custody
			// promise it); it may name AWS error codes.
			log.Error("opening a record", slog.String("pubkey", short(r.Pubkey)), slog.String("error", err.Error()))
			continue
		}
		secrets = append(secrets, s)
		log.Debug("record opened and verified", slog.String("pubkey", short(r.Pubkey)), slog.String("format", string(s.Format)))
		k := web3signer.Key{Pubkey: r.Pubkey, SecretKey: s.SigningKey()}
		if s.Format == custody.FormatKeystore && s.Keystore != nil {
			k.Keystore, k.Password = s.Keystore, s.UnsafePassword()
		}
		keys = append(keys, k)
		if !res.Keys[i].NeedsSlashingHistory {
			fresh = append(fresh, r.Pubkey)
		}
	}
	if failed {
		return refuse(res, "some keys did not open; nothing was loaded")
	}

	interchange, err := web3signer.EmptyInterchange(req.GenesisValidatorsRoot, fresh)
	if err != nil {
		return refuse(res, "cannot build the slashing protection interchange")
	}
	if err := os.MkdirAll(filepath.Dir(cfg.InterchangeFile), 0o700); err != nil {
		log.Error("interchange directory", slog.String("error", err.Error()))
		return refuse(res, "cannot write the slashing protection interchange")
	}
	if err := fsutil.WriteFileAtomic(cfg.InterchangeFile, interchange, 0o600); err != nil {
		log.Error("writing the interchange", slog.String("error", err.Error()))
		return refuse(res, "cannot write the slashing protection interchange")
	}
	if err := web3signer.WriteKeyDir(cfg.KeyDir, keys, cfg.WriteOptions...); err != nil {
		_ = os.Remove(cfg.InterchangeFile)
		log.Error("writing the key directory", slog.String("error", err.Error()))
		return refuse(res, "cannot write the key directory; nothing was loaded")
	}
	for i := range res.Keys {
		res.Keys[i].Status = KeyLoaded
	}
	res.OK = true
	log.Info("keys loaded", slog.Int("count", len(keys)), slog.Int("new", len(fresh)), slog.String("dir", cfg.KeyDir))
	return res
}

// reasonOf maps an open failure to a fixed phrase for the parent.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, envelope.ErrAuth):
		return "sealed secret does not authenticate"
	case errors.Is(err, envelope.ErrProvider):
		return "key service refused or failed"
	case errors.Is(err, custody.ErrForged):
		return "record not made by the generator"
	case errors.Is(err, custody.ErrSecret):
		return "secret does not match its record"
	case errors.Is(err, envelope.ErrFormat):
		return "malformed sealed secret"
	default:
		return "could not be opened"
	}
}

func short(pubkey string) string {
	if len(pubkey) > 16 {
		return "0x" + pubkey[:16]
	}
	return "0x" + pubkey
}
