//go:build !ethkeygen_fuzzonly

package custody

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/store"
)

// exported generates n validators of request id and hands their deposits
// out.
func exported(t *testing.T, f *fixture, id string, n int) []string {
	t.Helper()
	res := generate(t, f, opRequest(id, n))
	if _, err := f.cust.Export(t.Context(), opExport(id)); err != nil {
		t.Fatal(err)
	}
	return res.Pubkeys()
}

func mustAssigned(t *testing.T, f *fixture, signer string, want ...string) {
	t.Helper()
	got, err := f.cust.Assigned(t.Context(), signer)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(sortedCopy(want), ",") {
		t.Fatalf("Assigned(%s) = %d keys %v, want %d", signer, len(got), got, len(want))
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func keyState(t *testing.T, f *fixture, pk string) *store.KeyState {
	t.Helper()
	_, ks, err := f.cust.Get(t.Context(), pk)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// TestAssignRules: who may be assigned, who may then claim, and what the
// claim, a failed load, a reassignment and an unassignment do.
func TestAssignRules(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	keys := exported(t, f, "a", 4)
	fresh := generate(t, f, opRequest("never", 1)).Pubkeys()[0]

	// A key whose deposit was never handed out is refused, and the whole
	// call writes nothing.
	if _, err := f.cust.Assign(ctx, []string{keys[0], fresh}, "s"); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "never exported") {
		t.Fatalf("assign with a never-exported key: %v", err)
	}
	mustAssigned(t, f, "s")
	if _, err := f.cust.Assign(ctx, keys[:1], ""); !errors.Is(err, ErrRequest) {
		t.Fatalf("empty signer: %v", err)
	}
	if _, err := f.cust.Assign(ctx, nil, "s"); !errors.Is(err, ErrRequest) {
		t.Fatalf("no keys: %v", err)
	}

	got, err := f.cust.Assign(ctx, keys[:3], "s")
	if err != nil || len(got) != 3 || !got[0].Changed || got[0].Key.AssignedTo != "s" || got[0].Previous != "" {
		t.Fatalf("assign: %+v %v", got, err)
	}
	mustAssigned(t, f, "s", keys[:3]...)
	mustAssigned(t, f, "t")
	// Again: nothing changes.
	v := keyState(t, f, keys[0]).Version
	if got, err := f.cust.Assign(ctx, keys[:1], "s"); err != nil || got[0].Changed {
		t.Fatalf("repeat: %+v %v", got, err)
	}
	if keyState(t, f, keys[0]).Version != v {
		t.Fatal("a repeated assignment wrote the ledger")
	}

	// Another signer cannot claim an assigned key, even as a takeover; the
	// error names the assignee and nothing is claimed (the unassigned key
	// in the same load is released).
	_, err = f.cust.ClaimForSigner(ctx, LoadRequest{Signer: "t", Pubkeys: []string{keys[3], keys[0]}, Takeover: true})
	if !errors.Is(err, ErrAssigned) || !strings.Contains(err.Error(), "assigned to s") {
		t.Fatalf("claim by another signer: %v", err)
	}
	if ks := keyState(t, f, keys[3]); ks.State != store.StatusExported || ks.Signer != "" {
		t.Fatalf("refused load left %+v", ks)
	}

	// The assignee claims: the assignment is used up.
	cl, err := f.cust.ClaimForSigner(ctx, LoadRequest{Signer: "s", Pubkeys: keys[:1]})
	if err != nil {
		t.Fatal(err)
	}
	if ks := keyState(t, f, keys[0]); ks.State != store.StatusDeposited || ks.Signer != "s" || ks.AssignedTo != "" {
		t.Fatalf("claimed: %+v", ks)
	}
	mustAssigned(t, f, "s", keys[1:3]...)
	// A failed load gives the assignment back.
	if err := cl.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ks := keyState(t, f, keys[0]); ks.State != store.StatusExported || ks.AssignedTo != "s" {
		t.Fatalf("released: %+v", ks)
	}
	if _, err := f.cust.ClaimForSigner(ctx, LoadRequest{Signer: "s", Pubkeys: keys[:1]}); err != nil {
		t.Fatal(err)
	}

	// A live key: assigning it to its signer changes nothing; to another is
	// refused (a takeover or an unload moves it); unassigning it is refused.
	if got, err := f.cust.Assign(ctx, keys[:1], "s"); err != nil || got[0].Changed {
		t.Fatalf("assign to the signer it is live on: %+v %v", got, err)
	}
	if _, err := f.cust.Assign(ctx, keys[:1], "t"); !errors.Is(err, ErrClaimed) || !strings.Contains(err.Error(), "live on s") {
		t.Fatalf("assign a live key elsewhere: %v", err)
	}
	if _, err := f.cust.Unassign(ctx, keys[:1], ""); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "unload") {
		t.Fatalf("unassign a live key: %v", err)
	}
	// The takeover path still moves it (no assignment involved).
	if _, err := f.cust.ClaimForSigner(ctx, LoadRequest{Signer: "t", Pubkeys: keys[:1], Takeover: true}); err != nil {
		t.Fatalf("takeover of a live, unassigned key: %v", err)
	}
	// Unloaded, it can be assigned again.
	if _, err := f.cust.ReleaseFromSigner(ctx, keys[0], "t", nil); err != nil {
		t.Fatal(err)
	}
	mustAssigned(t, f, "t")
	if _, err := f.cust.Assign(ctx, keys[:1], "u"); err != nil {
		t.Fatal(err)
	}

	// Reassignment and unassignment while not live.
	got, err = f.cust.Assign(ctx, keys[1:2], "t")
	if err != nil || got[0].Previous != "s" || got[0].Key.AssignedTo != "t" {
		t.Fatalf("reassign: %+v %v", got, err)
	}
	mustAssigned(t, f, "s", keys[2])
	mustAssigned(t, f, "t", keys[1])
	if _, err := f.cust.ClaimForSigner(ctx, LoadRequest{Signer: "s", Pubkeys: keys[1:2]}); !errors.Is(err, ErrAssigned) {
		t.Fatalf("old assignee claims: %v", err)
	}
	if _, err := f.cust.Unassign(ctx, keys[1:3], "s"); !errors.Is(err, ErrAssigned) || !strings.Contains(err.Error(), "assigned to t") {
		t.Fatalf("unassign from s of a key assigned to t: %v", err)
	}
	mustAssigned(t, f, "s", keys[2])
	if got, err := f.cust.Unassign(ctx, keys[1:3], ""); err != nil || !got[0].Changed || got[1].Key.AssignedTo != "" {
		t.Fatalf("unassign: %+v %v", got, err)
	}
	mustAssigned(t, f, "s")
	mustAssigned(t, f, "t")
	if got, err := f.cust.Unassign(ctx, keys[1:2], "t"); err != nil || got[0].Changed {
		t.Fatalf("unassign again: %+v %v", got, err)
	}
	// An unassigned key is claimed by anyone, as before.
	if _, err := f.cust.ClaimForSigner(ctx, LoadRequest{Signer: "x", Pubkeys: keys[1:2]}); err != nil {
		t.Fatal(err)
	}

	// Retired and exit-signed keys are not assigned; retiring drops an
	// assignment; an exit signed after the assignment keeps it.
	if _, err := f.cust.Assign(ctx, keys[2:3], "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cust.MarkExitSigned(ctx, keys[2]); err != nil {
		t.Fatal(err)
	}
	mustAssigned(t, f, "s", keys[2])
	if _, err := f.cust.Assign(ctx, keys[2:3], "t"); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "signed exit") {
		t.Fatalf("reassign an exit-signed key: %v", err)
	}
	if _, err := f.cust.Retire(ctx, keys[2], "test"); err != nil {
		t.Fatal(err)
	}
	mustAssigned(t, f, "s")
	if _, err := f.cust.Assign(ctx, keys[2:3], "s"); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "retired") {
		t.Fatalf("assign a retired key: %v", err)
	}
	exitOnly := exported(t, f, "b", 1)[0]
	if _, err := f.cust.MarkExitSigned(ctx, exitOnly); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cust.Assign(ctx, []string{exitOnly}, "s"); !errors.Is(err, ErrState) {
		t.Fatalf("assign an exit-signed key: %v", err)
	}
}

// TestAssignImported: an imported key (no export, maybe no ledger state)
// is assignable and claimed by its assignee only.
func TestAssignImported(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	seed := testSeed(t)
	defer seed.Destroy()
	keys, err := KeysFromMnemonic(seed, 0, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.gen.Import(ctx, depositdata.Hoodi, keys)
	if err != nil {
		t.Fatal(err)
	}
	pks := res.Pubkeys()
	if keyState(t, f, pks[0]) != nil {
		t.Fatal("an imported key starts with a ledger state")
	}
	if _, err := f.cust.Assign(ctx, pks, "s"); err != nil {
		t.Fatal(err)
	}
	if ks := keyState(t, f, pks[0]); ks.State != store.StatusImported || ks.AssignedTo != "s" || ks.ExportID != "" {
		t.Fatalf("assigned imported key: %+v", ks)
	}
	mustAssigned(t, f, "s", pks...)
	if _, err := f.cust.ClaimForSigner(ctx, LoadRequest{Signer: "t", Pubkeys: pks[:1]}); !errors.Is(err, ErrAssigned) {
		t.Fatalf("claim by another signer: %v", err)
	}
	if _, err := f.cust.ClaimForSigner(ctx, LoadRequest{Signer: "s", Pubkeys: pks}); err != nil {
		t.Fatal(err)
	}
	mustAssigned(t, f, "s")
}

// TestAssignConflictUndoes: when a write of a multi-key assignment fails
// because another process changed a key, the assignments already written
// are undone.
func TestAssignConflictUndoes(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	keys := exported(t, f, "a", 3)
	// A ledger that lets another writer in just before the third key's
	// write (a claim by "x").
	f.cust.ledger = &interposer{Ledger: f.ledger, before: func(ks *store.KeyState) {
		if ks.Pubkey == keys[2] && ks.AssignedTo == "s" {
			other, _ := NewCustodian(f.store, f.ledger, f.verifier)
			if _, err := other.ClaimForSigner(context.Background(), LoadRequest{Signer: "x", Pubkeys: keys[2:]}); err != nil {
				t.Error(err)
			}
		}
	}}
	if _, err := f.cust.Assign(ctx, keys, "s"); !errors.Is(err, ErrClaimed) {
		t.Fatalf("assign over a concurrent claim: %v", err)
	}
	for _, pk := range keys[:2] {
		if ks := keyState(t, f, pk); ks.AssignedTo != "" {
			t.Fatalf("0x%s still assigned after the undo: %+v", pk[:8], ks)
		}
	}
	if ks := keyState(t, f, keys[2]); ks.State != store.StatusDeposited || ks.Signer != "x" {
		t.Fatalf("the concurrent claim: %+v", ks)
	}
}

type interposer struct {
	store.Ledger
	before func(*store.KeyState)
}

func (l *interposer) PutKey(ctx context.Context, ks *store.KeyState) error {
	l.before(ks)
	return l.Ledger.PutKey(ctx, ks)
}

// TestAssignRaces: many rounds of (1) the assignee and another signer
// claiming an assigned key at once: only the assignee ever gets it; (2) an
// assignment to one signer and a claim by another racing for an
// unassigned key: exactly one wins, and the ledger says which.
func TestAssignRaces(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	const rounds = 12
	keys := exported(t, f, "race", 2*rounds)
	for r := range rounds {
		pk := keys[2*r]
		if _, err := f.cust.Assign(ctx, []string{pk}, "s"); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, 4)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				signer := []string{"s", "t"}[i%2]
				_, errs[i] = f.cust.ClaimForSigner(context.Background(), LoadRequest{Signer: signer, Pubkeys: []string{pk}})
			}()
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case i%2 == 1 && err == nil:
				t.Fatalf("round %d: signer t claimed a key assigned to s", r)
			case i%2 == 1 && !errors.Is(err, ErrAssigned) && !errors.Is(err, ErrClaimed):
				t.Fatalf("round %d: t: %v", r, err)
			case i%2 == 0 && err == nil:
				won++
			}
		}
		if ks := keyState(t, f, pk); won == 0 || ks.State != store.StatusDeposited || ks.Signer != "s" || ks.AssignedTo != "" {
			t.Fatalf("round %d: %d claims by s won, state %+v", r, won, ks)
		}

		pk = keys[2*r+1]
		var assignErr, claimErr error
		wg.Add(2)
		go func() { defer wg.Done(); _, assignErr = f.cust.Assign(context.Background(), []string{pk}, "s") }()
		go func() {
			defer wg.Done()
			_, claimErr = f.cust.ClaimForSigner(context.Background(), LoadRequest{Signer: "t", Pubkeys: []string{pk}})
		}()
		wg.Wait()
		ks := keyState(t, f, pk)
		switch {
		case assignErr == nil && claimErr == nil:
			t.Fatalf("round %d: both the assignment to s and the claim by t succeeded: %+v", r, ks)
		case assignErr == nil:
			if ks.State != store.StatusExported || ks.AssignedTo != "s" || ks.Signer != "" {
				t.Fatalf("round %d: assignment won, state %+v (claim: %v)", r, ks, claimErr)
			}
		case claimErr == nil:
			if ks.State != store.StatusDeposited || ks.Signer != "t" || ks.AssignedTo != "" || !errors.Is(assignErr, ErrClaimed) {
				t.Fatalf("round %d: claim won, state %+v (assign: %v)", r, ks, assignErr)
			}
		default:
			t.Fatalf("round %d: neither won: assign %v, claim %v", r, assignErr, claimErr)
		}
	}

}
