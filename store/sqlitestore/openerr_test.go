package sqlitestore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/store"
)

// TestOpenErrorsArePlain: a missing file under MustExist (not created),
// and a file that is not a database, fail with one line naming the file
// and wrapping store.ErrUnavailable.
func TestOpenErrorsArePlain(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "gone.db")
	_, err := Open(t.Context(), missing, MustExist())
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing+" does not exist") {
		t.Fatalf("missing: %v", err)
	}
	if _, err := os.Lstat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("MustExist created the file")
	}
	corrupt := filepath.Join(dir, "corrupt.db")
	if err := os.WriteFile(corrupt, bytes.Repeat([]byte{0xA5}, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, opts := range [][]Option{nil, {MustExist()}} {
		_, err = Open(t.Context(), corrupt, opts...)
		if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), corrupt+" is damaged or not an ethkeygen store") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("corrupt: %v", err)
		}
	}
	// An existing store opens under MustExist.
	s := open(t, filepath.Join(dir, "ok.db"))
	s.Close()
	s2, err := Open(t.Context(), filepath.Join(dir, "ok.db"), MustExist())
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}
