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

func TestReplaceFileAtomic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	for _, s := range []string{"one", "two"} {
		if err := ReplaceFileAtomic(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != s {
			t.Fatalf("got %q want %q", b, s)
		}
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	if entries, _ := os.ReadDir(filepath.Dir(p)); len(entries) != 1 {
		t.Fatalf("%d entries: a temporary file was left", len(entries))
	}
}
