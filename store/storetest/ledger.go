package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/store"
)

// RunLedger runs the conformance suite for store.Ledger against the ledgers
// newLedger returns. newLedger must return an empty ledger each time it is
// called and arrange for it to be closed (t.Cleanup). To exercise
// pagination it should configure a small page size (2 or less).
func RunLedger(t *testing.T, newLedger func(t *testing.T) store.Ledger) {
	tests := []struct {
		name string
		fn   func(t *testing.T, l store.Ledger)
	}{
		{"CreateExport", testCreateExport},
		{"CreateExportInvalid", testCreateExportInvalid},
		{"Exports", testExports},
		{"Claim", testClaim},
		{"ClaimInvalid", testClaimInvalid},
		{"Seal", testSeal},
		{"TopUpExport", testTopUpExport},
		{"RaceTopUpExport", testRaceTopUpExport},
		{"PutKey", testPutKey},
		{"PutKeyInvalid", testPutKeyInvalid},
		{"AssignedTo", testAssignedTo},
		{"Keys", testKeys},
		{"Pin", testPin},
		{"LargeExport", testLargeExport},
		{"RaceCreateExport", testRaceCreateExport},
		{"RaceOverlappingClaims", testRaceOverlappingClaims},
		{"RaceClaimSeal", testRaceClaimSeal},
		{"RacePutKey", testRacePutKey},
		{"RacePin", testRacePin},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newLedger(t))
		})
	}
}

// ExportID returns a random export id.
func ExportID(t testing.TB) string {
	return "exp-" + RequestID(t)[4:]
}

// Pubkeys returns n random pubkeys.
func Pubkeys(t testing.TB, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = Pubkey(t)
	}
	return out
}

// NewExport returns a new export (Claims 0, not sealed) of candidates.
func NewExport(t testing.TB, candidates []string) *store.Export {
	return &store.Export{
		ID: ExportID(t),
		// Nanoseconds and a non-UTC zone: the ledger keeps UTC milliseconds.
		CreatedAt:             time.Date(2026, 2, 3, 4, 5, 6, 789123456, time.FixedZone("Z", -5*3600)),
		Network:               "hoodi",
		WithdrawalCredentials: "01" + strings.Repeat("0", 22) + "8943545177806ed17b9f23f0a21ee5948ecaa776",
		Candidates:            candidates,
		By:                    "alice@host",
	}
}

// normExport returns e as the ledger stores it: CreatedAt in UTC
// milliseconds, empty lists nil.
func normExport(e *store.Export) *store.Export {
	n := *e
	n.CreatedAt = e.CreatedAt.UTC().Truncate(time.Millisecond)
	if len(n.Candidates) == 0 {
		n.Candidates = nil
	}
	if len(n.Members) == 0 {
		n.Members = nil
	}
	return &n
}

func checkExport(t *testing.T, what string, got, want *store.Export) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: export %s: got nil", what, want.ID)
	}
	w := normExport(want)
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("%s: export %s: CreatedAt location %v, want UTC", what, want.ID, got.CreatedAt.Location())
	}
	if !reflect.DeepEqual(got, w) {
		t.Errorf("%s: export %s:\n got %+v\nwant %+v", what, want.ID, short(got), short(w))
	}
}

// short abbreviates long lists in failure messages.
func short(e *store.Export) string {
	c := *e
	f := func(l []string) string {
		if len(l) > 4 {
			return fmt.Sprintf("%v ... (%d)", l[:4], len(l))
		}
		return fmt.Sprint(l)
	}
	return fmt.Sprintf("{ID:%s CreatedAt:%v Network:%s WC:%s Candidates:%s Claims:%d Sealed:%v Members:%s By:%s TopUpGwei:%d}",
		c.ID, c.CreatedAt, c.Network, c.WithdrawalCredentials, f(c.Candidates), c.Claims, c.Sealed, f(c.Members), c.By, c.TopUpGwei)
}

func mustCreate(t *testing.T, l store.Ledger, e *store.Export) {
	t.Helper()
	got, err := l.CreateExport(ctx(t), e)
	if err != nil {
		t.Fatalf("CreateExport(%s): %v", e.ID, err)
	}
	checkExport(t, "CreateExport", got, e)
}

func mustGetExport(t *testing.T, l store.Ledger, id string) *store.Export {
	t.Helper()
	e, err := l.GetExport(ctx(t), id)
	if err != nil {
		t.Fatalf("GetExport(%s): %v", id, err)
	}
	return e
}

func mustClaim(t *testing.T, l store.Ledger, id string, pubkeys []string) []string {
	t.Helper()
	got, err := l.ClaimForExport(ctx(t), id, pubkeys, time.Now(), "claimer")
	if err != nil {
		t.Fatalf("ClaimForExport(%s, %d keys): %v", id, len(pubkeys), err)
	}
	return got
}

func mustGetKey(t *testing.T, l store.Ledger, pubkey string) *store.KeyState {
	t.Helper()
	ks, err := l.GetKey(ctx(t), pubkey)
	if err != nil {
		t.Fatalf("GetKey(%s): %v", pubkey, err)
	}
	return ks
}

func testCreateExport(t *testing.T, l store.Ledger) {
	e := NewExport(t, Pubkeys(t, 5))
	mustCreate(t, l, e)
	checkExport(t, "GetExport", mustGetExport(t, l, e.ID), e)

	// The same id again, with other fields: ErrExists and the stored export.
	again := NewExport(t, Pubkeys(t, 2))
	again.ID = e.ID
	again.Network = "mainnet"
	got, err := l.CreateExport(ctx(t), again)
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateExport(same id) = %v, want ErrExists", err)
	}
	checkExport(t, "CreateExport(same id)", got, e)
	checkExport(t, "GetExport after refused create", mustGetExport(t, l, e.ID), e)

	// No candidates, and a caller's slice changed afterwards.
	empty := NewExport(t, nil)
	empty.By = ""
	mustCreate(t, l, empty)
	checkExport(t, "GetExport(empty)", mustGetExport(t, l, empty.ID), empty)
	cands := Pubkeys(t, 3)
	e2 := NewExport(t, slices.Clone(cands))
	mustCreate(t, l, e2)
	e2.Candidates[0] = Pubkey(t)
	if got := mustGetExport(t, l, e2.ID); !reflect.DeepEqual(got.Candidates, cands) {
		t.Errorf("candidates = %v, want %v", got.Candidates, cands)
	}

	if _, err := l.GetExport(ctx(t), ExportID(t)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetExport(missing) = %v, want ErrNotFound", err)
	}
	for _, id := range []string{"", "a#b", "a/b", "a b", strings.Repeat("x", store.MaxExportIDLen+1)} {
		if _, err := l.GetExport(ctx(t), id); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("GetExport(%q) = %v, want ErrInvalid", id, err)
		}
	}
	// The longest id is fine.
	long := NewExport(t, Pubkeys(t, 1))
	long.ID = strings.Repeat("A.b_c-9", store.MaxExportIDLen/7+1)[:store.MaxExportIDLen]
	mustCreate(t, l, long)
	checkExport(t, "GetExport(long id)", mustGetExport(t, l, long.ID), long)
}

func testCreateExportInvalid(t *testing.T, l store.Ledger) {
	mutate := map[string]func(e *store.Export){
		"empty id":         func(e *store.Export) { e.ID = "" },
		"id with #":        func(e *store.Export) { e.ID += "#c#0" },
		"zero time":        func(e *store.Export) { e.CreatedAt = time.Time{} },
		"no network":       func(e *store.Export) { e.Network = "" },
		"short wc":         func(e *store.Export) { e.WithdrawalCredentials = e.WithdrawalCredentials[:62] },
		"upper wc":         func(e *store.Export) { e.WithdrawalCredentials = strings.ToUpper(e.WithdrawalCredentials) },
		"0x wc":            func(e *store.Export) { e.WithdrawalCredentials = "0x" + e.WithdrawalCredentials[2:] },
		"bad candidate":    func(e *store.Export) { e.Candidates[1] = "0x" + e.Candidates[1][2:] },
		"repeat candidate": func(e *store.Export) { e.Candidates[2] = e.Candidates[0] },
		"claims":           func(e *store.Export) { e.Claims = 1 },
		"negative claims":  func(e *store.Export) { e.Claims = -1 },
		"sealed":           func(e *store.Export) { e.Sealed = true },
		"sealed, members":  func(e *store.Export) { e.Sealed = true; e.Members = e.Candidates[:1] },
		"members":          func(e *store.Export) { e.Members = e.Candidates[:1] },
		"empty wc":         func(e *store.Export) { e.WithdrawalCredentials = "" },
		"top-up too large": func(e *store.Export) { e.TopUpGwei = store.MaxTopUpGwei + 1 },
		"top-up, bad wc":   func(e *store.Export) { e.TopUpGwei = 1e9; e.WithdrawalCredentials = "0x" },
		"top-up, claims":   func(e *store.Export) { e.TopUpGwei = 1e9; e.Claims = 1 },
	}
	for name, m := range mutate {
		e := NewExport(t, Pubkeys(t, 3))
		m(e)
		if _, err := l.CreateExport(ctx(t), e); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: CreateExport = %v, want ErrInvalid", name, err)
		}
		if e.ID != "" && store.ValidateExportID(e.ID) == nil {
			if _, err := l.GetExport(ctx(t), e.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: refused export was written: GetExport = %v", name, err)
			}
		}
	}
	if _, err := l.CreateExport(ctx(t), nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("CreateExport(nil) = %v, want ErrInvalid", err)
	}
	for e, err := range l.Exports(ctx(t)) {
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("refused export %s is listed", e.ID)
	}
}

func collectExports(t *testing.T, l store.Ledger) []*store.Export {
	t.Helper()
	var out []*store.Export
	for e, err := range l.Exports(ctx(t)) {
		if err != nil {
			t.Fatalf("Exports: %v", err)
		}
		out = append(out, e)
	}
	return out
}

func testExports(t *testing.T, l store.Ledger) {
	if got := collectExports(t, l); len(got) != 0 {
		t.Fatalf("Exports of an empty ledger yielded %d", len(got))
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []*store.Export
	for i := 0; i < 7; i++ {
		e := NewExport(t, Pubkeys(t, i%3))
		// Pairs share a CreatedAt, so the order falls back to the id.
		e.CreatedAt = base.Add(time.Duration(6-i/2) * time.Hour)
		e.ID = fmt.Sprintf("exp-%d-%s", 9-i, e.ID)
		want = append(want, e)
	}
	for _, i := range []int{3, 0, 6, 1, 5, 2, 4} {
		mustCreate(t, l, want[i])
	}
	// Seal one, with members, and claim for another.
	sealed := want[4]
	if len(sealed.Candidates) == 0 {
		t.Fatal("test setup: export to seal has no candidates")
	}
	if err := l.SealExport(ctx(t), sealed.ID, sealed.Candidates[:1], 0); err != nil {
		t.Fatalf("SealExport: %v", err)
	}
	sealed.Sealed, sealed.Members = true, sealed.Candidates[:1]
	claimed := want[5]
	mustClaim(t, l, claimed.ID, claimed.Candidates)
	claimed.Claims = len(claimed.Candidates)

	slices.SortFunc(want, func(a, b *store.Export) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	got := collectExports(t, l)
	if len(got) != len(want) {
		t.Fatalf("Exports yielded %d exports, want %d", len(got), len(want))
	}
	for i := range want {
		checkExport(t, fmt.Sprintf("Exports[%d]", i), got[i], want[i])
	}
	// Stopping early.
	n := 0
	for _, err := range l.Exports(ctx(t)) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Errorf("loop ran %d times, want 2", n)
	}
	// A cancelled context ends the iteration with an error.
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	var sawErr bool
	for e, err := range l.Exports(c) {
		if err == nil {
			t.Errorf("Exports(cancelled ctx) yielded %s", e.ID)
			continue
		}
		sawErr = true
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Exports(cancelled ctx) error = %v, want context.Canceled", err)
		}
	}
	if !sawErr {
		t.Error("Exports(cancelled ctx) yielded no error")
	}
}

func testClaim(t *testing.T, l store.Ledger) {
	keys := Pubkeys(t, 8)
	e := NewExport(t, keys)
	mustCreate(t, l, e)
	at := time.Date(2026, 3, 4, 5, 6, 7, 891999999, time.FixedZone("Q", 7200))
	got, err := l.ClaimForExport(ctx(t), e.ID, []string{keys[4], keys[1], keys[2]}, at, "bob@host")
	if err != nil {
		t.Fatalf("ClaimForExport: %v", err)
	}
	if want := []string{keys[4], keys[1], keys[2]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("claimed %v, want %v (in argument order)", got, want)
	}
	for _, pk := range got {
		want := &store.KeyState{Pubkey: pk, ExportID: e.ID, State: store.StatusExported, Version: 1,
			UpdatedAt: at.UTC().Truncate(time.Millisecond), By: "bob@host"}
		ks := mustGetKey(t, l, pk)
		if !reflect.DeepEqual(ks, want) {
			t.Errorf("GetKey(%s) = %+v, want %+v", pk, ks, want)
		}
		if ks.UpdatedAt.Location() != time.UTC {
			t.Errorf("UpdatedAt location %v, want UTC", ks.UpdatedAt.Location())
		}
	}
	if c := mustGetExport(t, l, e.ID).Claims; c != 3 {
		t.Errorf("Claims = %d, want 3", c)
	}
	// Overlapping claim: only the new keys, and Claims counts them.
	got = mustClaim(t, l, e.ID, keys[:6])
	if want := []string{keys[0], keys[3], keys[5]}; !reflect.DeepEqual(got, want) {
		t.Errorf("second claim = %v, want %v", got, want)
	}
	if c := mustGetExport(t, l, e.ID).Claims; c != 6 {
		t.Errorf("Claims = %d, want 6", c)
	}
	// Everything already claimed: nothing, no error, Claims unchanged.
	if got := mustClaim(t, l, e.ID, keys[:3]); len(got) != 0 {
		t.Errorf("claim of claimed keys = %v, want none", got)
	}
	if got := mustClaim(t, l, e.ID, nil); len(got) != 0 {
		t.Errorf("empty claim = %v, want none", got)
	}
	// Another export cannot take them; a key claimed elsewhere is skipped.
	other := NewExport(t, keys)
	mustCreate(t, l, other)
	got = mustClaim(t, l, other.ID, keys)
	if want := keys[6:]; !reflect.DeepEqual(got, want) {
		t.Errorf("claim by another export = %v, want %v", got, want)
	}
	if c := mustGetExport(t, l, other.ID).Claims; c != 2 {
		t.Errorf("other Claims = %d, want 2", c)
	}
	if c := mustGetExport(t, l, e.ID).Claims; c != 6 {
		t.Errorf("Claims = %d after another export's claim, want 6", c)
	}
	for i, pk := range keys {
		want := e.ID
		if i >= 6 {
			want = other.ID
		}
		if ks := mustGetKey(t, l, pk); ks.ExportID != want || ks.Version != 1 {
			t.Errorf("key %d: ExportID %s version %d, want %s version 1", i, ks.ExportID, ks.Version, want)
		}
	}
	// A key with a KeyState written by PutKey (an imported key) is skipped too.
	imported := Pubkey(t)
	if err := l.PutKey(ctx(t), &store.KeyState{Pubkey: imported, State: store.StatusDeposited, Signer: "s1", Version: 1, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	third := NewExport(t, []string{imported})
	mustCreate(t, l, third)
	if got := mustClaim(t, l, third.ID, []string{imported}); len(got) != 0 {
		t.Errorf("claim of an imported key = %v, want none", got)
	}

	// Missing export: ErrNotFound, nothing written.
	fresh := Pubkey(t)
	if _, err := l.ClaimForExport(ctx(t), ExportID(t), []string{fresh}, time.Now(), "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ClaimForExport(missing export) = %v, want ErrNotFound", err)
	}
	if _, err := l.ClaimForExport(ctx(t), ExportID(t), nil, time.Now(), "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ClaimForExport(missing export, no keys) = %v, want ErrNotFound", err)
	}
	if _, err := l.GetKey(ctx(t), fresh); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim for a missing export wrote a key: GetKey = %v", err)
	}
	// Sealed export: ErrConflict, nothing written.
	sealed := NewExport(t, []string{fresh})
	mustCreate(t, l, sealed)
	if err := l.SealExport(ctx(t), sealed.ID, nil, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := l.ClaimForExport(ctx(t), sealed.ID, []string{fresh}, time.Now(), "x"); !errors.Is(err, store.ErrConflict) || len(got) != 0 {
		t.Errorf("ClaimForExport(sealed) = %v, %v, want ErrConflict", got, err)
	}
	if _, err := l.ClaimForExport(ctx(t), sealed.ID, nil, time.Now(), "x"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("ClaimForExport(sealed, no keys) = %v, want ErrConflict", err)
	}
	if _, err := l.GetKey(ctx(t), fresh); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim for a sealed export wrote a key: GetKey = %v", err)
	}
	if c := mustGetExport(t, l, sealed.ID).Claims; c != 0 {
		t.Errorf("sealed export's Claims = %d, want 0", c)
	}
}

func testClaimInvalid(t *testing.T, l store.Ledger) {
	e := NewExport(t, Pubkeys(t, 2))
	mustCreate(t, l, e)
	pk := Pubkey(t)
	for name, tc := range map[string]struct {
		id   string
		keys []string
		at   time.Time
	}{
		"bad id":      {"a#b", []string{pk}, time.Now()},
		"empty id":    {"", []string{pk}, time.Now()},
		"bad pubkey":  {e.ID, []string{pk, strings.ToUpper(pk)}, time.Now()},
		"short key":   {e.ID, []string{pk[:94]}, time.Now()},
		"repeat":      {e.ID, []string{pk, Pubkey(t), pk}, time.Now()},
		"zero time":   {e.ID, []string{pk}, time.Time{}},
		"0x pubkey":   {e.ID, []string{"0x" + pk[2:]}, time.Now()},
		"empty entry": {e.ID, []string{""}, time.Now()},
	} {
		if _, err := l.ClaimForExport(ctx(t), tc.id, tc.keys, tc.at, "x"); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: ClaimForExport = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := l.GetKey(ctx(t), pk); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused claim wrote a key: GetKey = %v", err)
	}
	if c := mustGetExport(t, l, e.ID).Claims; c != 0 {
		t.Errorf("Claims = %d after refused claims, want 0", c)
	}
}

func testSeal(t *testing.T, l store.Ledger) {
	keys := Pubkeys(t, 6)
	e := NewExport(t, keys)
	mustCreate(t, l, e)
	mustClaim(t, l, e.ID, keys[:4])
	// Stale claim counts: conflict, nothing written.
	for _, c := range []int{0, 3, 5} {
		if err := l.SealExport(ctx(t), e.ID, keys[:4], c); !errors.Is(err, store.ErrConflict) {
			t.Errorf("SealExport(claims %d) = %v, want ErrConflict", c, err)
		}
	}
	want := *e
	want.Claims = 4
	checkExport(t, "after refused seals", mustGetExport(t, l, e.ID), &want)
	// Members that are not candidates, or repeat: ErrInvalid.
	for name, m := range map[string][]string{
		"not a candidate": {keys[0], Pubkey(t)},
		"repeat":          {keys[0], keys[1], keys[0]},
		"bad pubkey":      {keys[0], "nope"},
	} {
		if err := l.SealExport(ctx(t), e.ID, m, 4); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("SealExport(%s) = %v, want ErrInvalid", name, err)
		}
	}
	checkExport(t, "after invalid seals", mustGetExport(t, l, e.ID), &want)
	// The right count seals; members keep their order.
	members := []string{keys[3], keys[0], keys[2], keys[1]}
	if err := l.SealExport(ctx(t), e.ID, members, 4); err != nil {
		t.Fatalf("SealExport: %v", err)
	}
	want.Sealed, want.Members = true, members
	checkExport(t, "after seal", mustGetExport(t, l, e.ID), &want)
	// Sealed once: any later seal conflicts, even with the same arguments.
	if err := l.SealExport(ctx(t), e.ID, members, 4); !errors.Is(err, store.ErrConflict) {
		t.Errorf("SealExport(again) = %v, want ErrConflict", err)
	}
	if err := l.SealExport(ctx(t), e.ID, keys[:1], 4); !errors.Is(err, store.ErrConflict) {
		t.Errorf("SealExport(again, other members) = %v, want ErrConflict", err)
	}
	checkExport(t, "after second seal", mustGetExport(t, l, e.ID), &want)
	// And claims stop.
	if _, err := l.ClaimForExport(ctx(t), e.ID, keys[4:], time.Now(), "x"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("ClaimForExport after seal = %v, want ErrConflict", err)
	}
	checkExport(t, "after claim on sealed", mustGetExport(t, l, e.ID), &want)

	if err := l.SealExport(ctx(t), ExportID(t), nil, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SealExport(missing) = %v, want ErrNotFound", err)
	}
	if err := l.SealExport(ctx(t), "bad#id", nil, 0); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("SealExport(bad id) = %v, want ErrInvalid", err)
	}
	// No members (an export whose keys all went elsewhere).
	empty := NewExport(t, Pubkeys(t, 2))
	mustCreate(t, l, empty)
	if err := l.SealExport(ctx(t), empty.ID, nil, 0); err != nil {
		t.Fatalf("SealExport(no members): %v", err)
	}
	empty.Sealed = true
	checkExport(t, "sealed with no members", mustGetExport(t, l, empty.ID), empty)
}

// NewTopUpExport returns a new top-up export of candidates (TopUpGwei set,
// no stated withdrawal credentials).
func NewTopUpExport(t testing.TB, candidates []string, gwei uint64) *store.Export {
	e := NewExport(t, candidates)
	e.ID = "topup-" + e.ID
	e.WithdrawalCredentials, e.TopUpGwei = "", gwei
	return e
}

// testTopUpExport: a top-up export keeps its amount, claims nothing
// (ClaimForExport is refused with ErrInvalid and writes nothing, for keys
// free or held by another export), is sealed with claims 0, and leaves the
// KeyStates of its members as they were; a key can be in several top-ups.
func testTopUpExport(t *testing.T, l store.Ledger) {
	keys := Pubkeys(t, 4)
	// keys[0] and keys[1] are handed out by an ordinary export first.
	dep := NewExport(t, keys[:2])
	mustCreate(t, l, dep)
	if got := mustClaim(t, l, dep.ID, keys[:2]); len(got) != 2 {
		t.Fatalf("claimed %v", got)
	}
	if err := l.SealExport(ctx(t), dep.ID, keys[:2], 2); err != nil {
		t.Fatal(err)
	}
	before := map[string]*store.KeyState{keys[0]: mustGetKey(t, l, keys[0]), keys[1]: mustGetKey(t, l, keys[1])}
	checkExport(t, "ordinary export", mustGetExport(t, l, dep.ID), &store.Export{ID: dep.ID, CreatedAt: dep.CreatedAt,
		Network: dep.Network, WithdrawalCredentials: dep.WithdrawalCredentials, Candidates: keys[:2], Claims: 2, Sealed: true,
		Members: keys[:2], By: dep.By})

	// Members in the operator's order, not sorted.
	tu := NewTopUpExport(t, []string{keys[1], keys[0], keys[2]}, 1_000_000_000)
	mustCreate(t, l, tu)
	checkExport(t, "GetExport(top-up)", mustGetExport(t, l, tu.ID), tu)
	for name, pks := range map[string][]string{"free key": keys[2:3], "claimed keys": keys[:2], "all": tu.Candidates} {
		if got, err := l.ClaimForExport(ctx(t), tu.ID, pks, time.Now(), "x"); !errors.Is(err, store.ErrInvalid) || len(got) != 0 {
			t.Errorf("ClaimForExport(top-up, %s) = %v, %v; want ErrInvalid", name, got, err)
		}
	}
	if ks, err := l.GetKey(ctx(t), keys[2]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused top-up claim wrote key %s: %+v, %v", keys[2], ks, err)
	}
	checkExport(t, "after refused claims", mustGetExport(t, l, tu.ID), tu)
	// Sealed with claims 0; a stale count conflicts.
	if err := l.SealExport(ctx(t), tu.ID, tu.Candidates, 1); !errors.Is(err, store.ErrConflict) {
		t.Errorf("SealExport(top-up, claims 1) = %v, want ErrConflict", err)
	}
	if err := l.SealExport(ctx(t), tu.ID, tu.Candidates, 0); err != nil {
		t.Fatalf("SealExport(top-up): %v", err)
	}
	want := *tu
	want.Sealed, want.Members = true, tu.Candidates
	checkExport(t, "sealed top-up", mustGetExport(t, l, tu.ID), &want)
	if err := l.SealExport(ctx(t), tu.ID, tu.Candidates, 0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("SealExport(top-up again) = %v, want ErrConflict", err)
	}
	if _, err := l.ClaimForExport(ctx(t), tu.ID, keys[3:], time.Now(), "x"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ClaimForExport(sealed top-up) = %v, want ErrInvalid", err)
	}

	// The same keys in a second top-up, with stated credentials and the
	// largest amount the ledger holds.
	tu2 := NewTopUpExport(t, keys[:2], store.MaxTopUpGwei)
	tu2.WithdrawalCredentials = store.BLSTarget
	mustCreate(t, l, tu2)
	if err := l.SealExport(ctx(t), tu2.ID, keys[:2], 0); err != nil {
		t.Fatal(err)
	}
	want2 := *tu2
	want2.Sealed, want2.Members = true, keys[:2]
	checkExport(t, "second top-up", mustGetExport(t, l, tu2.ID), &want2)
	for pk, ks := range before {
		checkKey(t, "key after top-ups", mustGetKey(t, l, pk), ks)
	}
	// Exports lists each with its amount.
	amounts := map[string]uint64{}
	for _, e := range collectExports(t, l) {
		amounts[e.ID] = e.TopUpGwei
	}
	if amounts[dep.ID] != 0 || amounts[tu.ID] != tu.TopUpGwei || amounts[tu2.ID] != tu2.TopUpGwei || len(amounts) != 3 {
		t.Errorf("Exports: amounts %v", amounts)
	}
}

// testRaceTopUpExport: many creators of one top-up id, then many sealers:
// one CreateExport and one SealExport win, the rest see ErrExists and
// ErrConflict, and the stored export is the winner's.
func testRaceTopUpExport(t *testing.T, l store.Ledger) {
	const n = 8
	keys := Pubkeys(t, 3)
	id := NewTopUpExport(t, nil, 1).ID
	errs := make([]error, n)
	exps := make([]*store.Export, n)
	for i := range exps {
		exps[i] = NewTopUpExport(t, keys, uint64(1+i)*1_000_000_000)
		exps[i].ID = id
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range exps {
		wg.Go(func() {
			<-start
			_, errs[i] = l.CreateExport(ctx(t), exps[i])
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Errorf("CreateExport %d and %d of one top-up id both succeeded", winner, i)
		case !errors.Is(err, store.ErrExists):
			t.Errorf("CreateExport %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no CreateExport succeeded")
	}
	start = make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = l.SealExport(ctx(t), id, keys, 0)
		})
	}
	close(start)
	wg.Wait()
	sealed := 0
	for i, err := range errs {
		switch {
		case err == nil:
			sealed++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("SealExport %d: %v", i, err)
		}
	}
	if sealed != 1 {
		t.Errorf("%d SealExports of one top-up succeeded, want 1", sealed)
	}
	want := *exps[winner]
	want.Sealed, want.Members = true, keys
	checkExport(t, "raced top-up", mustGetExport(t, l, id), &want)
}

func newKeyState(t testing.TB) *store.KeyState {
	return &store.KeyState{
		Pubkey:      Pubkey(t),
		State:       store.StatusDeposited,
		Signer:      "web3signer-a",
		Version:     1,
		UpdatedAt:   time.Date(2026, 4, 5, 6, 7, 8, 912345678, time.FixedZone("P", 3600)),
		By:          "arn:aws:iam::111122223333:role/custody",
		Note:        "imported from another operator",
		Interchange: []byte(`{"metadata":{"interchange_format_version":"5"},"data":[]}`),
	}
}

func checkKey(t *testing.T, what string, got, want *store.KeyState) {
	t.Helper()
	w := *want
	w.UpdatedAt = want.UpdatedAt.UTC().Truncate(time.Millisecond)
	if len(w.Interchange) == 0 {
		w.Interchange = nil
	}
	if got == nil || !reflect.DeepEqual(*got, w) {
		t.Errorf("%s: key %s:\n got %+v\nwant %+v", what, want.Pubkey, got, w)
	}
}

func testPutKey(t *testing.T, l store.Ledger) {
	// An imported key: absent counts as version 0.
	ks := newKeyState(t)
	if err := l.PutKey(ctx(t), ks); err != nil {
		t.Fatalf("PutKey(v1): %v", err)
	}
	checkKey(t, "GetKey", mustGetKey(t, l, ks.Pubkey), ks)
	// Version 1 again: conflict.
	dup := *ks
	dup.Signer = "other"
	if err := l.PutKey(ctx(t), &dup); !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutKey(v1 again) = %v, want ErrConflict", err)
	}
	// Skipping a version: conflict.
	skip := *ks
	skip.Version = 3
	if err := l.PutKey(ctx(t), &skip); !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutKey(v3 over v1) = %v, want ErrConflict", err)
	}
	checkKey(t, "after conflicts", mustGetKey(t, l, ks.Pubkey), ks)
	// Version 2 changes every field but the export id.
	next := store.KeyState{Pubkey: ks.Pubkey, State: store.StatusRetired, Version: 2,
		UpdatedAt: ks.UpdatedAt.Add(time.Hour), By: "carol", Note: "retired: key compromised"}
	if err := l.PutKey(ctx(t), &next); err != nil {
		t.Fatalf("PutKey(v2): %v", err)
	}
	checkKey(t, "after v2", mustGetKey(t, l, ks.Pubkey), &next)
	// The export id is set once.
	moved := next
	moved.Version = 3
	moved.ExportID = ExportID(t)
	if err := l.PutKey(ctx(t), &moved); !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutKey(new export id) = %v, want ErrConflict", err)
	}
	checkKey(t, "after refused export id", mustGetKey(t, l, ks.Pubkey), &next)

	// A claimed key moves on from version 1 and keeps its export id.
	e := NewExport(t, Pubkeys(t, 1))
	mustCreate(t, l, e)
	pk := mustClaim(t, l, e.ID, e.Candidates)[0]
	dep := store.KeyState{Pubkey: pk, ExportID: e.ID, State: store.StatusDeposited, Signer: "s1", Version: 2, UpdatedAt: time.Now(), By: "d"}
	if err := l.PutKey(ctx(t), &dep); err != nil {
		t.Fatalf("PutKey(claimed key, v2): %v", err)
	}
	checkKey(t, "claimed key after v2", mustGetKey(t, l, pk), &dep)
	for name, m := range map[string]func(k *store.KeyState){
		"no export id":    func(k *store.KeyState) { k.ExportID = "" },
		"other export id": func(k *store.KeyState) { k.ExportID = ExportID(t) },
		"stale version":   func(k *store.KeyState) { k.Version = 2 },
		"version 1":       func(k *store.KeyState) { k.Version = 1 },
	} {
		k := dep
		k.Version = 3
		k.State = store.StatusExitSigned
		m(&k)
		if err := l.PutKey(ctx(t), &k); !errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: PutKey = %v, want ErrConflict", name, err)
		}
	}
	checkKey(t, "claimed key after conflicts", mustGetKey(t, l, pk), &dep)
	exit := dep
	exit.Version, exit.State, exit.Interchange = 3, store.StatusExitSigned, []byte(`{"data":[1]}`)
	if err := l.PutKey(ctx(t), &exit); err != nil {
		t.Fatalf("PutKey(v3): %v", err)
	}
	checkKey(t, "claimed key after v3", mustGetKey(t, l, pk), &exit)

	// The largest Interchange and texts fit on every backend.
	big := newKeyState(t)
	big.Interchange = []byte(`"` + strings.Repeat("i", store.MaxInterchangeLen-2) + `"`)
	big.Note = strings.Repeat("n", store.MaxTextLen)
	big.By = strings.Repeat("b", store.MaxTextLen)
	big.Signer = strings.Repeat("s", store.MaxTextLen)
	big.AssignedTo = strings.Repeat("a", store.MaxTextLen)
	if err := l.PutKey(ctx(t), big); err != nil {
		t.Fatalf("PutKey(largest): %v", err)
	}
	checkKey(t, "largest", mustGetKey(t, l, big.Pubkey), big)
	if got, err := l.Pin(ctx(t), strings.Repeat("p", store.MaxPinNameLen), strings.Repeat("v", store.MaxPinValueLen)); err != nil || len(got) != store.MaxPinValueLen {
		t.Fatalf("Pin(largest) = %d bytes, %v", len(got), err)
	}

	// An empty Interchange reads back as nil.
	emptyIC := newKeyState(t)
	emptyIC.Interchange = []byte{}
	if err := l.PutKey(ctx(t), emptyIC); err != nil {
		t.Fatal(err)
	}
	if got := mustGetKey(t, l, emptyIC.Pubkey); got.Interchange != nil {
		t.Errorf("empty Interchange read back as %#v, want nil", got.Interchange)
	}

	if _, err := l.GetKey(ctx(t), Pubkey(t)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetKey(missing) = %v, want ErrNotFound", err)
	}
	for _, pk := range []string{"", "0x" + ks.Pubkey[2:], strings.ToUpper(ks.Pubkey), ks.Pubkey[:94]} {
		if _, err := l.GetKey(ctx(t), pk); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("GetKey(%q) = %v, want ErrInvalid", pk, err)
		}
	}
}

func testPutKeyInvalid(t *testing.T, l store.Ledger) {
	for name, m := range map[string]func(k *store.KeyState){
		"bad pubkey":      func(k *store.KeyState) { k.Pubkey = "0x" + k.Pubkey[2:] },
		"generated":       func(k *store.KeyState) { k.State = store.StatusGenerated },
		"no state":        func(k *store.KeyState) { k.State = "" },
		"unknown state":   func(k *store.KeyState) { k.State = "lost" },
		"version 0":       func(k *store.KeyState) { k.Version = 0 },
		"version -1":      func(k *store.KeyState) { k.Version = -1 },
		"zero time":       func(k *store.KeyState) { k.UpdatedAt = time.Time{} },
		"bad interchange": func(k *store.KeyState) { k.Interchange = []byte(`{"data":`) },
		"bad export id":   func(k *store.KeyState) { k.ExportID = "a#b" },
		"long note":       func(k *store.KeyState) { k.Note = strings.Repeat("n", store.MaxTextLen+1) },
		"long assignee":   func(k *store.KeyState) { k.AssignedTo = strings.Repeat("a", store.MaxTextLen+1) },
		"long interchange": func(k *store.KeyState) {
			k.Interchange = []byte(`"` + strings.Repeat("i", store.MaxInterchangeLen) + `"`)
		},
	} {
		k := newKeyState(t)
		m(k)
		if err := l.PutKey(ctx(t), k); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: PutKey = %v, want ErrInvalid", name, err)
		}
	}
	if err := l.PutKey(ctx(t), nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("PutKey(nil) = %v, want ErrInvalid", err)
	}
	for ks, err := range l.Keys(ctx(t)) {
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("refused key %s was written", ks.Pubkey)
	}
}

// testAssignedTo: the assignee of a key is written, changed and cleared by
// PutKey like every other field, under the same compare-and-set, and Keys
// reads it; a key claimed for an export starts with none.
func testAssignedTo(t *testing.T, l store.Ledger) {
	e := NewExport(t, Pubkeys(t, 2))
	mustCreate(t, l, e)
	claimed := mustClaim(t, l, e.ID, e.Candidates)
	pk, other := claimed[0], claimed[1]
	if got := mustGetKey(t, l, pk); got.AssignedTo != "" {
		t.Fatalf("claimed key has assignee %q, want none", got.AssignedTo)
	}
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	assigned := store.KeyState{Pubkey: pk, ExportID: e.ID, State: store.StatusExported, AssignedTo: "enclave:parent-a",
		Version: 2, UpdatedAt: at, By: "op"}
	if err := l.PutKey(ctx(t), &assigned); err != nil {
		t.Fatalf("PutKey(assigned): %v", err)
	}
	checkKey(t, "assigned", mustGetKey(t, l, pk), &assigned)
	// A stale writer (version 2 again) cannot move the assignment.
	stale := assigned
	stale.AssignedTo = "enclave:parent-b"
	if err := l.PutKey(ctx(t), &stale); !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutKey(stale reassignment) = %v, want ErrConflict", err)
	}
	checkKey(t, "after stale reassignment", mustGetKey(t, l, pk), &assigned)
	re := assigned
	re.Version, re.AssignedTo, re.UpdatedAt = 3, "enclave:parent-b", at.Add(time.Second)
	if err := l.PutKey(ctx(t), &re); err != nil {
		t.Fatalf("PutKey(reassigned): %v", err)
	}
	checkKey(t, "reassigned", mustGetKey(t, l, pk), &re)
	live := re
	live.Version, live.State, live.Signer, live.AssignedTo, live.UpdatedAt = 4, store.StatusDeposited, "enclave:parent-b", "", at.Add(2*time.Second)
	if err := l.PutKey(ctx(t), &live); err != nil {
		t.Fatalf("PutKey(live, assignment cleared): %v", err)
	}
	checkKey(t, "live", mustGetKey(t, l, pk), &live)
	// An imported key (no export) carries an assignee from version 1.
	imp := store.KeyState{Pubkey: Pubkey(t), State: store.StatusImported, AssignedTo: "keymanager:https://signer:5062", Version: 1, UpdatedAt: at}
	if err := l.PutKey(ctx(t), &imp); err != nil {
		t.Fatalf("PutKey(imported, assigned): %v", err)
	}
	keys := collectKeys(t, l)
	checkKey(t, "Keys: live", keys[pk], &live)
	checkKey(t, "Keys: imported", keys[imp.Pubkey], &imp)
	if keys[other] == nil || keys[other].AssignedTo != "" {
		t.Errorf("Keys: unassigned key %+v", keys[other])
	}
}

func collectKeys(t *testing.T, l store.Ledger) map[string]*store.KeyState {
	t.Helper()
	out := map[string]*store.KeyState{}
	for ks, err := range l.Keys(ctx(t)) {
		if err != nil {
			t.Fatalf("Keys: %v", err)
		}
		if _, ok := out[ks.Pubkey]; ok {
			t.Fatalf("Keys yielded %s twice", ks.Pubkey)
		}
		out[ks.Pubkey] = ks
	}
	return out
}

func testKeys(t *testing.T, l store.Ledger) {
	if got := collectKeys(t, l); len(got) != 0 {
		t.Fatalf("Keys of an empty ledger yielded %d", len(got))
	}
	e := NewExport(t, Pubkeys(t, 5))
	mustCreate(t, l, e)
	mustClaim(t, l, e.ID, e.Candidates)
	want := map[string]*store.KeyState{}
	for _, pk := range e.Candidates {
		want[pk] = mustGetKey(t, l, pk)
	}
	for i := 0; i < 2; i++ {
		ks := newKeyState(t)
		if err := l.PutKey(ctx(t), ks); err != nil {
			t.Fatal(err)
		}
		want[ks.Pubkey] = mustGetKey(t, l, ks.Pubkey)
	}
	if _, err := l.Pin(ctx(t), "recipient", "age1xyz"); err != nil { // not a key
		t.Fatal(err)
	}
	if got := collectKeys(t, l); !reflect.DeepEqual(got, want) {
		t.Errorf("Keys yielded %d keys, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	n := 0
	for _, err := range l.Keys(ctx(t)) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if n == 3 {
			break
		}
	}
	if n != 3 {
		t.Errorf("loop ran %d times, want 3", n)
	}
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	var sawErr bool
	for ks, err := range l.Keys(c) {
		if err == nil {
			t.Errorf("Keys(cancelled ctx) yielded %s", ks.Pubkey)
			continue
		}
		sawErr = true
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Keys(cancelled ctx) error = %v, want context.Canceled", err)
		}
	}
	if !sawErr {
		t.Error("Keys(cancelled ctx) yielded no error")
	}
}

func testPin(t *testing.T, l store.Ledger) {
	got, err := l.Pin(ctx(t), "recipient", "age1first")
	if err != nil || got != "age1first" {
		t.Fatalf("Pin(first) = %q, %v, want age1first", got, err)
	}
	got, err = l.Pin(ctx(t), "recipient", "age1second")
	if err != nil || got != "age1first" {
		t.Fatalf("Pin(second) = %q, %v, want the first value", got, err)
	}
	got, err = l.Pin(ctx(t), "generator-key", "ed25519:00ff")
	if err != nil || got != "ed25519:00ff" {
		t.Fatalf("Pin(other name) = %q, %v", got, err)
	}
	long := strings.Repeat("v", 5000)
	if got, err := l.Pin(ctx(t), "long#name with spaces/and slashes", long); err != nil || got != long {
		t.Fatalf("Pin(long) = %d chars, %v", len(got), err)
	}
	for name, args := range map[string][2]string{"empty name": {"", "v"}, "empty value": {"n", ""},
		"long name": {strings.Repeat("n", store.MaxPinNameLen+1), "v"}, "long value": {"n", strings.Repeat("v", store.MaxPinValueLen+1)}} {
		if _, err := l.Pin(ctx(t), args[0], args[1]); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Pin(%s) = %v, want ErrInvalid", name, err)
		}
	}
	if got, err := l.Pin(ctx(t), "n", "v"); err != nil || got != "v" {
		t.Errorf("Pin after refused empty value = %q, %v, want v", got, err)
	}
}

// LargeExportSize is the number of candidates of the LargeExport subtest.
const LargeExportSize = 100_000

func testLargeExport(t *testing.T, l store.Ledger) {
	cands := Pubkeys(t, LargeExportSize)
	e := NewExport(t, cands)
	start := time.Now()
	mustCreate(t, l, e)
	created := time.Since(start)
	start = time.Now()
	checkExport(t, "GetExport", mustGetExport(t, l, e.ID), e)
	read := time.Since(start)
	// Claim a few so that sealing has a count to check, then seal with every
	// candidate as a member, in reverse order.
	claimed := mustClaim(t, l, e.ID, cands[LargeExportSize-150:])
	members := slices.Clone(cands)
	slices.Reverse(members)
	start = time.Now()
	if err := l.SealExport(ctx(t), e.ID, members, len(claimed)); err != nil {
		t.Fatalf("SealExport(%d members): %v", len(members), err)
	}
	sealed := time.Since(start)
	start = time.Now()
	want := *e
	want.Claims, want.Sealed, want.Members = len(claimed), true, members
	checkExport(t, "GetExport after seal", mustGetExport(t, l, e.ID), &want)
	got := collectExports(t, l)
	if len(got) != 1 {
		t.Fatalf("Exports yielded %d, want 1", len(got))
	}
	checkExport(t, "Exports", got[0], &want)
	t.Logf("%d candidates: create %v, read %v, seal %v, read sealed + list %v", LargeExportSize, created, read, sealed, time.Since(start))
}

func testRaceCreateExport(t *testing.T, l store.Ledger) {
	const n = 8
	id := ExportID(t)
	exps := make([]*store.Export, n)
	got := make([]*store.Export, n)
	errs := make([]error, n)
	for i := range exps {
		exps[i] = NewExport(t, Pubkeys(t, 1+i))
		exps[i].ID = id
		exps[i].By = fmt.Sprint("creator-", i)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range exps {
		wg.Go(func() {
			<-start
			got[i], errs[i] = l.CreateExport(ctx(t), exps[i])
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("CreateExport %d and %d of one id both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrExists):
			t.Errorf("CreateExport %d: %v, want nil or ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no CreateExport succeeded")
	}
	for i := range got {
		checkExport(t, fmt.Sprint("CreateExport ", i), got[i], exps[winner])
	}
	checkExport(t, "GetExport", mustGetExport(t, l, id), exps[winner])
}

// raceRounds is how often the claim races are repeated.
const raceRounds = 20

// testRaceOverlappingClaims: three exports whose candidates overlap are
// claimed at once by many goroutines, each claiming shuffled batches of its
// export's candidates. Every key must end in exactly one export, the keys
// each call reports claimed must be disjoint, and each export's Claims must
// equal the number of keys it got.
func testRaceOverlappingClaims(t *testing.T, l store.Ledger) {
	const (
		nKeys      = 40
		goroutines = 9
	)
	for round := 0; round < raceRounds; round++ {
		keys := Pubkeys(t, nKeys)
		exps := []*store.Export{
			NewExport(t, keys[:30]),
			NewExport(t, keys[10:]),
			NewExport(t, append(slices.Clone(keys[:5]), keys[25:]...)),
		}
		for _, e := range exps {
			mustCreate(t, l, e)
		}
		var (
			mu      sync.Mutex
			byCall  = map[string]string{} // pubkey -> export that a call reported claiming it
			dupes   []string
			failed  []error
			start   = make(chan struct{})
			wg      sync.WaitGroup
			reports = map[string]int{}
		)
		for g := 0; g < goroutines; g++ {
			e := exps[g%len(exps)]
			wg.Go(func() {
				cands := slices.Clone(e.Candidates)
				r := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				r.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
				<-start
				for len(cands) > 0 {
					n := min(len(cands), 1+r.IntN(7))
					got, err := l.ClaimForExport(ctx(t), e.ID, cands[:n], time.Now(), fmt.Sprint("g", g))
					cands = cands[n:]
					mu.Lock()
					if err != nil {
						failed = append(failed, fmt.Errorf("goroutine %d: %w", g, err))
					}
					for _, pk := range got {
						if prev, ok := byCall[pk]; ok {
							dupes = append(dupes, fmt.Sprintf("%s claimed for %s and again for %s", pk, prev, e.ID))
						}
						byCall[pk] = e.ID
						reports[e.ID]++
					}
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		for _, err := range failed {
			t.Errorf("round %d: %v", round, err)
		}
		for _, d := range dupes {
			t.Errorf("round %d: %s", round, d)
		}
		owned := map[string]int{}
		for _, pk := range keys {
			ks := mustGetKey(t, l, pk)
			if ks.State != store.StatusExported || ks.Version != 1 {
				t.Errorf("round %d: key %s: state %s version %d, want exported version 1", round, pk, ks.State, ks.Version)
			}
			if byCall[pk] != ks.ExportID {
				t.Errorf("round %d: key %s belongs to %q but was reported claimed for %q", round, pk, ks.ExportID, byCall[pk])
			}
			if !slices.ContainsFunc(exps, func(e *store.Export) bool { return e.ID == ks.ExportID && slices.Contains(e.Candidates, pk) }) {
				t.Errorf("round %d: key %s belongs to %q, which does not list it", round, pk, ks.ExportID)
			}
			owned[ks.ExportID]++
		}
		total := 0
		for _, e := range exps {
			c := mustGetExport(t, l, e.ID).Claims
			if c != owned[e.ID] || c != reports[e.ID] {
				t.Errorf("round %d: export %s: Claims %d, keys owned %d, keys reported claimed %d", round, e.ID, c, owned[e.ID], reports[e.ID])
			}
			total += c
		}
		if total != nKeys {
			t.Errorf("round %d: Claims sum to %d, want %d", round, total, nKeys)
		}
		if t.Failed() {
			return
		}
	}
}

// testRaceClaimSeal races claims against a sealer that reads Claims and
// seals with that count while the claims go on. A seal with a stale count
// must fail, no claim may land after a successful seal (Claims and the keys
// the export owns stay at the sealed count), and when the sealer knew every
// claimed key the sealed Members are exactly the keys the export owns.
func testRaceClaimSeal(t *testing.T, l store.Ledger) {
	// Deterministic: a count that was right but went stale.
	keys := Pubkeys(t, 5)
	e := NewExport(t, keys)
	mustCreate(t, l, e)
	mustClaim(t, l, e.ID, keys[:3])
	stale := mustGetExport(t, l, e.ID).Claims
	mustClaim(t, l, e.ID, keys[3:])
	if err := l.SealExport(ctx(t), e.ID, keys[:3], stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("SealExport(stale claims %d) = %v, want ErrConflict", stale, err)
	}

	const (
		nKeys    = 60
		claimers = 4
		rounds   = raceRounds
	)
	midway := 0 // rounds sealed before every key was claimed
	for round := 0; round < rounds; round++ {
		keys := Pubkeys(t, nKeys)
		e := NewExport(t, keys)
		mustCreate(t, l, e)
		var (
			mu          sync.Mutex
			reported    = map[string]bool{} // keys claims reported claimed
			claimedLate []string            // claimed by calls that began after the seal succeeded
			lateCalls   int
			claimErrs   []error
			sealedAt    = make(chan struct{})
			wg          sync.WaitGroup
		)
		for g := 0; g < claimers; g++ {
			wg.Go(func() {
				cands := slices.Clone(keys)
				r := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				r.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
				for len(cands) > 0 {
					late := false
					select {
					case <-sealedAt:
						late = true
					default:
					}
					n := min(len(cands), 1+r.IntN(3))
					got, err := l.ClaimForExport(ctx(t), e.ID, cands[:n], time.Now(), "claimer")
					cands = cands[n:]
					mu.Lock()
					switch {
					case errors.Is(err, store.ErrConflict):
					case err != nil:
						claimErrs = append(claimErrs, err)
					}
					for _, pk := range got {
						reported[pk] = true
					}
					if late {
						lateCalls++
						claimedLate = append(claimedLate, got...)
					}
					mu.Unlock()
					time.Sleep(time.Duration(r.IntN(1500)) * time.Microsecond)
				}
			})
		}
		// The sealer: once a third of the keys are claimed, read the count
		// and seal with it, as members the claimed keys it knows of, in
		// candidate order; retry on a conflict until one seal succeeds.
		var (
			members      []string
			exact        bool
			sealedClaims int
			conflicts    int
		)
		for {
			mu.Lock()
			n := len(reported)
			mu.Unlock()
			if n < nKeys/3 {
				time.Sleep(200 * time.Microsecond)
				continue
			}
			c := mustGetExport(t, l, e.ID).Claims
			mu.Lock()
			members = members[:0]
			for _, pk := range keys {
				if reported[pk] {
					members = append(members, pk)
				}
			}
			mu.Unlock()
			err := l.SealExport(ctx(t), e.ID, members, c)
			if err == nil {
				sealedClaims, exact = c, len(members) == c
				close(sealedAt)
				break
			}
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("round %d: SealExport: %v", round, err)
			}
			conflicts++
		}
		wg.Wait()
		for _, err := range claimErrs {
			t.Errorf("round %d: claim: %v", round, err)
		}
		if len(claimedLate) != 0 {
			t.Errorf("round %d: %d keys claimed after the seal: %v", round, len(claimedLate), claimedLate)
		}
		got := mustGetExport(t, l, e.ID)
		if !got.Sealed || got.Claims != sealedClaims || !reflect.DeepEqual(got.Members, nilIfEmpty(members)) {
			t.Errorf("round %d: after the race: sealed %v claims %d members %d, want sealed with %d claims and members %v",
				round, got.Sealed, got.Claims, len(got.Members), sealedClaims, members)
		}
		var owned []string
		for _, pk := range keys {
			ks, err := l.GetKey(ctx(t), pk)
			if err == nil && ks.ExportID == e.ID {
				owned = append(owned, pk)
			} else if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
		}
		if len(owned) != sealedClaims {
			t.Errorf("round %d: export owns %d keys after the race, sealed with %d claims", round, len(owned), sealedClaims)
		}
		if exact && !reflect.DeepEqual(owned, nilIfEmpty(members)) {
			t.Errorf("round %d: export owns %v, sealed members %v", round, owned, members)
		}
		if sealedClaims < nKeys {
			midway++
		}
		t.Logf("round %d: sealed with %d of %d keys claimed (members exact: %v) after %d conflicting seals; %d claim calls after the seal",
			round, sealedClaims, nKeys, exact, conflicts, lateCalls)
		if t.Failed() {
			return
		}
	}
	// The race is only a race if some seals land while claims go on.
	if midway == 0 {
		t.Errorf("no round sealed before all %d keys were claimed: the race did not happen", nKeys)
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func testRacePutKey(t *testing.T, l store.Ledger) {
	const writers = 6
	ks := newKeyState(t)
	ks.Version = 0 // the first round writes version 1
	for round := 0; round < 5; round++ {
		cand := make([]*store.KeyState, writers)
		errs := make([]error, writers)
		for i := range cand {
			k := *ks
			k.Version++
			k.Note = fmt.Sprintf("round %d writer %d", round, i)
			cand[i] = &k
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range cand {
			wg.Go(func() {
				<-start
				errs[i] = l.PutKey(ctx(t), cand[i])
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("round %d: PutKey %d and %d of version %d both succeeded", round, winner, i, cand[i].Version)
				}
				winner = i
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("round %d: PutKey %d: %v, want nil or ErrConflict", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no PutKey succeeded", round)
		}
		checkKey(t, fmt.Sprint("round ", round), mustGetKey(t, l, ks.Pubkey), cand[winner])
		ks = cand[winner]
	}
}

func testRacePin(t *testing.T, l store.Ledger) {
	const n = 8
	for round := 0; round < 3; round++ {
		name := fmt.Sprint("pin-", round)
		got := make([]string, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range got {
			wg.Go(func() {
				<-start
				got[i], errs[i] = l.Pin(ctx(t), name, fmt.Sprint("value-", i))
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: Pin %d: %v", round, i, err)
			}
		}
		if !strings.HasPrefix(got[0], "value-") {
			t.Fatalf("round %d: Pin returned %q", round, got[0])
		}
		for i, v := range got {
			if v != got[0] {
				t.Errorf("round %d: Pin %d returned %q, Pin 0 %q: two writers won", round, i, v, got[0])
			}
		}
		if v, err := l.Pin(ctx(t), name, "late"); err != nil || v != got[0] {
			t.Errorf("round %d: Pin after the race = %q, %v, want %q", round, v, err, got[0])
		}
	}
}
