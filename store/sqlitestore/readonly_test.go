package sqlitestore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/storetest"
)

// A store of two records, closed (its WAL folded into the file).
func readOnlyFixture(t *testing.T) (dir, path string, recs []*store.Record) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "keys.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	recs = []*store.Record{storetest.NewRecord(t, "req-ro", 0), storetest.NewRecord(t, "req-ro", 1)}
	if err := s.Put(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, path, recs
}

func TestReadOnlyReadsAndRefusesWrites(t *testing.T) {
	_, path, recs := readOnlyFixture(t)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), path, ReadOnly())
	if err != nil {
		t.Fatalf("Open read-only: %v", err)
	}
	defer s.Close()
	n := 0
	for rec, err := range s.Query(t.Context(), store.Filter{RequestID: "req-ro"}) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.Pubkey != recs[rec.Slot].Pubkey {
			t.Fatalf("slot %d: pubkey %s, want %s", rec.Slot, rec.Pubkey, recs[rec.Slot].Pubkey)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("read %d records, want 2", n)
	}
	if err := s.CheckIdentity(t.Context()); err != nil {
		t.Fatalf("CheckIdentity: %v", err)
	}
	if err := s.Put(t.Context(), storetest.NewRecord(t, "req-ro2", 0)); !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("Put on a read-only store: %v, want ErrReadOnly", err)
	}
	if _, err := s.CreateRequest(t.Context(), store.Request{ID: "req-x", Fingerprint: "f", Count: 1}); !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("CreateRequest on a read-only store: %v, want ErrReadOnly", err)
	}
	if err := s.SetStatus(t.Context(), recs[0].Pubkey, store.StatusGenerated, store.StatusRetired); !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("SetStatus on a read-only store: %v, want ErrReadOnly", err)
	}
	s.Close()
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("the store file changed under a read-only open")
	}
}

func TestReadOnlyNeverCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.db")
	if _, err := Open(t.Context(), path, ReadOnly()); err == nil {
		t.Fatal("a read-only open of a missing file succeeded")
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a read-only open left %s behind (%v)", path, err)
	}
	if _, err := OpenLedger(t.Context(), path, ReadOnly()); err == nil {
		t.Fatal("a read-only open of a missing ledger succeeded")
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a read-only ledger open left %s behind (%v)", path, err)
	}
}

func TestReadOnlyLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db.ledger")
	l, err := OpenLedger(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Pin(t.Context(), "sealing-key", "k1"); err != nil {
		t.Fatal(err)
	}
	pk := storetest.Pubkey(t)
	if err := l.PutKey(t.Context(), &store.KeyState{Pubkey: pk, State: store.StatusRetired, Version: 1, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	ro, err := OpenLedger(t.Context(), path, ReadOnly())
	if err != nil {
		t.Fatalf("OpenLedger read-only: %v", err)
	}
	defer ro.Close()
	if ks, err := ro.GetKey(t.Context(), pk); err != nil || ks.State != store.StatusRetired {
		t.Fatalf("GetKey: %v, %v", ks, err)
	}
	if got, err := ro.Pin(t.Context(), "sealing-key", "other"); err != nil || got != "k1" {
		t.Fatalf("Pin of a pinned name: %q, %v; want the stored k1", got, err)
	}
	if got, err := ro.Pin(t.Context(), "unpinned", "v"); err != nil || got != "v" {
		t.Fatalf("Pin of an unpinned name: %q, %v; want v (nothing stored)", got, err)
	}
	if err := ro.PutKey(t.Context(), &store.KeyState{Pubkey: pk, State: store.StatusExported, Version: 2, UpdatedAt: time.Now()}); !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("PutKey on a read-only ledger: %v, want ErrReadOnly", err)
	}
	ro.Close()
	rw, err := OpenLedger(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if got, err := rw.Pin(t.Context(), "unpinned", "w"); err != nil || got != "w" {
		t.Fatalf("the read-only Pin stored a value: later Pin gave %q, %v", got, err)
	}
}

// The store in a directory the user may not write (a read-only mount, a
// backup restored by another user): SQLite cannot make its -shm file
// there, and the store is still readable. Root may write anywhere, so as
// root the test runs the reading half as user nobody.
func TestReadOnlyInDirectoryNotWritable(t *testing.T) {
	if os.Getenv("SQLITESTORE_RO_CHILD") != "" {
		return // the child half runs in TestMain-less form below
	}
	dir, path, recs := readOnlyFixture(t)
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		checkReadOnlyOpen(t, path, recs[0].Pubkey)
		return
	}
	// As root: copy this test binary where nobody may run it and run the
	// reading half as nobody, on a directory and file owned by root.
	bin := filepath.Join(t.TempDir(), "ro.test")
	copyExecutable(t, os.Args[0], bin)
	for _, d := range []string{filepath.Dir(bin), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	makeTraversable(t, dir)
	makeTraversable(t, filepath.Dir(bin))
	cmd := exec.Command(bin, "-test.run", "^TestReadOnlyChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SQLITESTORE_RO_CHILD="+path, "SQLITESTORE_RO_PUBKEY="+recs[0].Pubkey, "GOCOVERDIR=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("PASS")) {
		t.Fatalf("the read-only open as nobody failed: %v\n%s", err, out)
	}
	if _, err := os.Lstat(path + "-shm"); err == nil {
		t.Fatal("an -shm file was made in a directory nobody may not write")
	}
}

// TestReadOnlyChild is the half of TestReadOnlyInDirectoryNotWritable that
// runs as nobody; alone it has nothing to do.
func TestReadOnlyChild(t *testing.T) {
	path := os.Getenv("SQLITESTORE_RO_CHILD")
	if path == "" {
		return
	}
	if os.Geteuid() == 0 {
		t.Fatal("the child runs as root")
	}
	if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
		f.Close()
		t.Fatal("the child can write the store: the test proves nothing")
	}
	checkReadOnlyOpen(t, path, os.Getenv("SQLITESTORE_RO_PUBKEY"))
}

func checkReadOnlyOpen(t *testing.T, path, pubkey string) {
	t.Helper()
	if _, err := Open(context.Background(), path); err == nil {
		t.Fatal("a writing open of a store the user may not write succeeded")
	}
	s, err := Open(context.Background(), path, ReadOnly())
	if err != nil {
		t.Fatalf("read-only open: %v", err)
	}
	defer s.Close()
	if rec, err := s.Get(context.Background(), pubkey); err != nil || rec.Pubkey != pubkey {
		t.Fatalf("Get: %v, %v", rec, err)
	}
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// makeTraversable lets other users reach dir: t.TempDir's parents are 0700.
func makeTraversable(t *testing.T, dir string) {
	t.Helper()
	for d := filepath.Dir(dir); d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			mode := fi.Mode().Perm()
			if err := os.Chmod(d, mode|0o011); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(d, mode) })
		}
	}
}
