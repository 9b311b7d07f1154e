package custody

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store"
)

// Operations after the deposit (signed exits, BLS-to-execution changes,
// top-ups) sign public messages with sealed keys. Custody decides which
// keys they may sign for (CheckSignable: not retired, not forged, handed
// out) and records the one that changes a key's state (MarkExitSigned,
// before the signed exit leaves protected compute); a top-up is handed out
// once, as a top-up export (TopUp, topup.go). The helpers here
// select keys and open withdrawal keys for them; the messages themselves
// are package ops's pure functions.

// OpsSelection names the keys of one operation: exactly one of Pubkeys,
// RequestID or All.
type OpsSelection struct {
	Pubkeys   []string // lowercase hex, no 0x; in this order
	RequestID string   // the request's records, in slot order
	All       bool     // every signable record, in pubkey order
}

// Skipped is a record SelectSignable left out of an All selection, and why.
type Skipped struct {
	Pubkey string
	Err    error
}

// SelectSignable resolves a selection to the records an operation may sign
// for, each accepted by CheckSignable, in a fixed order: Pubkeys as given
// (duplicates refused), a request's records by slot, All by pubkey. Named
// keys (Pubkeys, RequestID) must each be signable: the first that is not
// fails the whole call, so that an operation signs for all of them or
// none. All leaves out the keys that are not (retired, forged, never
// exported) and returns them as skipped.
func (c *Custodian) SelectSignable(ctx context.Context, sel OpsSelection) ([]*store.Record, []Skipped, error) {
	n := 0
	for _, b := range []bool{len(sel.Pubkeys) > 0, sel.RequestID != "", sel.All} {
		if b {
			n++
		}
	}
	if n != 1 {
		return nil, nil, fmt.Errorf("%w: select the keys by one of pubkeys, request id or all", ErrRequest)
	}
	var pks []string
	var skipped []Skipped
	switch {
	case len(sel.Pubkeys) > 0:
		seen := map[string]bool{}
		for _, pk := range sel.Pubkeys {
			if seen[pk] {
				return nil, nil, fmt.Errorf("%w: 0x%s is named twice", ErrRequest, pk)
			}
			seen[pk] = true
		}
		pks = sel.Pubkeys
	case sel.All:
		for e, err := range c.List(ctx, store.Filter{}) {
			if err != nil {
				return nil, nil, err
			}
			if e.Err != nil {
				skipped = append(skipped, Skipped{e.Record.Pubkey, e.Err})
				continue
			}
			pks = append(pks, e.Record.Pubkey)
		}
		slices.Sort(pks)
	default:
		type slotted struct {
			slot   int
			pubkey string
		}
		var found []slotted
		for rec, err := range c.records.Query(ctx, store.Filter{RequestID: sel.RequestID}) {
			if err != nil {
				return nil, nil, fmt.Errorf("custody: reading the store: %w", err)
			}
			found = append(found, slotted{rec.Slot, rec.Pubkey})
		}
		if len(found) == 0 {
			return nil, nil, fmt.Errorf("custody: request %q: %w", sel.RequestID, store.ErrNotFound)
		}
		slices.SortFunc(found, func(a, b slotted) int { return cmp.Compare(a.slot, b.slot) })
		for _, f := range found {
			pks = append(pks, f.pubkey)
		}
	}
	var recs []*store.Record
	for _, pk := range pks {
		rec, _, err := c.CheckSignable(ctx, pk)
		switch {
		case err == nil:
			recs = append(recs, rec)
		case sel.All && (errors.Is(err, ErrState) || errors.Is(err, ErrForged)):
			skipped = append(skipped, Skipped{pk, err})
		default:
			return nil, nil, err
		}
	}
	if len(recs) == 0 {
		return nil, skipped, fmt.Errorf("%w: no validator of the selection can be signed for (%d left out: retired, forged or never exported)", ErrState, len(skipped))
	}
	return recs, skipped, nil
}

// OpenWithdrawalKey opens the mnemonic of rec and derives its withdrawal
// key m/12381/3600/i/0 (i: the key's EIP-2334 index, kept in the sealed
// document). A mnemonic sealed separately (the record's SealedMnemonic) is
// opened with mnemonicOpener, which must then be given; otherwise the
// mnemonic sealed with the key is opened with secretOpener. Both paths
// authenticate the record and check that the mnemonic derives its pubkey.
// Whether an operation may sign for rec is CheckSignable's question, asked
// before this. Destroy the key when done.
func (c *Custodian) OpenWithdrawalKey(ctx context.Context, secretOpener, mnemonicOpener envelope.Opener, rec *store.Record) (*keygen.SecretKey, error) {
	return OpenWithdrawalKey(ctx, c.verifier, secretOpener, mnemonicOpener, rec)
}

// OpenWithdrawalKey is Custodian.OpenWithdrawalKey for protected compute
// that holds the generator's verifier but no store (the enclave): the
// record is authenticated with v.
func OpenWithdrawalKey(ctx context.Context, v provenance.Verifier, secretOpener, mnemonicOpener envelope.Opener, rec *store.Record) (*keygen.SecretKey, error) {
	var (
		phrase *keygen.Bytes
		index  uint32
	)
	switch {
	case rec.SealedMnemonic != nil:
		if mnemonicOpener == nil {
			return nil, fmt.Errorf("%w: the mnemonic of %s is sealed under a separate key: give the mnemonic key's opener", ErrRequest, short(rec.Pubkey))
		}
		m, i, err := OpenMnemonic(ctx, mnemonicOpener, v, rec)
		if err != nil {
			return nil, err
		}
		phrase, index = m, i
	default:
		if secretOpener == nil {
			return nil, fmt.Errorf("%w: opening %s needs the secret's opener", ErrRequest, short(rec.Pubkey))
		}
		s, err := NewOpener(nil, secretOpener, v).OpenRecord(ctx, rec)
		if err != nil {
			return nil, err
		}
		if s.UnsafeMnemonic() == nil {
			s.Destroy()
			return nil, fmt.Errorf("%w: %s was sealed without its mnemonic: its withdrawal key cannot be derived here", ErrSecret, short(rec.Pubkey))
		}
		phrase, index = keygen.NewBytes(append([]byte(nil), s.UnsafeMnemonic()...)), s.Index
		s.Destroy()
	}
	defer phrase.Destroy()
	m, err := keygen.ParseMnemonic(string(phrase.UnsafeBytes()))
	if err != nil {
		return nil, fmt.Errorf("%w: the sealed mnemonic does not parse", ErrSecret)
	}
	defer m.Destroy()
	seed := m.Seed("")
	defer seed.Destroy()
	return keygen.DeriveKey(seed, keygen.WithdrawalPath(index))
}

// NetworkOf is the one network of recs with the constants exits and BLS
// changes are signed under: a known network's own, or for a devnet the
// records' deposit fork version with capellaForkVersion and
// genesisValidatorsRoot (hex), which a known network must not be given.
func NetworkOf(recs []*store.Record, capellaForkVersion, genesisValidatorsRoot string) (depositdata.Network, error) {
	if len(recs) == 0 {
		return depositdata.Network{}, fmt.Errorf("%w: no records", ErrRequest)
	}
	name := recs[0].Network
	for _, r := range recs[1:] {
		if r.Network != name {
			return depositdata.Network{}, fmt.Errorf("%w: the selection holds %s and %s validators: choose one network", ErrRequest, name, r.Network)
		}
	}
	n, err := depositdata.NetworkByName(name)
	if err != nil {
		v, verr := ValidatorOf(recs[0])
		if verr != nil {
			return n, verr
		}
		if n, err = depositdata.CustomNetwork(name, v.Deposit.ForkVersion); err != nil {
			return n, err
		}
		if capellaForkVersion == "" || genesisValidatorsRoot == "" {
			return n, fmt.Errorf("%w: %s is a devnet: give its Capella fork version and genesis validators root", depositdata.ErrNoChainRoots, name)
		}
		if n, err = n.WithChainRoots(capellaForkVersion, genesisValidatorsRoot); err != nil {
			return n, err
		}
	} else if capellaForkVersion != "" || genesisValidatorsRoot != "" {
		return n, fmt.Errorf("%w: %s is a known network: the Capella fork version and genesis validators root are for devnets", ErrRequest, name)
	}
	if !n.HasChainRoots() {
		return n, fmt.Errorf("%w: %s", depositdata.ErrNoChainRoots, n.Name)
	}
	return n, nil
}
