package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/keygen/keystore"
)

// TestVerifyKeystoreSizeLimit: a keystore file above keystore.MaxFileSize
// is refused, read no further than the limit.
func TestVerifyKeystoreSizeLimit(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "keystore.json")
	if err := os.WriteFile(big, []byte(`{"x":"`+strings.Repeat("a", keystore.MaxFileSize)+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	pw := writeFile(t, dir, "pw.txt", "correct horse battery staple\n")
	r := runCLI(t, "verify-keystore", big, "--password-file", pw)
	if r.code == 0 || !strings.Contains(r.stderr, "larger than") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}
