package sqlitestore

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/storetest"
)

func openLedger(t *testing.T, path string, opts ...Option) *Ledger {
	t.Helper()
	l, err := OpenLedger(t.Context(), path, opts...)
	if err != nil {
		t.Fatalf("OpenLedger: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLedgerConformance(t *testing.T) {
	storetest.RunLedger(t, func(t *testing.T) store.Ledger {
		return openLedger(t, filepath.Join(t.TempDir(), "ethkeygen.db.ledger"), WithPageSize(2))
	})
}

func TestLedgerFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ethkeygen.db.ledger") // a 0700 directory, made before the umask changes
	old := umask(0)
	defer umask(old)
	l := openLedger(t, path)
	if _, err := l.Pin(t.Context(), "n", "v"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(p), m)
		}
	}
	var mode string
	if err := l.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

// TestLedgerNotRecords checks that a ledger file and a records file are never
// taken for each other, and that a foreign file is refused.
func TestLedgerNotRecords(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "ethkeygen.db")
	led := rec + ".ledger"
	open(t, rec).Close()
	openLedger(t, led).Close()
	if l, err := OpenLedger(t.Context(), rec); err == nil {
		l.Close()
		t.Error("OpenLedger of a records file succeeded")
	}
	if s, err := Open(t.Context(), led); err == nil {
		s.Close()
		t.Error("Open of a ledger file succeeded")
	}
	foreign := filepath.Join(dir, "foreign.db")
	o := open(t, foreign)
	if _, err := o.db.Exec("PRAGMA user_version = 0; CREATE TABLE foo (x)"); err != nil {
		t.Fatal(err)
	}
	o.Close()
	if l, err := OpenLedger(t.Context(), foreign); err == nil {
		l.Close()
		t.Error("OpenLedger of a foreign file succeeded")
	}
	// A newer ledger schema is refused.
	l := openLedger(t, led)
	if _, err := l.db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if l, err := OpenLedger(t.Context(), led); err == nil {
		l.Close()
		t.Error("OpenLedger of a newer schema succeeded")
	}
	if _, err := OpenLedger(t.Context(), ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("OpenLedger(\"\") = %v, want ErrInvalid", err)
	}
	if _, err := OpenLedger(t.Context(), filepath.Join(dir, "nope", "x.ledger")); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("OpenLedger(missing dir) = %v, want ErrUnavailable", err)
	}
}

// TestLedgerSurvivesRecordsReplaced writes the ledger, deletes the records
// file and creates a new one at the same path (as a restore or a records
// writer could), and checks that the ledger state is all still there, read
// through the open ledger and through a reopened one.
func TestLedgerSurvivesRecordsReplaced(t *testing.T) {
	dir := t.TempDir()
	recPath := filepath.Join(dir, "ethkeygen.db")
	recs := open(t, recPath)
	l := openLedger(t, recPath+".ledger")
	r := storetest.NewRecord(t, "r", 0)
	if err := recs.Put(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	e := storetest.NewExport(t, []string{r.Pubkey, storetest.Pubkey(t)})
	if _, err := l.CreateExport(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ClaimForExport(t.Context(), e.ID, e.Candidates, time.Now(), "x"); err != nil {
		t.Fatal(err)
	}
	if err := l.SealExport(t.Context(), e.ID, e.Candidates, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Pin(t.Context(), "recipient", "age1abc"); err != nil {
		t.Fatal(err)
	}
	before, err := l.GetExport(t.Context(), e.ID)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := l.GetKey(t.Context(), r.Pubkey)
	if err != nil {
		t.Fatal(err)
	}

	recs.Close()
	for _, p := range []string{recPath, recPath + "-wal", recPath + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	recs = open(t, recPath)
	if _, err := recs.Get(t.Context(), r.Pubkey); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("new records file: Get = %v, want ErrNotFound", err)
	}
	// The same record written again (a restore) does not reset the key.
	if err := recs.Put(t.Context(), r); err != nil {
		t.Fatal(err)
	}

	check := func(l *Ledger, how string) {
		t.Helper()
		got, err := l.GetExport(t.Context(), e.ID)
		if err != nil || !got.Sealed || got.Claims != 2 || len(got.Members) != 2 || got.Members[0] != before.Members[0] {
			t.Errorf("%s: GetExport = %+v, %v, want %+v", how, got, err, before)
		}
		if got, err := l.GetKey(t.Context(), r.Pubkey); err != nil || !reflect.DeepEqual(got, ks) {
			t.Errorf("%s: GetKey = %+v, %v, want %+v", how, got, err, ks)
		}
		if v, err := l.Pin(t.Context(), "recipient", "age1attacker"); err != nil || v != "age1abc" {
			t.Errorf("%s: Pin = %q, %v, want age1abc", how, v, err)
		}
		if n, err := l.ClaimForExport(t.Context(), storetest.ExportID(t), []string{r.Pubkey}, time.Now(), "x"); !errors.Is(err, store.ErrNotFound) || len(n) != 0 {
			t.Errorf("%s: claim = %v, %v", how, n, err)
		}
	}
	check(l, "open ledger")
	l.Close()
	check(openLedger(t, recPath+".ledger"), "reopened ledger")
}

// TestLedgerTwoHandles races two Ledger values (two connection pools, as two
// processes would have) on one file.
func TestLedgerTwoHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.ledger")
	a, b := openLedger(t, path), openLedger(t, path)
	keys := storetest.Pubkeys(t, 200)
	ea, eb := storetest.NewExport(t, keys), storetest.NewExport(t, keys)
	if _, err := a.CreateExport(t.Context(), ea); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateExport(t.Context(), eb); err != nil {
		t.Fatal(err)
	}
	got := make([][]string, 2)
	errs := make([]error, 2)
	done := make(chan int)
	for i, l := range []*Ledger{a, b} {
		go func() {
			id := []string{ea.ID, eb.ID}[i]
			for j := 0; j < len(keys); j += 10 {
				c, err := l.ClaimForExport(t.Context(), id, keys[j:j+10], time.Now(), "x")
				if err != nil {
					errs[i] = err
					break
				}
				got[i] = append(got[i], c...)
			}
			done <- i
		}()
	}
	<-done
	<-done
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(got[0]) + len(got[1]); n != len(keys) {
		t.Errorf("%d + %d keys claimed, want %d in all", len(got[0]), len(got[1]), len(keys))
	}
	for i, l := range []*Ledger{b, a} {
		e, err := l.GetExport(t.Context(), []string{ea.ID, eb.ID}[i])
		if err != nil || e.Claims != len(got[i]) {
			t.Errorf("export %d: Claims %d, %v, want %d", i, e.Claims, err, len(got[i]))
		}
	}
}

// TestLedgerLocked: a writer blocked past its busy timeout gets ErrUnavailable.
func TestLedgerLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.ledger")
	a := openLedger(t, path)
	b := openLedger(t, path, WithBusyTimeout(100*time.Millisecond))
	tx, err := a.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := b.Pin(t.Context(), "n", "v"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Pin while locked = %v, want ErrUnavailable", err)
	}
	if _, err := b.GetKey(t.Context(), storetest.Pubkey(t)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetKey while locked = %v, want ErrNotFound", err)
	}
	tx.Rollback()
	a.Close()
	if _, err := a.GetKey(t.Context(), storetest.Pubkey(t)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetKey after Close = %v, want ErrUnavailable", err)
	}
}

// TestMigrateLedgerV1File opens a copy of testdata/ledger-v1.db, written by
// the ledger-schema-v1 code (see testdata/SOURCE): every key state reads
// back as it was written with no assignee, the export and pin are kept, the
// file is now version 2, and an assignee can be written and read.
func TestMigrateLedgerV1File(t *testing.T) {
	raw, err := os.ReadFile("testdata/ledger-v1.db")
	if err != nil {
		t.Fatal(err)
	}
	var want []*store.KeyState
	b, err := os.ReadFile("testdata/ledger-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != 4 {
		t.Fatalf("ledger-v1.json holds %d key states, want 4", len(want))
	}
	path := filepath.Join(t.TempDir(), "ethkeygen.db.ledger")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if v := userVersion(t, path); v != 1 {
		t.Fatalf("testdata/ledger-v1.db has user_version %d, want 1", v)
	}
	check := func(l *Ledger) {
		t.Helper()
		var got []*store.KeyState
		for ks, err := range l.Keys(t.Context()) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ks)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("keys after migration:\n got %+v\nwant %+v", got, want)
		}
		e, err := l.GetExport(t.Context(), "req-v1")
		if err != nil || !e.Sealed || len(e.Members) != 3 || e.Claims != 3 {
			t.Errorf("export req-v1 after migration: %+v, %v", e, err)
		}
		if v, err := l.Pin(t.Context(), "sealing-key", "other"); err != nil || v != "age1example" {
			t.Errorf("pin after migration: %q, %v", v, err)
		}
	}
	l := openLedger(t, path)
	check(l)
	if v := userVersion(t, path); v != ledgerVersion || ledgerVersion != 2 {
		t.Errorf("user_version after OpenLedger = %d, want %d (= 2)", v, ledgerVersion)
	}
	// Reopening a migrated file changes nothing.
	l.Close()
	l = openLedger(t, path)
	check(l)
	// The new column is written and read.
	ks := *want[0]
	ks.Version, ks.AssignedTo, ks.UpdatedAt = ks.Version+1, "enclave:parent-1", ks.UpdatedAt.Add(time.Second)
	if err := l.PutKey(t.Context(), &ks); err != nil {
		t.Fatal(err)
	}
	if got, err := l.GetKey(t.Context(), ks.Pubkey); err != nil || got.AssignedTo != "enclave:parent-1" {
		t.Errorf("assigned key read back as %+v, %v", got, err)
	}
}
