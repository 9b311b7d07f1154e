package custody

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ethkeygen/ethkeygen/store"
)

// Assignment: an operator names the signer a key is to be loaded on next;
// a loader for that signer (parent -watch) finds it with Assigned and
// claims it with ClaimForSigner. The assignment is a KeyState field
// (AssignedTo), written with the same compare-and-set as every other
// state change:
//
//	exported / imported ──Assign(S)──▶ exported / imported, assigned to S
//	                     ──ClaimForSigner(S)──▶ deposited on S (the assignment is used up)
//	                     ──ClaimForSigner(T≠S)──▶ refused, naming S
//
// Only a key whose deposit was handed out (or an imported key) that is not
// live on any signer, not retired and not exit-signed is assigned; a key
// live on a signer moves to another one only by a takeover (once the first
// is stopped for good) or after an unload, never by an assignment (and once
// live on its assignee, the assignment is used up: moving it on is again a
// takeover). While a
// key is not live it may be reassigned or unassigned. A failed load gives
// the assignment back (Claims.Release restores the state before the
// claim), so the loader tries again.

// ErrAssigned reports a key assigned to another signer than the one that
// tried to claim it.
var ErrAssigned = errors.New("custody: key assigned to another signer")

// Assignment is the outcome of Assign or Unassign for one key.
type Assignment struct {
	Pubkey   string
	Key      *store.KeyState // the state after the call (nil: the key has none, unassigned and never handed out)
	Previous string          // the assignee before the call ("" none)
	Changed  bool            // this call wrote the ledger
}

// Assign records that pubkeys are to be loaded on signer. Every key must
// be assignable (see above); otherwise nothing is written and the error
// names the first key refused. A key assigned to signer already is left as
// it is. If a write fails (another process changed a key since it was
// read), the assignments this call made are undone, each only if nobody
// changed it since.
func (c *Custodian) Assign(ctx context.Context, pubkeys []string, signer string) ([]Assignment, error) {
	if signer == "" {
		return nil, fmt.Errorf("%w: a signer name is required", ErrRequest)
	}
	if len(signer) > store.MaxTextLen {
		return nil, fmt.Errorf("%w: a signer name is at most %d bytes", ErrRequest, store.MaxTextLen)
	}
	return c.assign(ctx, pubkeys, signer, "")
}

// Unassign removes the assignment of pubkeys (a key with none is left as it
// is). A key live on a signer is refused: unassigning does not unload it.
// With from set, a key assigned to another signer than from is refused
// (nothing is written).
func (c *Custodian) Unassign(ctx context.Context, pubkeys []string, from string) ([]Assignment, error) {
	return c.assign(ctx, pubkeys, "", from)
}

// ExportMembers returns the keys whose deposits export id handed out, in
// file order. An export that was not finished is refused.
func (c *Custodian) ExportMembers(ctx context.Context, id string) ([]string, error) {
	e, err := c.ledger.GetExport(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("custody: export %q: %w", id, err)
	}
	if !e.Sealed {
		return nil, fmt.Errorf("%w: export %s was not finished; finish it first (export-deposits --export-id %s)", ErrExportOpen, id, id)
	}
	return e.Members, nil
}

func (c *Custodian) assign(ctx context.Context, pubkeys []string, signer, from string) ([]Assignment, error) {
	if len(pubkeys) == 0 {
		return nil, fmt.Errorf("%w: no key to assign", ErrRequest)
	}
	type plan struct {
		out  Assignment
		prev *store.KeyState
		next *store.KeyState // nil: nothing to write
	}
	var plans []plan
	seen := map[string]bool{}
	for _, pk := range pubkeys {
		if seen[pk] {
			continue
		}
		seen[pk] = true
		rec, ks, err := c.Get(ctx, pk)
		if err != nil {
			return nil, err
		}
		if from != "" && ks != nil && ks.AssignedTo != "" && ks.AssignedTo != from {
			return nil, fmt.Errorf("%w: 0x%s is assigned to %s, not %s", ErrAssigned, pk, ks.AssignedTo, from)
		}
		next, err := c.assignState(rec, ks, signer)
		if err != nil {
			return nil, err
		}
		p := plan{out: Assignment{Pubkey: pk, Key: ks}, prev: ks, next: next}
		if ks != nil {
			p.out.Previous = ks.AssignedTo
		}
		plans = append(plans, p)
	}
	var out []Assignment
	undo := func(err error) ([]Assignment, error) {
		var errs []error
		for i := len(plans) - 1; i >= 0; i-- {
			p := &plans[i]
			if !p.out.Changed {
				continue
			}
			back := *p.next
			back.AssignedTo = p.out.Previous
			back.Version, back.UpdatedAt = p.next.Version+1, c.clock()
			if e := c.ledger.PutKey(context.WithoutCancel(ctx), &back); e != nil {
				errs = append(errs, fmt.Errorf("undoing the assignment of 0x%s: %w", p.out.Pubkey, e))
			}
		}
		return nil, errors.Join(append([]error{err}, errs...)...)
	}
	for i := range plans {
		p := &plans[i]
		if p.next != nil {
			if err := c.ledger.PutKey(ctx, p.next); err != nil {
				if errors.Is(err, store.ErrConflict) {
					err = fmt.Errorf("%w: 0x%s changed state since it was read (a loader claimed it?); run it again", ErrClaimed, p.out.Pubkey)
				}
				return undo(fmt.Errorf("custody: assigning 0x%s: %w", p.out.Pubkey, err))
			}
			p.out.Key, p.out.Changed = p.next, true
		}
		out = append(out, p.out)
	}
	return out, nil
}

// assignState is the state that assigns rec to signer ("" unassigns), or
// nil when nothing changes.
func (c *Custodian) assignState(rec *store.Record, ks *store.KeyState, signer string) (*store.KeyState, error) {
	pk := rec.Pubkey
	if ks == nil {
		if rec.Origin != OriginImported {
			if signer == "" {
				return nil, nil
			}
			return nil, fmt.Errorf("%w: 0x%s was never exported: hand its deposit out before assigning it to a signer", ErrState, pk)
		}
		if signer == "" {
			return nil, nil
		}
		return &store.KeyState{Pubkey: pk, State: store.StatusImported, AssignedTo: signer, Version: 1, UpdatedAt: c.clock(), By: c.by}, nil
	}
	switch ks.State {
	case store.StatusRetired:
		if signer == "" {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: 0x%s is retired: it is never loaded again", ErrState, pk)
	case store.StatusDeposited, store.StatusExitSigned:
		live := ks.State == store.StatusDeposited || ks.Signer != ""
		switch {
		case live && signer == "":
			return nil, fmt.Errorf("%w: 0x%s is live on %s: unassigning does not unload it (ethkeygen unload)", ErrState, pk, ks.Signer)
		case live && ks.Signer == signer:
			return nil, nil // live there already
		case live:
			return nil, fmt.Errorf("%w: 0x%s is live on %s; it moves to %s only by a takeover once %s is stopped for good, or after it is unloaded",
				ErrClaimed, pk, ks.Signer, signer, ks.Signer)
		case ks.AssignedTo == signer:
			return nil, nil
		case signer != "":
			return nil, fmt.Errorf("%w: 0x%s has a signed exit: it is not assigned to a signer any more", ErrState, pk)
		}
		// An exit-signed key that is not live keeps an assignment made
		// before its exit was signed; it may still be unassigned.
	case store.StatusExported, store.StatusImported:
	default:
		return nil, fmt.Errorf("%w: 0x%s has state %q", ErrState, pk, ks.State)
	}
	if ks.AssignedTo == signer {
		return nil, nil
	}
	next := *ks
	next.AssignedTo = signer
	next.Version, next.UpdatedAt, next.By = ks.Version+1, c.clock(), c.by
	return &next, nil
}

// Assigned returns the keys assigned to signer and not yet live on it, in
// pubkey order. It reads every key state of the ledger (one scan: on
// DynamoDB its cost grows with the ledger, not with the answer).
func (c *Custodian) Assigned(ctx context.Context, signer string) ([]string, error) {
	if signer == "" {
		return nil, fmt.Errorf("%w: a signer name is required", ErrRequest)
	}
	var out []string
	for ks, err := range c.ledger.Keys(ctx) {
		if err != nil {
			return nil, fmt.Errorf("custody: listing assigned keys: %w", err)
		}
		if ks.AssignedTo == signer && !(ks.Signer == signer && (ks.State == store.StatusDeposited || ks.State == store.StatusExitSigned)) {
			out = append(out, ks.Pubkey)
		}
	}
	slices.Sort(out)
	return out, nil
}
