package parent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/enclave"
	"github.com/ethkeygen/ethkeygen/internal/opsfile"
	"github.com/ethkeygen/ethkeygen/ops"
	"github.com/ethkeygen/ethkeygen/store"
)

// OpsCustodian is what SignExits and SignBLSChanges need of custody.
// *custody.Custodian satisfies it.
type OpsCustodian interface {
	SelectSignable(ctx context.Context, sel custody.OpsSelection) ([]*store.Record, []custody.Skipped, error)
	MarkExitSigned(ctx context.Context, pubkey string) (*store.KeyState, error)
	Get(ctx context.Context, pubkey string) (*store.Record, *store.KeyState, error)
}

var _ OpsCustodian = (*custody.Custodian)(nil)

// SignRequest names the keys to sign for and what to sign.
type SignRequest struct {
	Region      string
	Credentials enclave.Credentials
	Pubkeys     []string // lowercase hex, no 0x; in this order
	// ValidatorIndices are the keys' beacon chain indices, in Pubkeys'
	// order.
	ValidatorIndices []uint64
	Epoch            uint64 // exits
	// ToExecutionAddress is the BLS changes' address (EIP-55 checked by
	// the caller).
	ToExecutionAddress string
	// CapellaForkVersion and GenesisValidatorsRoot: a devnet's constants.
	CapellaForkVersion, GenesisValidatorsRoot string
}

// Signed is what came back, checked: the exits with their pubkeys or the
// changes with the credentials they replace, on Network.
type Signed struct {
	Network    depositdata.Network
	Exits      []opsfile.Exit
	BLSChanges []*ops.SignedBLSToExecutionChange
	Creds      [][32]byte
	Result     *enclave.Signed
}

func selectFor(ctx context.Context, cust OpsCustodian, req SignRequest) ([]*store.Record, depositdata.Network, error) {
	if len(req.Pubkeys) == 0 || len(req.Pubkeys) > enclave.MaxRecords {
		return nil, depositdata.Network{}, fmt.Errorf("parent: %d pubkeys (1 to %d)", len(req.Pubkeys), enclave.MaxRecords)
	}
	if len(req.ValidatorIndices) != len(req.Pubkeys) {
		return nil, depositdata.Network{}, fmt.Errorf("parent: %d validator index(es) for %d key(s): give one index per key, in key order", len(req.ValidatorIndices), len(req.Pubkeys))
	}
	recs, _, err := cust.SelectSignable(ctx, custody.OpsSelection{Pubkeys: req.Pubkeys})
	if err != nil {
		return nil, depositdata.Network{}, fmt.Errorf("parent: %w", err)
	}
	n, err := custody.NetworkOf(recs, req.CapellaForkVersion, req.GenesisValidatorsRoot)
	if err != nil {
		return nil, n, fmt.Errorf("parent: %w", err)
	}
	return recs, n, nil
}

func exchange(ctx context.Context, conn io.ReadWriter, typ string, sr *enclave.SignRequest, log *slog.Logger) (*enclave.Signed, error) {
	log.Info("sending sign request", slog.String("type", typ), slog.Any("request", sr))
	if err := enclave.WriteMessage(conn, &enclave.Message{Type: typ, Sign: sr}); err != nil {
		return nil, err
	}
	msg, err := enclave.ReadMessage(conn, 0)
	if err != nil {
		return nil, err
	}
	if msg.Type != enclave.TypeSigned {
		if msg.Result != nil && msg.Result.Error != "" {
			return nil, fmt.Errorf("%w: %s", enclave.ErrRefused, msg.Result.Error)
		}
		return nil, fmt.Errorf("%w: expected signed messages, got %q", enclave.ErrProtocol, msg.Type)
	}
	res := msg.Signed
	for _, k := range res.Keys {
		log.Info("key", slog.String("pubkey", k.Pubkey), slog.String("status", k.Status), slog.String("reason", k.Reason))
	}
	if !res.OK {
		return res, fmt.Errorf("%w: %s", enclave.ErrRefused, res.Error)
	}
	return res, nil
}

// SignExits has the enclave sign voluntary exits for req.Pubkeys.
// Custody selects the keys (not retired, not forged, handed out) and marks
// each exit-signed in the ledger before the request is sent: the enclave
// signs only for keys so marked, and a retry signs the same exits. Every
// exit that comes back is verified against its key on the network; write
// them with opsfile.
func SignExits(ctx context.Context, conn io.ReadWriter, cust OpsCustodian, req SignRequest, log *slog.Logger) (*Signed, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := ops.CheckEpoch(req.Epoch); err != nil {
		return nil, fmt.Errorf("parent: %w", err)
	}
	recs, n, err := selectFor(ctx, cust, req)
	if err != nil {
		return nil, err
	}
	sr := &enclave.SignRequest{Version: enclave.ProtocolVersion, Region: req.Region, Credentials: req.Credentials,
		CapellaForkVersion: req.CapellaForkVersion, GenesisValidatorsRoot: req.GenesisValidatorsRoot, Epoch: req.Epoch}
	for i, r := range recs {
		// The ledger first: the exit-signed state licenses the exit.
		ks, err := cust.MarkExitSigned(ctx, r.Pubkey)
		if err != nil {
			return nil, fmt.Errorf("parent: %w", err)
		}
		sr.Items = append(sr.Items, enclave.SignItem{Record: enclave.RecordOf(r), State: ks.State, ValidatorIndex: req.ValidatorIndices[i]})
	}
	res, err := exchange(ctx, conn, enclave.TypeSignExits, sr, log)
	if err != nil {
		return nil, err
	}
	xs, err := enclave.ParseSignedExits(res)
	if err != nil {
		return nil, err
	}
	if len(xs) != len(recs) {
		return nil, fmt.Errorf("%w: %d exits for %d keys", enclave.ErrProtocol, len(xs), len(recs))
	}
	out := &Signed{Network: n, Result: res}
	for i, x := range xs {
		pub := pubkeyBytes(recs[i].Pubkey)
		if uint64(x.Message.ValidatorIndex) != req.ValidatorIndices[i] || uint64(x.Message.Epoch) != req.Epoch {
			return nil, fmt.Errorf("%w: exit %d is not the one asked for", enclave.ErrProtocol, i)
		}
		if err := ops.VerifyExit(x, pub, n); err != nil {
			return nil, fmt.Errorf("parent: the enclave's exit for 0x%s: %w", recs[i].Pubkey, err)
		}
		out.Exits = append(out.Exits, opsfile.Exit{Exit: x, Pubkey: pub})
	}
	return out, nil
}

// SignBLSChanges has the enclave sign BLS-to-execution changes to
// req.ToExecutionAddress for req.Pubkeys (custody selects them; the
// enclave refuses keys whose credentials are not 0x00). Every change that
// comes back is verified and its key checked against the credentials it
// replaces (the records'); write them with opsfile.
func SignBLSChanges(ctx context.Context, conn io.ReadWriter, cust OpsCustodian, req SignRequest, log *slog.Logger) (*Signed, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if req.ToExecutionAddress == "" {
		return nil, errors.New("parent: no withdrawal address")
	}
	recs, n, err := selectFor(ctx, cust, req)
	if err != nil {
		return nil, err
	}
	sr := &enclave.SignRequest{Version: enclave.ProtocolVersion, Region: req.Region, Credentials: req.Credentials,
		CapellaForkVersion: req.CapellaForkVersion, GenesisValidatorsRoot: req.GenesisValidatorsRoot, ToExecutionAddress: req.ToExecutionAddress}
	out := &Signed{Network: n}
	for i, r := range recs {
		_, ks, err := cust.Get(ctx, r.Pubkey)
		if err != nil {
			return nil, fmt.Errorf("parent: %w", err)
		}
		item := enclave.SignItem{Record: enclave.RecordOf(r), ValidatorIndex: req.ValidatorIndices[i]}
		if ks != nil {
			item.State = ks.State
		}
		sr.Items = append(sr.Items, item)
		var c [32]byte
		copy(c[:], hexN(r.WithdrawalCredentials, 32))
		out.Creds = append(out.Creds, c)
	}
	res, err := exchange(ctx, conn, enclave.TypeSignBLSChanges, sr, log)
	if err != nil {
		return nil, err
	}
	out.Result = res
	cs, err := enclave.ParseSignedBLSChanges(res)
	if err != nil {
		return nil, err
	}
	if len(cs) != len(recs) {
		return nil, fmt.Errorf("%w: %d BLS changes for %d keys", enclave.ErrProtocol, len(cs), len(recs))
	}
	for i, c := range cs {
		if uint64(c.BLSToExecutionChange.ValidatorIndex) != req.ValidatorIndices[i] {
			return nil, fmt.Errorf("%w: BLS change %d is not the one asked for", enclave.ErrProtocol, i)
		}
		if err := ops.VerifyBLSChange(c, n); err != nil {
			return nil, fmt.Errorf("parent: the enclave's BLS change for 0x%s: %w", recs[i].Pubkey, err)
		}
		if err := ops.CheckBLSCredentials(out.Creds[i], c.BLSToExecutionChange.FromBLSPubKey[:]); err != nil {
			return nil, fmt.Errorf("parent: the enclave's BLS change for 0x%s: %w", recs[i].Pubkey, err)
		}
	}
	out.BLSChanges = cs
	return out, nil
}

func pubkeyBytes(h string) []byte { return hexN(h, 48) }

// hexN is h's bytes (records are authenticated: their hex is well formed).
func hexN(h string, n int) []byte {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != n {
		return make([]byte, n)
	}
	return b
}
