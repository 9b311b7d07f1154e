package enclave

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/ops"
	"github.com/ethkeygen/ethkeygen/store"
)

// serveSign answers a sign request (exits or BLS changes) with a Signed
// message: the signed messages, or none and the reasons.
func serveSign(ctx context.Context, conn io.ReadWriter, msg *Message, cfg Config, log *slog.Logger) error {
	req := msg.Sign
	defer func() { req.Credentials = Credentials{} }()
	log.Info("sign request", slog.String("type", msg.Type), slog.Any("request", req))
	res := sign(ctx, msg.Type, req, cfg, log)
	if err := WriteMessage(conn, &Message{Type: TypeSigned, Signed: res}); err != nil {
		log.Error("sending the signed messages", slog.String("error", err.Error()))
		return err
	}
	if !res.OK {
		return fmt.Errorf("%w: %s", ErrRefused, res.Error)
	}
	return nil
}

func refuseSign(res *Signed, msg string) *Signed {
	res.OK, res.Error, res.Exits, res.BLSChanges = false, msg, nil, nil
	return res
}

// stateOf is the ledger state the parent sent for an item (nil: none).
func stateOf(it SignItem) *store.KeyState {
	if it.State == "" {
		return nil
	}
	return &store.KeyState{Pubkey: it.Record.Pubkey, State: it.State}
}

// sign checks every item by custody's rules before opening anything, then
// opens each record (authenticated by the generator's key, its secret
// deriving its pubkey), signs with package ops, verifies, and returns the
// messages only if every item signed.
func sign(ctx context.Context, typ string, req *SignRequest, cfg Config, log *slog.Logger) *Signed {
	res := &Signed{}
	if req.Version != ProtocolVersion {
		return refuseSign(res, fmt.Sprintf("protocol version %d, want %d", req.Version, ProtocolVersion))
	}
	exits := typ == TypeSignExits
	var to depositdata.Address
	if exits {
		if err := ops.CheckEpoch(req.Epoch); err != nil {
			return refuseSign(res, "epoch out of range")
		}
	} else {
		a, err := depositdata.ParseAddress(req.ToExecutionAddress, true)
		if err != nil {
			return refuseSign(res, "the withdrawal address is not an execution address")
		}
		to = a
	}
	recs := make([]*store.Record, len(req.Items))
	creds := make([][32]byte, len(req.Items))
	seen := map[string]bool{}
	refused := false
	for i, it := range req.Items {
		rec := it.Record.store()
		recs[i] = rec
		ks := KeyStatus{Pubkey: rec.Pubkey, Status: KeySkipped}
		var err error
		switch {
		case !store.ValidPubkey(rec.Pubkey):
			ks.Status, ks.Reason = KeyFailed, "malformed pubkey"
		case seen[rec.Pubkey]:
			ks.Status, ks.Reason = KeyFailed, "pubkey repeated"
		case ops.CheckValidatorIndex(it.ValidatorIndex) != nil:
			ks.Status, ks.Reason = KeyFailed, "validator index out of range"
		case exits:
			err = custody.CheckExitRecorded(rec, stateOf(it))
		default:
			err = custody.CheckSignableState(rec, stateOf(it))
		}
		if err != nil {
			ks.Status, ks.Reason = KeyRefused, stateReason(it.State)
		}
		if ks.Status == KeySkipped && !exits {
			c, cerr := credentialsOf(rec)
			switch {
			case cerr != nil:
				ks.Status, ks.Reason = KeyFailed, "malformed withdrawal credentials"
			case c[0] != depositdata.BLSWithdrawalPrefix:
				ks.Status, ks.Reason = KeyRefused, "withdrawal credentials are not 0x00: they already name an address"
			case rec.SealedMnemonic != nil:
				ks.Status, ks.Reason = KeyRefused, "its mnemonic is sealed under a separate key the enclave cannot open"
			}
			creds[i] = c
		}
		if ks.Status != KeySkipped {
			refused = true
			log.Warn("key refused", slog.String("pubkey", short(rec.Pubkey)), slog.String("reason", ks.Reason))
		}
		seen[rec.Pubkey] = true
		res.Keys = append(res.Keys, ks)
	}
	if refused {
		return refuseSign(res, "some keys may not be signed for here; nothing was signed")
	}
	n, err := custody.NetworkOf(recs, req.CapellaForkVersion, req.GenesisValidatorsRoot)
	if err != nil {
		return refuseSign(res, "the network's chain constants are unknown or do not fit")
	}
	if cfg.GenesisRoot != nil {
		if want, ok := cfg.GenesisRoot(n.Name); ok && want != n.GenesisValidatorsRoot {
			return refuseSign(res, "the request's genesis validators root is not its network's")
		}
	}
	op, err := cfg.NewOpener(ctx, req.Region, req.Credentials)
	if err != nil {
		log.Error("making the opener", slog.String("error", err.Error()))
		return refuseSign(res, "cannot reach the key service")
	}
	opener := custody.NewOpener(nil, op, cfg.Verifier)
	failed := false
	for i, it := range req.Items {
		var b []byte
		var err error
		if exits {
			b, err = signExit(ctx, opener, recs[i], it.ValidatorIndex, req.Epoch, n)
		} else {
			b, err = signBLSChange(ctx, cfg, op, recs[i], it.ValidatorIndex, creds[i], to, n)
		}
		if err != nil {
			failed = true
			res.Keys[i].Status, res.Keys[i].Reason = KeyFailed, signReason(err)
			log.Error("signing", slog.String("pubkey", short(recs[i].Pubkey)), slog.String("error", err.Error()))
			continue
		}
		res.Keys[i].Status = KeySigned
		if exits {
			res.Exits = append(res.Exits, b)
		} else {
			res.BLSChanges = append(res.BLSChanges, b)
		}
	}
	if failed {
		return refuseSign(res, "some keys did not open or sign; nothing was signed")
	}
	log.Info("signed", slog.String("type", typ), slog.Int("count", len(req.Items)))
	res.OK = true
	return res
}

func signExit(ctx context.Context, opener *custody.Opener, rec *store.Record, vi, epoch uint64, n depositdata.Network) ([]byte, error) {
	s, err := opener.OpenRecord(ctx, rec)
	if err != nil {
		return nil, err
	}
	x, err := ops.SignExit(s.SigningKey(), vi, epoch, n)
	s.Destroy()
	if err != nil {
		return nil, err
	}
	if err := ops.VerifyExit(x, pubkeyOf(rec), n); err != nil {
		return nil, err
	}
	return ops.MarshalExit(x)
}

func signBLSChange(ctx context.Context, cfg Config, op envelope.Opener, rec *store.Record, vi uint64, creds [32]byte, to depositdata.Address, n depositdata.Network) ([]byte, error) {
	// The mnemonic sealed with the key (a separately sealed one was
	// refused above): custody authenticates the record, opens it and
	// derives m/12381/3600/i/0, which SignBLSChange checks against creds.
	wk, err := custody.OpenWithdrawalKey(ctx, cfg.Verifier, op, nil, rec)
	if err != nil {
		return nil, err
	}
	c, err := ops.SignBLSChange(wk, vi, creds, to, n)
	wk.Destroy()
	if err != nil {
		return nil, err
	}
	if err := ops.VerifyBLSChange(c, n); err != nil {
		return nil, err
	}
	b, err := ops.MarshalBLSChanges([]*ops.SignedBLSToExecutionChange{c})
	if err != nil {
		return nil, err
	}
	var one []json.RawMessage
	if err := json.Unmarshal(b, &one); err != nil || len(one) != 1 {
		return nil, fmt.Errorf("enclave: encoding the BLS change: %v", err)
	}
	return one[0], nil
}

func credentialsOf(rec *store.Record) ([32]byte, error) {
	b, err := hex.DecodeString(rec.WithdrawalCredentials)
	if err != nil || len(b) != 32 {
		return [32]byte{}, errors.New("malformed withdrawal credentials")
	}
	return [32]byte(b), nil
}

func pubkeyOf(rec *store.Record) []byte {
	b, _ := hex.DecodeString(rec.Pubkey)
	return b
}

// stateReason is the fixed phrase for a state custody refuses.
func stateReason(s store.Status) string {
	switch s {
	case store.StatusRetired:
		return "retired"
	case "":
		return "never exported"
	default:
		return "not marked exit-signed in the ledger"
	}
}

// signReason maps a failure to open or sign to a fixed phrase.
func signReason(err error) string {
	switch {
	case errors.Is(err, ops.ErrInvalid):
		return "the signed message does not verify"
	default:
		return reasonOf(err)
	}
}
