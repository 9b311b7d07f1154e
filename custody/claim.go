package custody

import (
	"context"
	"errors"
	"fmt"

	"github.com/ethkeygen/ethkeygen/store"
)

// StatusStore is what ClaimForSigner needs of a store.
type StatusStore interface {
	SetStatus(ctx context.Context, pubkey string, from, to store.Status) error
}

// ErrClaimed reports a key that another loader claimed first.
var ErrClaimed = errors.New("custody: key already claimed by another signer")

// ClaimForSigner marks recs deposited (loaded into a signer) BEFORE they are
// loaded, each with a compare-and-set from the status it was read with, so
// that of two loaders racing for a key exactly one wins and the other loads
// nothing. Records already deposited (a takeover the caller allowed) are
// left as they are. On error nothing stays claimed. The returned release
// restores the previous statuses: call it if loading then fails.
func ClaimForSigner(ctx context.Context, st StatusStore, recs []*store.Record) (release func(context.Context) error, err error) {
	var claimed []*store.Record
	release = func(ctx context.Context) error {
		var errs []error
		for _, r := range claimed {
			if err := st.SetStatus(ctx, r.Pubkey, store.StatusDeposited, r.Status); err != nil {
				errs = append(errs, fmt.Errorf("0x%s: %w", r.Pubkey, err))
			}
		}
		claimed = nil
		return errors.Join(errs...)
	}
	for _, r := range recs {
		if r.Status == store.StatusDeposited {
			continue
		}
		if err := st.SetStatus(ctx, r.Pubkey, r.Status, store.StatusDeposited); err != nil {
			rerr := release(ctx)
			if errors.Is(err, store.ErrConflict) {
				err = fmt.Errorf("%w: 0x%s changed status since it was read", ErrClaimed, r.Pubkey)
			}
			return nil, errors.Join(fmt.Errorf("claiming 0x%s: %w", r.Pubkey, err), rerr)
		}
		claimed = append(claimed, r)
	}
	return release, nil
}
