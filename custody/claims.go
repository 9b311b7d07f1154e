package custody

import (
	"context"
	"fmt"
	"slices"

	"github.com/ethkeygen/ethkeygen/store"
)

// ReleaseKeys undoes this load's claims of pubkeys only (keys the signer
// refused, while the others it took stay claimed), each only if the
// ledger still holds what the claim wrote. Keys this load did not claim
// (live on this signer before) are left as they are.
func (cl *Claims) ReleaseKeys(ctx context.Context, pubkeys []string) error {
	if cl == nil {
		return nil
	}
	sub := &Claims{c: cl.c}
	var idx []int
	for i, it := range cl.Items {
		if it.Fresh && slices.Contains(pubkeys, it.Record.Pubkey) {
			sub.Items = append(sub.Items, it)
			idx = append(idx, i)
		}
	}
	err := sub.Release(ctx)
	for j, i := range idx {
		cl.Items[i].Fresh = sub.Items[j].Fresh
	}
	return err
}

// LiveOn returns the verified record of pubkey after checking that the
// ledger has it live on signer (what an unload from that signer needs).
func (c *Custodian) LiveOn(ctx context.Context, pubkey, signer string) (*store.Record, error) {
	rec, ks, err := c.Get(ctx, pubkey)
	if err != nil {
		return nil, err
	}
	if ks == nil || (ks.State != store.StatusDeposited && ks.State != store.StatusExitSigned) || ks.Signer != signer {
		where := "on no signer"
		if ks != nil && ks.Signer != "" {
			where = "on " + ks.Signer
		}
		return nil, fmt.Errorf("%w: 0x%s is not live on %s (the ledger has it %s)", ErrState, pubkey, signer, where)
	}
	return rec, nil
}
