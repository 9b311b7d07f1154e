package sqlitestore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/storetest"
)

// TestRecreatedFileMode: a store file deleted since the last run is
// created again with mode 0600 whatever the umask, and so are its -wal and
// -shm files.
func TestRecreatedFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ethkeygen.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), storetest.NewRecord(t, "r", 0)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		os.Remove(p)
	}
	old := umask(0o002)
	defer umask(old)
	s = open(t, path)
	if err := s.Put(t.Context(), storetest.NewRecord(t, "r", 1)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %#o after re-creation, want 0600", filepath.Base(p), m)
		}
	}
}

// TestOpenRefusesTraps: a symlinked store file, a group-writable file or
// directory, and a file or directory owned by another user are refused
// with one line naming the path; the symlink's target is not created.
func TestOpenRefusesTraps(t *testing.T) {
	foreign := func(t *testing.T, p string) {
		if os.Geteuid() == 0 {
			if err := os.Lchown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return
		}
		fsutil.PretendOwnerForTest(t, p, os.Geteuid()+1)
	}
	for _, tc := range []struct {
		name  string
		trap  func(t *testing.T, dir, db string) string
		words string
	}{
		{"symlink", func(t *testing.T, dir, db string) string {
			os.Remove(db)
			os.Symlink(filepath.Join(dir, "elsewhere.db"), db)
			return db
		}, "is a symlink"},
		{"group-writable file", func(t *testing.T, dir, db string) string { os.Chmod(db, 0o660); return db }, "mode 0660"},
		{"other-writable directory", func(t *testing.T, dir, db string) string { os.Chmod(dir, 0o707); return dir }, "mode 0707"},
		{"foreign file", func(t *testing.T, dir, db string) string { foreign(t, db); return db }, "is owned by uid"},
		{"foreign directory", func(t *testing.T, dir, db string) string { foreign(t, dir); return dir }, "is owned by uid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			os.Mkdir(dir, 0o700)
			db := filepath.Join(dir, "ethkeygen.db")
			s, err := Open(t.Context(), db)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			path := tc.trap(t, dir, db)
			_, err = Open(t.Context(), db)
			if !errors.Is(err, fsutil.ErrUntrusted) || !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("%v, want ErrUntrusted and ErrUnavailable", err)
			}
			if msg := err.Error(); !strings.Contains(msg, path+": ") || !strings.Contains(msg, tc.words) || strings.Contains(msg, "\n") {
				t.Fatalf("%q: want one line naming %s and saying %q", msg, path, tc.words)
			}
			if _, err := os.Lstat(filepath.Join(dir, "elsewhere.db")); err == nil {
				t.Fatal("created the symlink's target")
			}
		})
	}
}
