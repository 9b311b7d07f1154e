package custody

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store"
)

// OpenStore is what Open needs of a store.
type OpenStore interface {
	Get(ctx context.Context, pubkey string) (*store.Record, error)
}

// Opener opens stored validators. It runs only in protected compute: it
// holds the right to decrypt.
type Opener struct {
	store    OpenStore
	opener   envelope.Opener
	verifier provenance.Verifier
}

// NewOpener makes an Opener reading from st, accepting only records that
// the generator's key v authenticated, and decrypting with op.
func NewOpener(st OpenStore, op envelope.Opener, v provenance.Verifier) *Opener {
	return &Opener{store: st, opener: op, verifier: v}
}

// Open fetches the record of pubkey, decrypts its sealed secret under the
// record's encryption context, and checks that the secret's key derives
// the record's pubkey and that the deposit data names it. The secret comes
// back in a redacting type; call Destroy when done.
func (o *Opener) Open(ctx context.Context, pubkey string) (*Secret, *store.Record, error) {
	rec, err := o.store.Get(ctx, pubkey)
	if err != nil {
		return nil, nil, fmt.Errorf("custody: fetching %s: %w", short(pubkey), err)
	}
	s, err := o.OpenRecord(ctx, rec)
	return s, rec, err
}

// OpenRecord is Open for a record already fetched. A record the
// generator's key did not authenticate is refused before anything is
// decrypted.
func (o *Opener) OpenRecord(ctx context.Context, rec *store.Record) (*Secret, error) {
	if o.verifier == nil {
		return nil, errors.New("custody: an opener needs the generator's verification key")
	}
	if err := checkAuth(o.verifier, rec); err != nil {
		return nil, err
	}
	if len(rec.DepositData) > 0 {
		if _, err := ValidatorOf(rec); err != nil {
			return nil, err
		}
	}
	plain, err := o.opener.Open(ctx, rec.Sealed, sealContext(rec, PurposeSecret))
	if err != nil {
		return nil, fmt.Errorf("custody: opening %s: %w", short(rec.Pubkey), err)
	}
	defer keygen.Wipe(plain)
	s, err := parseSecret(ctx, plain, rec.Pubkey)
	if err != nil {
		return nil, fmt.Errorf("custody: opening %s: %w", short(rec.Pubkey), err)
	}
	return s, nil
}

// OpenMnemonic opens the separately sealed mnemonic of a record with op
// (the mnemonic key's opener). It returns the mnemonic and the key's index.
func OpenMnemonic(ctx context.Context, op envelope.Opener, v provenance.Verifier, rec *store.Record) (*keygen.Bytes, uint32, error) {
	if rec.SealedMnemonic == nil {
		return nil, 0, errors.New("custody: record has no separately sealed mnemonic")
	}
	if err := checkAuth(v, rec); err != nil {
		return nil, 0, err
	}
	plain, err := op.Open(ctx, rec.SealedMnemonic, sealContext(rec, PurposeMnemonic))
	if err != nil {
		return nil, 0, fmt.Errorf("custody: opening mnemonic of %s: %w", short(rec.Pubkey), err)
	}
	defer keygen.Wipe(plain)
	var d rawDoc
	if err := json.Unmarshal(plain, &d); err != nil || d.Pubkey != rec.Pubkey || d.Format != "mnemonic" {
		return nil, 0, fmt.Errorf("%w: mnemonic document", ErrSecret)
	}
	m, err := unquoteSecret(d.Mnemonic)
	if err != nil {
		return nil, 0, err
	}
	if err := checkMnemonic(m, d.Index, rec.Pubkey); err != nil {
		m.Destroy()
		return nil, 0, err
	}
	return m, d.Index, nil
}

func short(pubkey string) string {
	if len(pubkey) > 16 {
		return "0x" + pubkey[:16] + "…"
	}
	return "0x" + pubkey
}

// OpenRecords opens many records on every core within maxMemory (opening a
// keystore-format secret sealed before documents carried the raw key runs
// the keystore's KDF; others run none). The secrets come back in the order
// of recs; on error none are returned (and those opened are destroyed).
func (o *Opener) OpenRecords(ctx context.Context, recs []*store.Record, maxMemory int64, progress func(done int)) ([]*Secret, error) {
	out := make([]*Secret, len(recs))
	var done atomic.Int64
	err := forEach(ctx, len(recs), Workers(maxMemory, ScryptWorkerMemory), func(ctx context.Context, i int) error {
		s, err := o.OpenRecord(ctx, recs[i])
		if err != nil {
			return err
		}
		out[i] = s
		if progress != nil {
			progress(int(done.Add(1)))
		}
		return nil
	})
	if err != nil {
		for _, s := range out {
			s.Destroy()
		}
		return nil, err
	}
	return out, nil
}
