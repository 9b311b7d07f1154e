package custody

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/web3signer"
)

// Slashing protection travels with the key: a key that leaves a signer
// leaves with that signer's EIP-3076 history (ReleaseFromSigner stores it
// in the ledger, ReleaseWithInterchange extracts it from a Keymanager
// DELETE answer), and a key that arrives on a signer arrives with every
// history known for it (Claims.Interchange). A key taken over from a live
// signer without any history is refused unless the operator says so.

// ErrNoHistory reports a takeover for which no slashing-protection history
// of the previous signer is known.
var ErrNoHistory = errors.New("custody: taking over a live key needs its previous signer's slashing-protection history")

// TakenOver reports whether claim it moved a key that was live on another
// signer (a takeover).
func (it *Claim) TakenOver() bool {
	p := it.Previous
	return it.Fresh && p != nil && (p.State == store.StatusDeposited || p.State == store.StatusExitSigned) && p.Signer != ""
}

// Interchange returns the EIP-3076 interchange to hand the signer with
// the claimed keys, for the network whose genesis validators root is root
// (from the network table). Each key's history is the union of what the
// ledger stored when it left its last signer and what given (an
// interchange the operator supplies, for any number of keys; nil for
// none) holds for it; given must be for root's network. A key that was
// never on a signer gets an empty history. A key taken over from a live
// signer with no history at all is refused (ErrNoHistory) unless
// allowNone: its previous signer's records would be lost, and the new
// signer could sign what the old one already did.
func (cl *Claims) Interchange(root [32]byte, given []byte, allowNone bool) ([]byte, error) {
	var giv *web3signer.Interchange
	if given != nil {
		var err error
		if giv, err = web3signer.ParseInterchange(given, root); err != nil {
			return nil, fmt.Errorf("custody: the slashing-protection file: %w", err)
		}
	}
	keys := make([]web3signer.KeyHistory, 0, len(cl.Items))
	for _, it := range cl.Items {
		pk := it.Record.Pubkey
		docs := []*web3signer.Interchange{giv}
		if it.Key != nil && it.Key.Interchange != nil {
			st, err := web3signer.ParseInterchange(it.Key.Interchange, root)
			if err != nil {
				return nil, fmt.Errorf("custody: the stored slashing-protection history of 0x%s: %w", short(pk), err)
			}
			docs = append(docs, st)
		}
		prev, err := historyOf(root, pk, docs)
		if err != nil {
			return nil, err
		}
		if prev == nil && it.TakenOver() && !allowNone {
			return nil, fmt.Errorf("%w: 0x%s is live on %s and neither the ledger nor a slashing-protection file holds its history (give that signer's interchange, or say that none exists)",
				ErrNoHistory, pk, it.Previous.Signer)
		}
		keys = append(keys, web3signer.KeyHistory{Pubkey: pk, Previous: prev})
	}
	return web3signer.BuildInterchange(root, keys)
}

// historyOf is an interchange of every entry docs hold for pubkey, or nil
// when none holds one.
func historyOf(root [32]byte, pubkey string, docs []*web3signer.Interchange) ([]byte, error) {
	out := web3signer.Interchange{Metadata: web3signer.InterchangeMetadata{
		InterchangeFormatVersion: web3signer.InterchangeFormatVersion, GenesisValidatorsRoot: web3signer.RootString(root)}}
	for _, d := range docs {
		if d == nil {
			continue
		}
		for _, e := range d.Data {
			if e.Pubkey == "0x"+pubkey {
				out.Data = append(out.Data, e)
			}
		}
	}
	if len(out.Data) == 0 {
		return nil, nil
	}
	return json.Marshal(out)
}

// ReleaseWithInterchange is ReleaseFromSigner with the interchange a
// signer returned for many keys (a Keymanager DELETE answer): the key's
// own history is extracted (it must be for root's network) and stored.
// interchange nil (the signer had no history: it never signed there)
// keeps whatever the ledger held.
func (c *Custodian) ReleaseWithInterchange(ctx context.Context, pubkey, signer string, root [32]byte, interchange []byte) (*store.KeyState, error) {
	var own []byte
	if interchange != nil {
		var err error
		if own, err = web3signer.KeyInterchange(interchange, root, pubkey); err != nil {
			return nil, fmt.Errorf("custody: the history %s returned for 0x%s: %w", signer, short(pubkey), err)
		}
	}
	return c.ReleaseFromSigner(ctx, pubkey, signer, own)
}

// RecordLive records imported keys that are live on signer already (they
// were running elsewhere before they came under custody): from then on
// loading them anywhere else is a takeover, which needs that signer's
// history. Only imported keys with no other state are accepted.
func (c *Custodian) RecordLive(ctx context.Context, signer string, pubkeys []string) error {
	for _, pk := range pubkeys {
		rec, ks, err := c.Get(ctx, pk)
		if err != nil {
			return err
		}
		if rec.Origin != OriginImported || StateOf(rec, ks) != store.StatusImported {
			if ks != nil && ks.Signer == signer {
				continue // recorded before (a repeated import)
			}
			return fmt.Errorf("%w: 0x%s is %s, not a newly imported key", ErrState, pk, StateOf(rec, ks))
		}
	}
	_, err := c.ClaimForSigner(ctx, LoadRequest{Signer: signer, Pubkeys: pubkeys})
	return err
}

// CheckInterchange is Claims.Interchange for the claims req would make,
// computed from the ledger as it is now, without claiming anything: a
// load refused for its slashing history (or a bad history file) then
// leaves no trace in the ledger. The claim itself checks again.
func (c *Custodian) CheckInterchange(ctx context.Context, req LoadRequest, root [32]byte, given []byte, allowNone bool) error {
	cl := &Claims{c: c}
	for _, pk := range req.Pubkeys {
		rec, ks, err := c.Get(ctx, pk)
		if err != nil {
			return err
		}
		next, err := c.signerState(rec, ks, req)
		if err != nil {
			return err
		}
		it := Claim{Record: rec, Key: ks, Previous: ks}
		if next != nil {
			it.Key, it.Fresh = next, true
		}
		cl.Items = append(cl.Items, it)
	}
	_, err := cl.Interchange(root, given, allowNone)
	return err
}
