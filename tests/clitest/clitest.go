// Package clitest holds what the process-level test packages under tests/
// share: building the ethkeygen binary once per package, checking an
// embedded store file with SQLite's own integrity check, and random names.
package clitest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Main builds the CLI (with the given build tags) into a temporary
// directory, stores its path in *binary, runs the tests and cleans up. Use
// it as: func TestMain(m *testing.M) { os.Exit(clitest.Main(m, "crash", &binary, "crashtest")) }
func Main(m *testing.M, name string, binary *string, tags ...string) int {
	if runtime.GOOS != "linux" {
		fmt.Printf("%s tests: Linux only; skipped\n", name)
		return 0
	}
	dir, err := os.MkdirTemp("", "ethkeygen-"+name+"-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*binary = filepath.Join(dir, "ethkeygen")
	args := []string{"build", "-o", *binary}
	for _, t := range tags {
		args = append(args, "-tags", t)
	}
	cmd := exec.Command("go", append(args, "github.com/ethkeygen/ethkeygen/adapters/ethkeygen")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go %v: %v\n%s", args, err, out)
		return 1
	}
	return m.Run()
}

// IntegrityCheck runs SQLite's consistency check on a store file.
func IntegrityCheck(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), "PRAGMA integrity_check")
	if err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	if len(msgs) != 1 || msgs[0] != "ok" {
		t.Fatalf("integrity_check of %s: %q", path, msgs)
	}
}

// RandomHex is n random bytes in hex, for unique table and request names.
func RandomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
