package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/web3signer"
	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

// keyOutcome is one key of a Keymanager API load or unload, as printed.
type keyOutcome struct {
	Pubkey  string `json:"pubkey"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// loadKeymanager opens the claimed keys into hand-off keystores (on every
// core) and imports them with the interchange through the Keymanager API,
// in batches. Keys the server refuses (or answers "duplicate" for, when
// this run claimed them) are released; keys whose outcome is unknown (no
// answer) stay claimed, and the error says so.
func loadKeymanager(ctx context.Context, e *env, lc *lifecycle, claims *custody.Claims, c *keymanager.Client, signer string,
	interchange []byte, opener envelope.Opener, maxMem int64, batch int, asJSON bool, loaded *bool) error {
	recs := claims.Records()
	op := lc.cust.Opener(opener)
	handoffs, err := web3signer.PrepareHandoffs(ctx, len(recs), custody.Workers(maxMem, custody.ScryptWorkerMemory),
		func(ctx context.Context, i int) (web3signer.Opened, error) {
			s, err := op.OpenRecord(ctx, recs[i])
			if err != nil {
				return web3signer.Opened{}, err
			}
			return s.Handoff(), nil
		})
	if err != nil {
		return err
	}
	defer func() {
		for _, h := range handoffs {
			h.Destroy()
		}
	}()
	out := make([]keyOutcome, len(recs))
	var refused, unknown []string
	var sendErr error
	for start := 0; start < len(handoffs); start += batch {
		end := min(start+batch, len(handoffs))
		if sendErr != nil {
			for i := start; i < end; i++ {
				out[i] = keyOutcome{recs[i].Pubkey, "not-sent", "an earlier batch failed"}
				refused = append(refused, recs[i].Pubkey)
			}
			continue
		}
		batch := make([]keymanager.Keystore, 0, end-start)
		for _, h := range handoffs[start:end] {
			batch = append(batch, keymanager.Keystore{JSON: h.JSON, Password: h.Password.UnsafeBytes()})
		}
		res, err := c.Import(ctx, batch, interchange)
		if err != nil {
			sendErr = err
			// No per-key answer. A refusal (401, 403, another status, a
			// request refused or cut before its body was all sent, as by
			// an interruption) loaded nothing of this batch; a lost or
			// malformed answer may have loaded it all.
			known := errors.Is(err, keymanager.ErrServer) || errors.Is(err, keymanager.ErrUnauthorized) ||
				errors.Is(err, keymanager.ErrForbidden) || errors.Is(err, keymanager.ErrRequest) ||
				errors.Is(err, keymanager.ErrNotSent)
			for i := start; i < end; i++ {
				if known {
					out[i] = keyOutcome{recs[i].Pubkey, "refused", ""}
					refused = append(refused, recs[i].Pubkey)
				} else {
					out[i] = keyOutcome{recs[i].Pubkey, "unknown", ""}
					unknown = append(unknown, recs[i].Pubkey)
				}
			}
			continue
		}
		for j, r := range res {
			i := start + j
			it := claims.Items[i]
			out[i] = keyOutcome{recs[i].Pubkey, string(r.Status), r.Message}
			switch {
			case r.Status == keymanager.Imported:
			case r.Status == keymanager.Duplicate && !it.Fresh:
				out[i].Message = "the signer held it already, as the ledger says"
			case r.Status == keymanager.Duplicate:
				// The server held the key before this run claimed it: loaded
				// by someone else, outside custody. Not a load of ours.
				out[i].Message = "the signer already held this key: not loaded by this run (someone loaded it outside custody)"
				refused = append(refused, recs[i].Pubkey)
			default:
				refused = append(refused, recs[i].Pubkey)
			}
		}
	}
	*loaded = true // from here on only the refused keys are released
	relErr := claims.ReleaseKeys(context.WithoutCancel(ctx), refused)
	if asJSON {
		if err := json.NewEncoder(e.stdout).Encode(map[string]any{"signer": signer, "keys": out}); err != nil {
			return err
		}
	} else {
		for _, o := range out {
			if o.Message != "" {
				fmt.Fprintf(e.stdout, "0x%s\t%s\t%s\n", o.Pubkey, o.Status, o.Message)
			} else {
				fmt.Fprintf(e.stdout, "0x%s\t%s\n", o.Pubkey, o.Status)
			}
		}
	}
	if relErr != nil {
		return fmt.Errorf("could not release the claims of the keys the signer refused: %w", relErr)
	}
	ok := len(recs) - len(refused) - len(unknown)
	var outcome error
	switch {
	case len(unknown) > 0:
		outcome = fmt.Errorf("%d of %d keys loaded; %d have an unknown outcome (%v) and stay claimed for %s: check the signer's keys, and unload those it does not hold",
			ok, len(recs), len(unknown), sendErr, signer)
	case sendErr != nil:
		outcome = fmt.Errorf("%d of %d keys loaded; the signer refused the rest (released): %w", ok, len(recs), sendErr)
	case len(refused) > 0:
		outcome = fmt.Errorf("%d of %d keys loaded; %d refused or duplicate (released; see stdout)", ok, len(recs), len(refused))
	}
	if outcome != nil {
		if ctx.Err() != nil {
			// An interruption is reported as such (exit 130); what it
			// loaded, released and left claimed is said all the same.
			fmt.Fprintf(e.stderr, "ethkeygen decrypt: %s\n", oneLine(outcome.Error()))
		}
		return outcome
	}
	fmt.Fprintf(e.stderr, "%d keys loaded into %s\n", len(recs), signer)
	return nil
}
