package backend

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoHomeNoKeyDir: with HOME unset and neither ETHKEYGEN_HOME nor
// --key-dir, the local default is refused (it used to fall back to
// ./.ethkeygen, one identity per working directory) and nothing is created;
// --key-dir, ETHKEYGEN_HOME or an explicit recipient make it work.
func TestNoHomeNoKeyDir(t *testing.T) {
	cwd := t.TempDir()
	t.Chdir(cwd)
	t.Setenv("HOME", "")
	os.Unsetenv("HOME")
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("ETHKEYGEN_HOME", "")

	_, _, err := (&Config{}).Sealers(t.Context())
	if !errors.Is(err, ErrNoKeyDir) || !strings.Contains(err.Error(), "--key-dir") || !strings.Contains(err.Error(), "ETHKEYGEN_HOME") {
		t.Fatalf("Sealers: %v, want ErrNoKeyDir naming --key-dir and ETHKEYGEN_HOME", err)
	}
	if _, err := (&Config{}).Opener(t.Context(), false, ""); !errors.Is(err, ErrNoKeyDir) {
		t.Fatalf("Opener: %v, want ErrNoKeyDir", err)
	}
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Fatalf("created %v in the working directory", entries)
	}

	t.Run("relative HOME", func(t *testing.T) {
		t.Setenv("HOME", "relative")
		if _, _, err := (&Config{}).Sealers(t.Context()); !errors.Is(err, ErrNoKeyDir) {
			t.Fatalf("%v, want ErrNoKeyDir", err)
		}
	})
	t.Run("--key-dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "k")
		if _, _, err := (&Config{KeyDir: dir}).Sealers(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "recipient.txt")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ETHKEYGEN_HOME", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "h")
		t.Setenv("ETHKEYGEN_HOME", dir)
		if _, _, err := (&Config{}).Sealers(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "identity.txt")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("explicit recipient needs no key dir", func(t *testing.T) {
		if _, _, err := (&Config{Recipient: "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}).Sealers(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}
