package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBatchRollbackAndNoOverwrite(t *testing.T) {
	dir := t.TempDir()
	var b Batch
	if err := b.Write(filepath.Join(dir, "a"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(filepath.Join(dir, "a"), []byte("y"), 0o600); err == nil {
		t.Fatal("overwrote a file")
	}
	st, _ := os.Stat(filepath.Join(dir, "a"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	b.Rollback()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left %v", entries)
	}
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("secret\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{"pw\n": "pw", "pw\r\n": "pw", "pw\n\n": "pw\n", "pw": "pw", "": "", "pw ": "pw ", "pw\r": "pw\r"} {
		p := filepath.Join(dir, "pw")
		_ = os.WriteFile(p, []byte(in), 0o600)
		if got, _ := ReadSecretFile(p); string(got) != want {
			t.Errorf("ReadSecretFile(%q) = %q", in, got)
		}
	}
}
