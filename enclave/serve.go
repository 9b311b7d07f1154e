package enclave

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/envelope"
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
	// Signer receives the keys of every load: the running signer. Nil
	// means a KeyDirSigner writing KeyDir and InterchangeFile (no reload
	// call): Web3Signer then needs a restart or POST /reload to see them.
	Signer Signer
	// GenesisRoot returns the genesis validators root of a network named
	// in a record (the network table, depositdata). When set, a request
	// whose root is not the one of every record's network is refused;
	// when nil, the request's root is trusted as the parent sent it.
	// The enclave adapter wires depositdata's network table here.
	GenesisRoot func(network string) ([32]byte, bool)
	// MaxMemory bounds opening keystore-format secrets (one scrypt run
	// each, 256 MiB): custody.Workers(MaxMemory, ScryptWorkerMemory) run
	// at once (custody.DefaultMaxMemory if 0).
	MaxMemory int64
	// MaxMessageSize bounds the request (MaxMessageSize if 0).
	MaxMessageSize int
}

func (cfg *Config) signer() Signer {
	if cfg.Signer != nil {
		return cfg.Signer
	}
	return &KeyDirSigner{Dir: cfg.KeyDir, InterchangeFile: cfg.InterchangeFile}
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
	if (cfg.Signer == nil && (cfg.KeyDir == "" || cfg.InterchangeFile == "")) || cfg.NewOpener == nil {
		return errors.New("enclave: Config needs NewOpener, and a Signer or KeyDir and InterchangeFile")
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
	if msg.Type == TypeSignExits || msg.Type == TypeSignBLSChanges {
		return serveSign(ctx, conn, msg, cfg, log)
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
	root, err := web3signer.ParseRoot(req.GenesisValidatorsRoot)
	if err != nil {
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
		case r.Status == store.StatusDeposited && r.Interchange == nil && !req.NoSlashingHistory:
			ks.Status, ks.Reason = KeyRefused, "taken over without its previous signer's slashing-protection history"
			ks.NeedsSlashingHistory = true
		case r.Status == store.StatusDeposited:
			ks.NeedsSlashingHistory = r.Interchange == nil
		case r.Status == store.StatusExported:
			// Never on a signer (no history), or released from one with
			// the history that signer returned.
		case r.Status == store.StatusGenerated:
			if r.Interchange != nil {
				ks.Status, ks.Reason = KeyFailed, "a key that never signed comes with a signing history"
			}
		default:
			ks.Status, ks.Reason = KeyRefused, "unknown status"
		}
		if ks.Status == KeySkipped && cfg.GenesisRoot != nil {
			want, ok := cfg.GenesisRoot(r.Network)
			switch {
			case !ok:
				ks.Status, ks.Reason = KeyRefused, "unknown network"
			case web3signer.CheckGenesisRoot(want, root) != nil:
				ks.Status, ks.Reason = KeyRefused, "the request's genesis validators root is not its network's"
			}
		}
		if ks.Status == KeySkipped && r.Interchange != nil {
			if _, err := web3signer.KeyInterchange(r.Interchange, root, r.Pubkey); err != nil {
				ks.Status, ks.Reason = KeyRefused, historyReason(err)
			}
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
	var failed atomic.Bool
	// Every record is tried (each failure reported), on every core within
	// MaxMemory; each opened secret becomes a hand-off keystore at once
	// and is destroyed.
	handoffs, err := web3signer.PrepareHandoffs(ctx, len(req.Records), custody.Workers(cfg.MaxMemory, custody.ScryptWorkerMemory),
		func(ctx context.Context, i int) (web3signer.Opened, error) {
			r := req.Records[i]
			s, err := opener.OpenRecord(ctx, r.store())
			if err != nil {
				failed.Store(true)
				res.Keys[i].Status, res.Keys[i].Reason = KeyFailed, reasonOf(err)
				// The error chain names no secret (envelope and custody
				// promise it); it may name AWS error codes.
				log.Error("opening a record", slog.String("pubkey", short(r.Pubkey)), slog.String("error", err.Error()))
				return web3signer.Opened{}, nil
			}
			log.Debug("record opened and verified", slog.String("pubkey", short(r.Pubkey)), slog.String("format", string(s.Format)))
			return s.Handoff(), nil
		})
	defer func() {
		for _, h := range handoffs {
			h.Destroy()
		}
	}()
	if err != nil {
		log.Error("opening records", slog.String("error", err.Error()))
		return refuse(res, "opening the records was interrupted; nothing was loaded")
	}
	if failed.Load() {
		return refuse(res, "some keys did not open; nothing was loaded")
	}

	hist := make([]web3signer.KeyHistory, 0, len(req.Records))
	withHistory := 0
	for _, r := range req.Records {
		// A takeover key without history gets here only when the operator
		// said none exists (NoSlashingHistory): it loads with an empty one.
		hist = append(hist, web3signer.KeyHistory{Pubkey: r.Pubkey, Previous: r.Interchange})
		if r.Interchange != nil {
			withHistory++
		}
	}
	interchange, err := web3signer.BuildInterchange(root, hist)
	if err != nil {
		log.Error("building the interchange", slog.String("error", err.Error()))
		return refuse(res, "cannot build the slashing protection interchange")
	}
	outcomes, err := cfg.signer().Load(ctx, handoffs, root, interchange)
	if err != nil {
		log.Error("handing the keys to the signer", slog.String("error", err.Error()))
		return refuse(res, "the signer did not take the keys; nothing was loaded")
	}
	loaded := 0
	for i, o := range outcomes {
		if o.Loaded {
			res.Keys[i].Status = KeyLoaded
			loaded++
		} else {
			res.Keys[i].Status, res.Keys[i].Reason = KeyFailed, o.Reason
		}
	}
	log.Info("keys handed to the signer", slog.Int("count", len(handoffs)), slog.Int("loaded", loaded), slog.Int("with_history", withHistory))
	if loaded != len(handoffs) {
		// A Keymanager API import is not atomic: the keys marked loaded
		// are live on the signer.
		return refuse(res, "the signer did not load every key; those marked loaded are live on it")
	}
	res.OK = true
	return res
}

func historyReason(err error) string {
	switch {
	case errors.Is(err, web3signer.ErrGenesisRoot):
		return "its signing history is for another network"
	case errors.Is(err, web3signer.ErrInterchangeKey):
		return "its signing history is another key's"
	default:
		return "its signing history is not a valid interchange"
	}
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
