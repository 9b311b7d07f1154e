package fsutil

import (
	"errors"
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

func TestBatchWriteAll(t *testing.T) {
	dir := t.TempDir()
	var b Batch
	files := []File{{"a", []byte("1")}, {"b", []byte("2")}, {"c", []byte("3")}}
	if err := b.WriteAll(dir, files, 0o600); err != nil {
		t.Fatal(err)
	}
	b.Commit()
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil || string(got) != string(f.Data) {
			t.Fatalf("%s: %q %v", f.Name, got, err)
		}
	}
	// A name in the way: nothing replaced, no temporary file left, and
	// Rollback removes what this batch linked.
	var b2 Batch
	err := b2.WriteAll(dir, []File{{"d", []byte("4")}, {"b", []byte("x")}}, 0o600)
	var ee *ExistsError
	if !errors.As(err, &ee) {
		t.Fatalf("got %v", err)
	}
	b2.Rollback()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Fatalf("%d entries after a refused batch", len(entries))
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "b")); string(got) != "2" {
		t.Fatal("an existing file was replaced")
	}
}
