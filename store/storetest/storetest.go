// Package storetest is the conformance suite for store.Store
// implementations. Each backend's tests call Run with a constructor that
// returns a fresh, empty store; every subtest gets its own.
//
// To exercise pagination, the constructor should configure the smallest page
// size the backend allows (2 or less): the pagination subtest writes 7
// records and reads them back through every Query shape.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/store"
)

// Run runs the conformance suite against the stores newStore returns.
// newStore must return an empty store each time it is called and arrange
// for it to be closed (t.Cleanup).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"GetNotFound", testGetNotFound},
		{"GetSlot", testGetSlot},
		{"Invalid", testInvalid},
		{"NoOverwritePubkey", testNoOverwritePubkey},
		{"NoDuplicateSlot", testNoDuplicateSlot},
		{"AtomicBatch", testAtomicBatch},
		{"QueryByRequest", testQueryByRequest},
		{"QueryByStatus", testQueryByStatus},
		{"QueryAll", testQueryAll},
		{"Pagination", testPagination},
		{"QueryBreak", testQueryBreak},
		{"SetStatus", testSetStatus},
		{"CreateRequest", testCreateRequest},
		{"ConcurrentSlot", testConcurrentSlot},
		{"ConcurrentRequest", testConcurrentRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// Pubkey returns a random valid pubkey.
func Pubkey(t testing.TB) string {
	b := make([]byte, store.PubkeyLen/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// RequestID returns a random request id.
func RequestID(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "req-" + hex.EncodeToString(b)
}

// NewRecord returns a record with every field set, in request req at slot.
func NewRecord(t testing.TB, req string, slot int) *store.Record {
	pk := Pubkey(t)
	sealed := make([]byte, 200)
	if _, err := rand.Read(sealed); err != nil {
		t.Fatal(err)
	}
	sealed[0], sealed[1] = 0, 0xff // bytes that do not survive a text round trip
	mnemonic := make([]byte, 64)
	if _, err := rand.Read(mnemonic); err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 64)
	if _, err := rand.Read(auth); err != nil {
		t.Fatal(err)
	}
	auth[0], auth[1] = 0, 0xfe
	wc := "01" + "0000000000000000000000" + pk[:40]
	dd := fmt.Sprintf(`{"pubkey": "%s", "withdrawal_credentials": "%s", "amount": 32000000000,
		"signature": "%s", "deposit_message_root": "%s", "deposit_data_root": "%s",
		"fork_version": "00000000", "network_name": "mainnet", "deposit_cli_version": "2.7.0"}`,
		pk, wc, pk+pk, pk[:64], pk[32:96])
	return &store.Record{
		Pubkey:                pk,
		RequestID:             req,
		Slot:                  slot,
		Network:               "mainnet",
		WithdrawalCredentials: wc,
		DepositData:           json.RawMessage(dd),
		Sealed:                sealed,
		SealedMnemonic:        mnemonic,
		Status:                store.StatusGenerated,
		// Nanoseconds and a non-UTC zone: the store keeps UTC milliseconds.
		CreatedAt:  time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("X", 3600)).Add(time.Duration(slot) * time.Millisecond),
		Provenance: store.Provenance{Version: "v1.2.3", BuildHash: "abc123"},
		Origin:     store.OriginGenerated,
		Auth:       auth,
		AuthKeyID:  "ed25519:" + hex.EncodeToString(auth[:32]),
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// checkEqual compares got with the record that was written, allowing for
// the documented normalisations.
func checkEqual(t *testing.T, got, want *store.Record) {
	t.Helper()
	if got == nil {
		t.Fatalf("record %s: got nil", want.Pubkey)
	}
	w := *want
	w.CreatedAt = want.CreatedAt.UTC().Truncate(time.Millisecond)
	if len(w.SealedMnemonic) == 0 {
		w.SealedMnemonic = nil
	}
	if len(w.Auth) == 0 {
		w.Auth = nil
	}
	if !got.CreatedAt.Equal(w.CreatedAt) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("record %s: CreatedAt = %v, want %v", want.Pubkey, got.CreatedAt, w.CreatedAt)
	}
	if !jsonEqual(got.DepositData, w.DepositData) {
		t.Errorf("record %s: DepositData = %s, want %s", want.Pubkey, got.DepositData, w.DepositData)
	}
	g := *got
	g.CreatedAt, w.CreatedAt = time.Time{}, time.Time{}
	g.DepositData, w.DepositData = nil, nil
	if !reflect.DeepEqual(g, w) {
		t.Errorf("record %s:\n got %+v\nwant %+v", want.Pubkey, g, w)
	}
}

func jsonEqual(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func mustPut(t *testing.T, s store.Store, recs ...*store.Record) {
	t.Helper()
	if err := s.Put(ctx(t), recs...); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func mustGet(t *testing.T, s store.Store, pubkey string) *store.Record {
	t.Helper()
	r, err := s.Get(ctx(t), pubkey)
	if err != nil {
		t.Fatalf("Get(%s): %v", pubkey, err)
	}
	return r
}

func collect(t *testing.T, s store.Store, f store.Filter) []*store.Record {
	t.Helper()
	var out []*store.Record
	for r, err := range s.Query(ctx(t), f) {
		if err != nil {
			t.Fatalf("Query(%+v): %v", f, err)
		}
		out = append(out, r)
	}
	return out
}

func pubkeys(recs []*store.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Pubkey
	}
	return out
}

func testRoundTrip(t *testing.T, s store.Store) {
	req := RequestID(t)
	full := NewRecord(t, req, 0)
	minimal := NewRecord(t, req, 1)
	minimal.SealedMnemonic = nil
	minimal.DepositData = nil
	minimal.Network = ""
	minimal.WithdrawalCredentials = ""
	minimal.Provenance = store.Provenance{}
	minimal.Sealed = []byte{0}
	minimal.Status = store.StatusRetired
	minimal.Origin = ""
	minimal.Auth = nil
	minimal.AuthKeyID = ""
	emptyMnemonic := NewRecord(t, req, 2)
	emptyMnemonic.SealedMnemonic = []byte{}
	emptyMnemonic.Auth = []byte{}
	emptyMnemonic.Network = "custom-0x12345678"
	imported := NewRecord(t, req, 3)
	imported.Status = store.StatusImported
	imported.Origin = store.OriginImported
	imported.AuthKeyID = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	exitSigned := NewRecord(t, req, 4)
	exitSigned.Status = store.StatusExitSigned
	all := []*store.Record{full, minimal, emptyMnemonic, imported, exitSigned}
	mustPut(t, s, all...)
	for _, want := range all {
		checkEqual(t, mustGet(t, s, want.Pubkey), want)
	}
	if g := mustGet(t, s, full.Pubkey); g.Origin != store.OriginGenerated || len(g.Auth) != 64 || g.AuthKeyID != full.AuthKeyID {
		t.Errorf("Origin/Auth/AuthKeyID = %q, %x, %q; want %q, %x, %q", g.Origin, g.Auth, g.AuthKeyID, full.Origin, full.Auth, full.AuthKeyID)
	}
	if g := mustGet(t, s, emptyMnemonic.Pubkey); g.Auth != nil {
		t.Errorf("empty Auth read back as %#v, want nil", g.Auth)
	}
	// Query returns the same records as Get.
	got := collect(t, s, store.Filter{RequestID: req})
	if len(got) != len(all) {
		t.Fatalf("Query returned %d records, want %d", len(got), len(all))
	}
	for i, want := range all {
		checkEqual(t, got[i], want)
	}
	// The new statuses can be queried.
	for _, want := range []*store.Record{imported, exitSigned} {
		var found bool
		for _, r := range collect(t, s, store.Filter{Status: want.Status}) {
			if r.Pubkey == want.Pubkey {
				found = true
				checkEqual(t, r, want)
			}
		}
		if !found {
			t.Errorf("Query(status %s) did not yield %s", want.Status, want.Pubkey)
		}
	}
}

func testGetNotFound(t *testing.T, s store.Store) {
	_, err := s.Get(ctx(t), Pubkey(t))
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
}

func testGetSlot(t *testing.T, s store.Store) {
	req, other := RequestID(t), RequestID(t)
	full := NewRecord(t, req, 0)
	minimal := NewRecord(t, req, 2)
	minimal.SealedMnemonic = nil
	minimal.DepositData = nil
	minimal.Network = ""
	minimal.WithdrawalCredentials = ""
	minimal.Provenance = store.Provenance{}
	sameSlot := NewRecord(t, other, 0) // slot 0 of another request
	mustPut(t, s, full, minimal)
	mustPut(t, s, sameSlot)
	// Read straight after Put: GetSlot is strongly consistent.
	for _, want := range []*store.Record{full, minimal, sameSlot} {
		got, err := s.GetSlot(ctx(t), want.RequestID, want.Slot)
		if err != nil {
			t.Fatalf("GetSlot(%q, %d): %v", want.RequestID, want.Slot, err)
		}
		checkEqual(t, got, want)
		if g := mustGet(t, s, want.Pubkey); !reflect.DeepEqual(got, g) {
			t.Errorf("GetSlot(%q, %d) = %+v, Get = %+v", want.RequestID, want.Slot, got, g)
		}
	}
	// A status change is seen at once.
	if err := s.SetStatus(ctx(t), minimal.Pubkey, store.StatusGenerated, store.StatusExported); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSlot(ctx(t), req, 2); err != nil || got.Status != store.StatusExported {
		t.Errorf("GetSlot after SetStatus = %+v, %v, want status %s", got, err, store.StatusExported)
	}
	for _, tc := range []struct {
		name string
		req  string
		slot int
	}{
		{"missing slot", req, 1},
		{"slot past the end", req, 3},
		{"unknown request", RequestID(t), 0},
	} {
		if got, err := s.GetSlot(ctx(t), tc.req, tc.slot); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSlot(%s) = %+v, %v, want ErrNotFound", tc.name, got, err)
		}
	}
	// A refused Put does not claim its slot.
	dup := NewRecord(t, RequestID(t), 0)
	dup.Pubkey = full.Pubkey
	if err := s.Put(ctx(t), dup); !errors.Is(err, store.ErrExists) {
		t.Fatalf("Put(same pubkey) = %v, want ErrExists", err)
	}
	if _, err := s.GetSlot(ctx(t), dup.RequestID, dup.Slot); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSlot of a refused Put's slot = %v, want ErrNotFound", err)
	}
	for _, tc := range []struct {
		name string
		req  string
		slot int
	}{
		{"empty request id", "", 0},
		{"negative slot", req, -1},
	} {
		if got, err := s.GetSlot(ctx(t), tc.req, tc.slot); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("GetSlot(%s) = %+v, %v, want ErrInvalid", tc.name, got, err)
		}
	}
}

func testInvalid(t *testing.T, s store.Store) {
	req := RequestID(t)
	mutate := map[string]func(r *store.Record){
		"nil":          nil,
		"empty pubkey": func(r *store.Record) { r.Pubkey = "" },
		"0x pubkey":    func(r *store.Record) { r.Pubkey = "0x" + r.Pubkey[2:] },
		"upper pubkey": func(r *store.Record) { r.Pubkey = "AB" + r.Pubkey[2:] },
		"short pubkey": func(r *store.Record) { r.Pubkey = r.Pubkey[:94] },
		"no sealed":    func(r *store.Record) { r.Sealed = nil },
		"no request":   func(r *store.Record) { r.RequestID = "" },
		"bad status":   func(r *store.Record) { r.Status = "lost" },
		"no status":    func(r *store.Record) { r.Status = "" },
		"neg slot":     func(r *store.Record) { r.Slot = -1 },
		"no time":      func(r *store.Record) { r.CreatedAt = time.Time{} },
		"bad json":     func(r *store.Record) { r.DepositData = json.RawMessage(`{"a":`) },
		"bad origin":   func(r *store.Record) { r.Origin = "stolen" },
	}
	for name, m := range mutate {
		good := NewRecord(t, req, 0)
		var bad *store.Record
		if m != nil {
			bad = NewRecord(t, req, 1)
			m(bad)
		}
		if err := s.Put(ctx(t), good, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: Put = %v, want ErrInvalid", name, err)
		}
		if _, err := s.Get(ctx(t), good.Pubkey); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: valid record of a rejected batch was written (Get = %v)", name, err)
		}
	}
	// Duplicates within one batch.
	a, b := NewRecord(t, req, 0), NewRecord(t, req, 1)
	b.Pubkey = a.Pubkey
	if err := s.Put(ctx(t), a, b); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("repeated pubkey in batch: Put = %v, want ErrInvalid", err)
	}
	a, b = NewRecord(t, req, 0), NewRecord(t, req, 0)
	if err := s.Put(ctx(t), a, b); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("repeated slot in batch: Put = %v, want ErrInvalid", err)
	}
	if got := collect(t, s, store.Filter{RequestID: req}); len(got) != 0 {
		t.Errorf("rejected batches wrote %d records", len(got))
	}
	if err := s.Put(ctx(t)); err != nil {
		t.Errorf("Put() of no records = %v, want nil", err)
	}
	if err := s.SetStatus(ctx(t), Pubkey(t), "lost", store.StatusExported); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("SetStatus(bad from) = %v, want ErrInvalid", err)
	}
	if err := s.SetStatus(ctx(t), Pubkey(t), store.StatusGenerated, ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("SetStatus(bad to) = %v, want ErrInvalid", err)
	}
	for _, err := range s.Query(ctx(t), store.Filter{Status: "lost"}) {
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Query(bad status) = %v, want ErrInvalid", err)
		}
	}
	if _, err := s.CreateRequest(ctx(t), store.Request{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("CreateRequest(zero) = %v, want ErrInvalid", err)
	}
}

func testNoOverwritePubkey(t *testing.T, s store.Store) {
	orig := NewRecord(t, RequestID(t), 0)
	mustPut(t, s, orig)
	// Same pubkey, everything else different (another request and slot).
	dup := NewRecord(t, RequestID(t), 5)
	dup.Pubkey = orig.Pubkey
	err := s.Put(ctx(t), dup)
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("Put(same pubkey) = %v, want ErrExists", err)
	}
	checkEqual(t, mustGet(t, s, orig.Pubkey), orig)
	if got := collect(t, s, store.Filter{RequestID: dup.RequestID}); len(got) != 0 {
		t.Errorf("refused Put claimed slot: %v", pubkeys(got))
	}
	// Exactly the same record again is refused too.
	if err := s.Put(ctx(t), orig); !errors.Is(err, store.ErrExists) {
		t.Fatalf("Put(same record) = %v, want ErrExists", err)
	}
}

func testNoDuplicateSlot(t *testing.T, s store.Store) {
	req := RequestID(t)
	orig := NewRecord(t, req, 3)
	mustPut(t, s, orig)
	dup := NewRecord(t, req, 3)
	if err := s.Put(ctx(t), dup); !errors.Is(err, store.ErrExists) {
		t.Fatalf("Put(same slot) = %v, want ErrExists", err)
	}
	if _, err := s.Get(ctx(t), dup.Pubkey); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused record was written: Get = %v", err)
	}
	checkEqual(t, mustGet(t, s, orig.Pubkey), orig)
	// The same slot number in another request is fine.
	mustPut(t, s, NewRecord(t, RequestID(t), 3))
}

func testAtomicBatch(t *testing.T, s store.Store) {
	req := RequestID(t)
	existing := NewRecord(t, req, 1)
	mustPut(t, s, existing)

	for _, pos := range []int{0, 1, 2} {
		t.Run(fmt.Sprint("duplicate slot at ", pos), func(t *testing.T) {
			batch := []*store.Record{NewRecord(t, req, 10), NewRecord(t, req, 11), NewRecord(t, req, 12)}
			batch[pos] = NewRecord(t, req, 1) // slot taken by existing
			if err := s.Put(ctx(t), batch...); !errors.Is(err, store.ErrExists) {
				t.Fatalf("Put = %v, want ErrExists", err)
			}
			for _, r := range batch {
				if _, err := s.Get(ctx(t), r.Pubkey); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("record %s of a refused batch: Get = %v, want ErrNotFound", r.Pubkey, err)
				}
			}
		})
		t.Run(fmt.Sprint("duplicate pubkey at ", pos), func(t *testing.T) {
			batch := []*store.Record{NewRecord(t, req, 20), NewRecord(t, req, 21), NewRecord(t, req, 22)}
			batch[pos].Pubkey = existing.Pubkey
			if err := s.Put(ctx(t), batch...); !errors.Is(err, store.ErrExists) {
				t.Fatalf("Put = %v, want ErrExists", err)
			}
			for i, r := range batch {
				if i == pos {
					continue
				}
				if _, err := s.Get(ctx(t), r.Pubkey); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("record %s of a refused batch: Get = %v, want ErrNotFound", r.Pubkey, err)
				}
			}
		})
	}
	checkEqual(t, mustGet(t, s, existing.Pubkey), existing)
	got := collect(t, s, store.Filter{RequestID: req})
	if len(got) != 1 || got[0].Pubkey != existing.Pubkey {
		t.Errorf("Query after refused batches = %v, want only %s", pubkeys(got), existing.Pubkey)
	}
}

func testQueryByRequest(t *testing.T, s store.Store) {
	req, other := RequestID(t), RequestID(t)
	// Written out of order, in several batches, with another request mixed in.
	var want []*store.Record
	for i := 0; i < 5; i++ {
		want = append(want, NewRecord(t, req, i))
	}
	mustPut(t, s, want[3], want[0], NewRecord(t, other, 0))
	mustPut(t, s, want[4], NewRecord(t, other, 1), want[1])
	mustPut(t, s, want[2])
	got := collect(t, s, store.Filter{RequestID: req})
	if !reflect.DeepEqual(pubkeys(got), pubkeys(want)) {
		t.Fatalf("Query by request: got %v, want %v (slot order)", pubkeys(got), pubkeys(want))
	}
	for i := range got {
		checkEqual(t, got[i], want[i])
	}
	if err := s.SetStatus(ctx(t), want[2].Pubkey, store.StatusGenerated, store.StatusExported); err != nil {
		t.Fatal(err)
	}
	got = collect(t, s, store.Filter{RequestID: req, Status: store.StatusGenerated})
	wantKeys := pubkeys([]*store.Record{want[0], want[1], want[3], want[4]})
	if !reflect.DeepEqual(pubkeys(got), wantKeys) {
		t.Fatalf("Query by request and status: got %v, want %v", pubkeys(got), wantKeys)
	}
	if got := collect(t, s, store.Filter{RequestID: RequestID(t)}); len(got) != 0 {
		t.Errorf("Query by unknown request returned %d records", len(got))
	}
}

func testQueryByStatus(t *testing.T, s store.Store) {
	req := RequestID(t)
	var recs []*store.Record
	for i := 0; i < 6; i++ {
		r := NewRecord(t, req, i)
		// Two records share each CreatedAt, so the order falls back to Pubkey.
		r.CreatedAt = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(5-i/2) * time.Second)
		recs = append(recs, r)
	}
	mustPut(t, s, recs...)
	for _, i := range []int{1, 4} {
		if err := s.SetStatus(ctx(t), recs[i].Pubkey, store.StatusGenerated, store.StatusDeposited); err != nil {
			t.Fatal(err)
		}
	}
	check := func(st store.Status, idx ...int) {
		t.Helper()
		var want []*store.Record
		for _, i := range idx {
			want = append(want, recs[i])
		}
		sortByTimeKey(want)
		got := collect(t, s, store.Filter{Status: st})
		if !reflect.DeepEqual(pubkeys(got), pubkeys(want)) {
			t.Errorf("Query(status %s): got %v, want %v ((CreatedAt, Pubkey) order)", st, pubkeys(got), pubkeys(want))
		}
		for _, r := range got {
			if r.Status != st {
				t.Errorf("Query(status %s) yielded %s with status %s", st, r.Pubkey, r.Status)
			}
		}
	}
	check(store.StatusGenerated, 0, 2, 3, 5)
	check(store.StatusDeposited, 1, 4)
	check(store.StatusRetired)
}

func sortByTimeKey(recs []*store.Record) {
	less := func(a, b *store.Record) bool {
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.Pubkey < b.Pubkey
	}
	for i := 1; i < len(recs); i++ {
		for j := i; j > 0 && less(recs[j], recs[j-1]); j-- {
			recs[j], recs[j-1] = recs[j-1], recs[j]
		}
	}
}

func testQueryAll(t *testing.T, s store.Store) {
	want := map[string]bool{}
	for i := 0; i < 3; i++ {
		req := RequestID(t)
		var batch []*store.Record
		for j := 0; j < 2; j++ {
			r := NewRecord(t, req, j)
			batch = append(batch, r)
			want[r.Pubkey] = true
		}
		mustPut(t, s, batch...)
	}
	if _, err := s.CreateRequest(ctx(t), store.Request{ID: RequestID(t), Fingerprint: "f", Count: 1, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	got := collect(t, s, store.Filter{})
	seen := map[string]bool{}
	for _, r := range got {
		if !want[r.Pubkey] || seen[r.Pubkey] {
			t.Errorf("Query(all) yielded unexpected or repeated %s", r.Pubkey)
		}
		seen[r.Pubkey] = true
	}
	if len(seen) != len(want) {
		t.Errorf("Query(all) yielded %d records, want %d", len(seen), len(want))
	}
}

func testPagination(t *testing.T, s store.Store) {
	req := RequestID(t)
	var recs []*store.Record
	for i := 0; i < 7; i++ {
		recs = append(recs, NewRecord(t, req, i))
	}
	mustPut(t, s, recs[4:]...)
	mustPut(t, s, recs[:4]...)
	mustPut(t, s, NewRecord(t, RequestID(t), 0)) // another request, other pages
	if got := collect(t, s, store.Filter{RequestID: req}); !reflect.DeepEqual(pubkeys(got), pubkeys(recs)) {
		t.Errorf("Query by request: got %v, want %v", pubkeys(got), pubkeys(recs))
	}
	byTime := append([]*store.Record(nil), recs...)
	sortByTimeKey(byTime)
	var gen []string
	for _, r := range collect(t, s, store.Filter{Status: store.StatusGenerated}) {
		if r.RequestID == req {
			gen = append(gen, r.Pubkey)
		}
	}
	if !reflect.DeepEqual(gen, pubkeys(byTime)) {
		t.Errorf("Query by status: got %v, want %v", gen, pubkeys(byTime))
	}
	if got := collect(t, s, store.Filter{}); len(got) != 8 {
		t.Errorf("Query(all) yielded %d records, want 8", len(got))
	}
	if got := collect(t, s, store.Filter{RequestID: req, Status: store.StatusGenerated}); len(got) != 7 {
		t.Errorf("Query(request, status) yielded %d records, want 7", len(got))
	}
}

func testQueryBreak(t *testing.T, s store.Store) {
	req := RequestID(t)
	var recs []*store.Record
	for i := 0; i < 5; i++ {
		recs = append(recs, NewRecord(t, req, i))
	}
	mustPut(t, s, recs...)
	n := 0
	for r, err := range s.Query(ctx(t), store.Filter{RequestID: req}) {
		if err != nil {
			t.Fatal(err)
		}
		// Writing from inside the loop must not deadlock.
		if err := s.SetStatus(ctx(t), r.Pubkey, store.StatusGenerated, store.StatusExported); err != nil {
			t.Fatal(err)
		}
		n++
		if n == 3 {
			break
		}
	}
	if n != 3 {
		t.Fatalf("loop ran %d times, want 3", n)
	}
	if got := collect(t, s, store.Filter{RequestID: req, Status: store.StatusExported}); len(got) != 3 {
		t.Errorf("%d records exported, want 3", len(got))
	}
	// A cancelled context ends the iteration with an error.
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	var sawErr bool
	for r, err := range s.Query(c, store.Filter{RequestID: req}) {
		if err == nil {
			t.Errorf("Query(cancelled ctx) yielded %s", r.Pubkey)
			continue
		}
		sawErr = true
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Query(cancelled ctx) error = %v, want context.Canceled", err)
		}
	}
	if !sawErr {
		t.Error("Query(cancelled ctx) yielded no error")
	}
}

func testSetStatus(t *testing.T, s store.Store) {
	r := NewRecord(t, RequestID(t), 0)
	mustPut(t, s, r)
	steps := []store.Status{store.StatusExported, store.StatusDeposited, store.StatusRetired}
	from := store.StatusGenerated
	for _, to := range steps {
		if err := s.SetStatus(ctx(t), r.Pubkey, from, to); err != nil {
			t.Fatalf("SetStatus(%s -> %s): %v", from, to, err)
		}
		from = to
	}
	// Wrong from: conflict, nothing changes.
	if err := s.SetStatus(ctx(t), r.Pubkey, store.StatusGenerated, store.StatusExported); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("SetStatus(wrong from) = %v, want ErrConflict", err)
	}
	got := mustGet(t, s, r.Pubkey)
	want := *r
	want.Status = store.StatusRetired
	checkEqual(t, got, &want)
	// Same from and to is allowed (a no-op that checks the status).
	if err := s.SetStatus(ctx(t), r.Pubkey, store.StatusRetired, store.StatusRetired); err != nil {
		t.Fatalf("SetStatus(retired -> retired) = %v", err)
	}
	if err := s.SetStatus(ctx(t), Pubkey(t), store.StatusGenerated, store.StatusExported); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetStatus(missing) = %v, want ErrNotFound", err)
	}

	// Racing SetStatus calls with the same from: exactly one wins.
	r2 := NewRecord(t, RequestID(t), 0)
	mustPut(t, s, r2)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.SetStatus(ctx(t), r2.Pubkey, store.StatusGenerated, store.StatusExported)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("racing SetStatus: %v, want nil or ErrConflict", err)
		}
	}
	if won != 1 {
		t.Errorf("%d racing SetStatus calls won, want 1", won)
	}
}

func testCreateRequest(t *testing.T, s store.Store) {
	first := store.Request{ID: RequestID(t), Fingerprint: "sha256:aaaa", Count: 7,
		CreatedAt: time.Date(2025, 5, 6, 7, 8, 9, 123456789, time.FixedZone("Y", -7200))}
	got, err := s.CreateRequest(ctx(t), first)
	if err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	want := first
	want.CreatedAt = first.CreatedAt.UTC().Truncate(time.Millisecond)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CreateRequest returned %+v, want %+v", got, want)
	}
	second := store.Request{ID: first.ID, Fingerprint: "sha256:bbbb", Count: 9, CreatedAt: time.Now()}
	got, err = s.CreateRequest(ctx(t), second)
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateRequest(again) = %v, want ErrExists", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CreateRequest(again) returned %+v, want the first %+v", got, want)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt location = %v, want UTC", got.CreatedAt.Location())
	}
	// A request id does not collide with a record or with slots.
	r := NewRecord(t, first.ID, 0)
	mustPut(t, s, r)
	if _, err := s.CreateRequest(ctx(t), store.Request{ID: RequestID(t), Fingerprint: "x", CreatedAt: time.Now()}); err != nil {
		t.Errorf("CreateRequest(new, count 0): %v", err)
	}
}

func testConcurrentSlot(t *testing.T, s store.Store) {
	req := RequestID(t)
	const n = 8
	recs := make([]*store.Record, n)
	errs := make([]error, n)
	for i := range recs {
		recs[i] = NewRecord(t, req, 0)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range recs {
		wg.Go(func() {
			<-start
			errs[i] = s.Put(ctx(t), recs[i])
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("Puts %d and %d of the same slot both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrExists):
			t.Errorf("Put %d: %v, want nil or ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no Put succeeded")
	}
	got := collect(t, s, store.Filter{RequestID: req})
	if len(got) != 1 || got[0].Pubkey != recs[winner].Pubkey {
		t.Fatalf("Query after race = %v, want only the winner %s", pubkeys(got), recs[winner].Pubkey)
	}
	checkEqual(t, got[0], recs[winner])
	for i, r := range recs {
		if i == winner {
			continue
		}
		if _, err := s.Get(ctx(t), r.Pubkey); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("loser %d was written: Get = %v", i, err)
		}
	}
}

func testConcurrentRequest(t *testing.T, s store.Store) {
	id := RequestID(t)
	const n = 8
	type result struct {
		r   store.Request
		err error
	}
	res := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range res {
		wg.Go(func() {
			<-start
			r, err := s.CreateRequest(ctx(t), store.Request{ID: id, Fingerprint: fmt.Sprint("fp-", i), Count: i,
				CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)})
			res[i] = result{r, err}
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, x := range res {
		switch {
		case x.err == nil:
			if winner >= 0 {
				t.Errorf("CreateRequest %d and %d both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(x.err, store.ErrExists):
			t.Errorf("CreateRequest %d: %v, want nil or ErrExists", i, x.err)
		}
	}
	if winner < 0 {
		t.Fatal("no CreateRequest succeeded")
	}
	for i, x := range res {
		if x.r.Fingerprint != fmt.Sprint("fp-", winner) || x.r.Count != winner {
			t.Errorf("CreateRequest %d returned %+v, want the winner's (fp-%d)", i, x.r, winner)
		}
	}
}
