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

// Custodian is what Load needs of custody: the one place that claims keys
// for a signer. *custody.Custodian satisfies it.
type Custodian interface {
	ClaimForSigner(ctx context.Context, req custody.LoadRequest) (*custody.Claims, error)
	Get(ctx context.Context, pubkey string) (*store.Record, *store.KeyState, error)
}

var _ Custodian = (*custody.Custodian)(nil)

// ErrUncertain reports a load request that was sent without an answer
// coming back: the enclave may have loaded its keys, so they stay claimed.
var ErrUncertain = errors.New("parent: the enclave may have loaded the keys")

// Request says what to load.
type Request struct {
	Region                string
	Credentials           enclave.Credentials
	GenesisValidatorsRoot string
	// Takeover allows keys whose status is "deposited" (see
	// enclave.LoadRequest.Takeover).
	Takeover bool
	// NoSlashingHistory: see enclave.LoadRequest.NoSlashingHistory.
	NoSlashingHistory bool
	Pubkeys           []string // lowercase hex, no 0x
	// Signer names the enclave's signer in the ledger (e.g.
	// "enclave:<instance>:<cid>"). Required.
	Signer string
}

// Load claims req.Pubkeys for the enclave's signer through custody (which
// checks each record's authenticator and state, and refuses retired keys
// and keys live elsewhere unless Takeover), sends the claimed records to
// the enclave on conn, and returns the enclave's Result. It returns an
// error wrapping enclave.ErrRefused (with the Result) when the enclave
// loaded nothing; the claims are then released.
func Load(ctx context.Context, conn io.ReadWriter, cust Custodian, req Request, log *slog.Logger) (*enclave.Result, error) {
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
		GenesisValidatorsRoot: req.GenesisValidatorsRoot, Takeover: req.Takeover, NoSlashingHistory: req.NoSlashingHistory,
	}
	// Claim the keys for this signer before the enclave sees them: of two
	// loaders racing for a key, one wins and the other loads nothing.
	claims, err := cust.ClaimForSigner(ctx, custody.LoadRequest{Signer: req.Signer, Pubkeys: req.Pubkeys, Takeover: req.Takeover})
	if err != nil {
		return nil, fmt.Errorf("parent: %w", err)
	}
	// The claims are released when the enclave cannot have loaded the keys:
	// the request did not leave, or the enclave answered that it loaded
	// nothing. Once the request was sent and no answer came back, the
	// enclave may have loaded them: they stay claimed for this signer (a
	// retry by the same signer is harmless; another signer must not get
	// them), and the error says so (ErrUncertain).
	loaded := false
	defer func() {
		if !loaded {
			if err := claims.Release(context.WithoutCancel(ctx)); err != nil {
				log.Error("releasing the claim failed", slog.String("error", err.Error()))
			}
		}
	}()
	for _, c := range claims.Items {
		r := enclave.RecordOf(c.Record)
		// The enclave sees the state before this claim: a key taken over
		// from another signer needs that signer's slashing history.
		r.Status = store.StatusExported
		if c.Previous != nil && (c.Previous.State == store.StatusDeposited || c.Previous.State == store.StatusExitSigned) && c.Previous.Signer != req.Signer {
			r.Status = store.StatusDeposited
		}
		// The history the ledger holds for the key (stored when it left its
		// last signer) travels with it.
		if c.Key != nil {
			r.Interchange = c.Key.Interchange
		}
		r.SealedMnemonic = c.Record.SealedMnemonic
		log.Debug("record claimed", slog.String("pubkey", c.Record.Pubkey))
		lr.Records = append(lr.Records, r)
	}
	log.Info("sending load request", slog.Any("request", lr))
	if err := enclave.WriteMessage(conn, &enclave.Message{Type: enclave.TypeLoad, Load: lr}); err != nil {
		return nil, err
	}
	uncertain := func(err error) (*enclave.Result, error) {
		loaded = true // keep the claims: see above
		log.Error("no answer from the enclave after the request was sent: the keys stay claimed for this signer",
			slog.String("signer", req.Signer), slog.Int("keys", len(lr.Records)), slog.String("error", err.Error()))
		return nil, fmt.Errorf("%w (%d keys stay claimed for %s: check the signer before loading them elsewhere): %w", ErrUncertain, len(lr.Records), req.Signer, err)
	}
	msg, err := enclave.ReadMessage(conn, 0)
	if err != nil {
		return uncertain(err)
	}
	if msg.Type != enclave.TypeResult || msg.Result == nil {
		return uncertain(fmt.Errorf("%w: expected a result, got %q", enclave.ErrProtocol, msg.Type))
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
