package web3signer_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/web3signer"
)

// TestKeyDirTraps: a key directory (or its parent) that is a symlink, is
// owned by another user or is writable by group or others, and a path that
// is not UTF-8, are refused by CheckDir and WriteKeyDir with one line
// naming the path; nothing is written anywhere.
func TestKeyDirTraps(t *testing.T) {
	a := newKey(t, false)
	keys := []web3signer.Key{{Pubkey: a.pubkey, SecretKey: a.sk}}
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
		trap  func(t *testing.T, parent, dir string) (named string)
		words string
	}{
		{"symlink to an empty directory", func(t *testing.T, parent, dir string) string {
			target := filepath.Join(parent, "target")
			os.Mkdir(target, 0o700)
			os.Symlink(target, dir)
			return dir
		}, "is a symlink"},
		{"dangling symlink", func(t *testing.T, parent, dir string) string {
			os.Symlink(filepath.Join(parent, "nowhere"), dir)
			return dir
		}, "is a symlink"},
		{"group-writable directory", func(t *testing.T, parent, dir string) string {
			os.Mkdir(dir, 0o700)
			os.Chmod(dir, 0o770)
			return dir
		}, "mode 0770"},
		{"foreign directory", func(t *testing.T, parent, dir string) string {
			os.Mkdir(dir, 0o700)
			foreign(t, dir)
			return dir
		}, "is owned by uid"},
		{"other-writable parent", func(t *testing.T, parent, dir string) string {
			os.Chmod(parent, 0o777)
			return parent
		}, "mode 0777"},
		{"foreign parent", func(t *testing.T, parent, dir string) string {
			foreign(t, parent)
			return parent
		}, "is owned by uid"},
		{"not UTF-8", func(t *testing.T, parent, dir string) string {
			return "" // the dir below is replaced
		}, "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := filepath.Join(t.TempDir(), "p")
			os.Mkdir(parent, 0o700)
			dir := filepath.Join(parent, "keys")
			named := tc.trap(t, parent, dir)
			if named == "" {
				dir = filepath.Join(parent, "keys-\xff\xfe")
			}
			for name, call := range map[string]func() error{
				"CheckDir":    func() error { return web3signer.CheckDir(dir, false) },
				"WriteKeyDir": func() error { return web3signer.WriteKeyDir(dir, keys, web3signer.RawConfigs()) },
			} {
				err := call()
				if err == nil {
					t.Fatalf("%s accepted it", name)
				}
				msg := err.Error()
				if !strings.Contains(msg, tc.words) || strings.Contains(msg, "\n") || (named != "" && !strings.Contains(msg, named+": ")) {
					t.Fatalf("%s: %q: want one line naming %q and saying %q", name, msg, named, tc.words)
				}
				if named != "" && !errors.Is(err, fsutil.ErrUntrusted) {
					t.Fatalf("%s: %v does not wrap fsutil.ErrUntrusted", name, err)
				}
			}
			for _, d := range []string{dir, filepath.Join(parent, "target")} {
				if entries, _ := os.ReadDir(d); len(entries) != 0 {
					t.Fatalf("wrote %v into %s", entries, d)
				}
			}
			if _, err := os.Lstat(filepath.Join(parent, "nowhere")); err == nil {
				t.Fatal("created the dangling symlink's target")
			}
		})
	}
}
