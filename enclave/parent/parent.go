// Package parent is the parent-instance side of the enclave protocol: it
// reads records from the store and forwards them (sealed: ciphertext only)
// with the instance role's credentials to the enclave, then reads back the
// per-key statuses. No message of the protocol carries key material to the
// parent.
package parent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/enclave"
	"github.com/ethkeygen/ethkeygen/store"
)

// Store is what Load needs of a store.
type Store interface {
	Get(ctx context.Context, pubkey string) (*store.Record, error)
	SetStatus(ctx context.Context, pubkey string, from, to store.Status) error
}

var _ Store = store.Store(nil)

// Request says what to load.
type Request struct {
	Region                string
	Credentials           enclave.Credentials
	GenesisValidatorsRoot string
	// Takeover allows keys whose status is "deposited" (see
	// enclave.LoadRequest.Takeover).
	Takeover bool
	Pubkeys  []string // lowercase hex, no 0x
}

// Load fetches the records of req.Pubkeys from st, sends them to the
// enclave on conn, and returns the enclave's Result. It returns an error
// wrapping enclave.ErrRefused (with the Result) when the enclave loaded
// nothing.
func Load(ctx context.Context, conn io.ReadWriter, st Store, req Request, log *slog.Logger) (*enclave.Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(req.Pubkeys) == 0 {
		return nil, errors.New("parent: no pubkeys to load")
	}
	if len(req.Pubkeys) > enclave.MaxRecords {
		return nil, fmt.Errorf("parent: %d pubkeys, at most %d per load", len(req.Pubkeys), enclave.MaxRecords)
	}
	lr := &enclave.LoadRequest{
		Version: enclave.ProtocolVersion, Region: req.Region, Credentials: req.Credentials,
		GenesisValidatorsRoot: req.GenesisValidatorsRoot, Takeover: req.Takeover,
	}
	for _, pk := range req.Pubkeys {
		rec, err := st.Get(ctx, pk)
		if err != nil {
			return nil, fmt.Errorf("parent: reading %s: %w", pk, err)
		}
		log.Debug("record read", slog.String("pubkey", pk), slog.String("status", string(rec.Status)))
		lr.Records = append(lr.Records, enclave.RecordOf(rec))
	}
	// Claim the keys for this signer before the enclave sees them: of two
	// loaders racing for a key, one wins and the other loads nothing.
	claim := make([]*store.Record, 0, len(lr.Records))
	for _, r := range lr.Records {
		claim = append(claim, &store.Record{Pubkey: r.Pubkey, Status: r.Status})
	}
	release, err := custody.ClaimForSigner(ctx, st, claim)
	if err != nil {
		return nil, fmt.Errorf("parent: %w", err)
	}
	loaded := false
	defer func() {
		if !loaded {
			if err := release(context.WithoutCancel(ctx)); err != nil {
				log.Error("releasing the claim failed: set the status back by hand", slog.String("error", err.Error()))
			}
		}
	}()
	log.Info("sending load request", slog.Any("request", lr))
	if err := enclave.WriteMessage(conn, &enclave.Message{Type: enclave.TypeLoad, Load: lr}); err != nil {
		return nil, err
	}
	msg, err := enclave.ReadMessage(conn, 0)
	if err != nil {
		return nil, err
	}
	if msg.Type != enclave.TypeResult {
		return nil, fmt.Errorf("%w: expected a result, got %q", enclave.ErrProtocol, msg.Type)
	}
	res := msg.Result
	for _, k := range res.Keys {
		log.Info("key", slog.String("pubkey", k.Pubkey), slog.String("status", k.Status), slog.String("reason", k.Reason),
			slog.Bool("needs_slashing_history", k.NeedsSlashingHistory))
	}
	if !res.OK {
		return res, fmt.Errorf("%w: %s", enclave.ErrRefused, res.Error)
	}
	loaded = true
	return res, nil
}

// CredentialsFrom retrieves credentials from an AWS provider (on the parent:
// the instance role, via config.LoadDefaultConfig).
func CredentialsFrom(ctx context.Context, p aws.CredentialsProvider) (enclave.Credentials, error) {
	c, err := p.Retrieve(ctx)
	if err != nil {
		return enclave.Credentials{}, fmt.Errorf("parent: retrieving credentials: %w", err)
	}
	out := enclave.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}
	if c.CanExpire {
		out.Expires = c.Expires
	}
	return out, nil
}
