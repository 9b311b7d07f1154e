package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/storetest"
)

func open(t *testing.T, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "keys.db"), WithPageSize(2))
	})
}

func TestConformanceDefaultPageSize(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "keys.db"))
	})
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db") // before umask(0): a 0777 directory is refused
	old := umask(0)
	defer umask(old)
	s := open(t, path)
	if err := s.Put(t.Context(), storetest.NewRecord(t, "r", 0)); err != nil {
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
	if err := s.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

func TestSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := open(t, path)
	var v int
	if err := s.db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != schemaVersion {
		t.Fatalf("user_version = %d, want %d", v, schemaVersion)
	}
	// Reopening an existing file keeps its data.
	r := storetest.NewRecord(t, "r", 0)
	if err := s.Put(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	if _, err := s.Get(t.Context(), r.Pubkey); err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	// A newer schema is refused.
	if _, err := s.db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(t.Context(), path); err == nil {
		t.Fatal("Open of a file with a newer schema succeeded")
	}
	// A foreign SQLite file is refused.
	other := filepath.Join(t.TempDir(), "other.db")
	o := open(t, other)
	if _, err := o.db.Exec("PRAGMA user_version = 0; CREATE TABLE foo (x)"); err != nil {
		t.Fatal(err)
	}
	o.Close()
	if _, err := Open(t.Context(), other); err == nil {
		t.Fatal("Open of a foreign file succeeded")
	}
}

// TestTwoStoresOneFile simulates two processes using one file: each Store
// has its own connection pool, and both write at once.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	a, b := open(t, path), open(t, path)
	const perWriter = 40
	reqs := []string{storetest.RequestID(t), storetest.RequestID(t)}
	shared := storetest.RequestID(t)
	var wg sync.WaitGroup
	errs := make(chan error, 2*perWriter*2)
	for w, s := range []*Store{a, b} {
		wg.Go(func() {
			for i := 0; i < perWriter; i++ {
				if err := s.Put(t.Context(), storetest.NewRecord(t, reqs[w], 2*i), storetest.NewRecord(t, reqs[w], 2*i+1)); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
				}
				// Both race for the same slots of a shared request.
				err := s.Put(t.Context(), storetest.NewRecord(t, shared, i))
				if err != nil && !errors.Is(err, store.ErrExists) {
					errs <- fmt.Errorf("writer %d shared: %w", w, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, s := range []*Store{a, b} {
		for _, req := range reqs {
			n := 0
			for r, err := range s.Query(t.Context(), store.Filter{RequestID: req}) {
				if err != nil {
					t.Fatal(err)
				}
				if r.Slot != n {
					t.Fatalf("request %s: slot %d at position %d", req, r.Slot, n)
				}
				n++
			}
			if n != 2*perWriter {
				t.Errorf("request %s: %d records, want %d", req, n, 2*perWriter)
			}
		}
		n := 0
		for _, err := range s.Query(t.Context(), store.Filter{RequestID: shared}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != perWriter {
			t.Errorf("shared request: %d records, want %d", n, perWriter)
		}
	}
	var check string
	if err := a.db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil {
		t.Fatal(err)
	}
	if check != "ok" {
		t.Fatalf("integrity_check: %s", check)
	}
}

// TestLocked holds the write lock from one store and checks that the other
// gives up after its busy timeout with ErrUnavailable.
func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	a := open(t, path)
	b := open(t, path, WithBusyTimeout(100*time.Millisecond))
	tx, err := a.db.BeginTx(t.Context(), nil) // BEGIN IMMEDIATE: takes the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	start := time.Now()
	err = b.Put(t.Context(), storetest.NewRecord(t, "r", 0))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Put while locked = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Put while locked took %v", d)
	}
	// Readers are not blocked by a writer in WAL mode.
	if _, err := b.Get(t.Context(), storetest.Pubkey(t)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get while locked = %v, want ErrNotFound", err)
	}
	tx.Rollback()
	if err := b.Put(t.Context(), storetest.NewRecord(t, "r", 0)); err != nil {
		t.Fatalf("Put after unlock: %v", err)
	}
}

func TestClosed(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "keys.db"))
	s.Close()
	if _, err := s.Get(t.Context(), storetest.Pubkey(t)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Get after Close = %v, want ErrUnavailable", err)
	}
}

func TestOptions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for name, opts := range map[string][]Option{
		"page 0":       {WithPageSize(0)},
		"page clash":   {WithPageSize(2), WithPageSize(3)},
		"busy 0":       {WithBusyTimeout(0)},
		"busy clash":   {WithBusyTimeout(time.Second), WithBusyTimeout(2 * time.Second)},
		"empty path":   nil,
		"missing dir":  nil,
		"same options": {WithPageSize(2), WithPageSize(2)},
	} {
		path := filepath.Join(dir, name+".db")
		switch name {
		case "empty path":
			path = ""
		case "missing dir":
			path = filepath.Join(dir, "nope", "keys.db")
		}
		s, err := Open(ctx, path, opts...)
		if name == "same options" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else {
				s.Close()
			}
			continue
		}
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

// TestConcurrentOpen opens a new file from several goroutines at once: the
// schema is created once and every Open succeeds.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	const n = 6
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), path) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	r := storetest.NewRecord(t, "r", 0)
	if err := stores[0].Put(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[n-1].Get(t.Context(), r.Pubkey); err != nil {
		t.Fatal(err)
	}
}
