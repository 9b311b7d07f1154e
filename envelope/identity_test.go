package envelope_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"

	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/internal/fsutil"
)

func TestLoadOrCreateIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "keys")
	path := filepath.Join(dir, "identity.txt")
	id, created, err := envelope.LoadOrCreateIdentity(path)
	if err != nil || !created || id == nil {
		t.Fatalf("create: %v, %v, %v", id, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("identity file mode %o, want 0600", fi.Mode().Perm())
		}
		if di.Mode().Perm() != 0o700 {
			t.Errorf("created directory mode %o, want 0700", di.Mode().Perm())
		}
	}

	// Standard age identity file: readable by age itself.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "AGE-SECRET-KEY-1") {
		t.Fatalf("last line is not an identity")
	}
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasPrefix(l, "# ") {
			t.Fatalf("unexpected line %q", l)
		}
	}
	if !strings.Contains(string(data), "# public key: "+id.Recipient().String()+"\n") {
		t.Error("no public key comment")
	}
	ids, err := age.ParseIdentities(strings.NewReader(string(data)))
	if err != nil || len(ids) != 1 {
		t.Fatalf("age cannot parse the file: %v", err)
	}

	again, created, err := envelope.LoadOrCreateIdentity(path)
	if err != nil || created {
		t.Fatalf("load: created=%v err=%v", created, err)
	}
	if again.String() != id.String() {
		t.Fatal("loaded a different identity")
	}

	// It opens what the recipient sealed.
	ctx := context.Background()
	sealed, err := envelope.NewLocalSealer(id.Recipient()).Seal(ctx, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envelope.NewLocalOpener(again).Open(ctx, sealed, nil); err != nil {
		t.Fatal(err)
	}
}

func TestLoadOrCreateIdentityRefusals(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("permission and symlink checks are Unix-only")
	}
	dir := t.TempDir()
	real := filepath.Join(dir, "real.txt")
	if _, _, err := envelope.LoadOrCreateIdentity(real); err != nil {
		t.Fatal(err)
	}

	t.Run("symlink to identity", func(t *testing.T) {
		link := filepath.Join(dir, "link.txt")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		if _, _, err := envelope.LoadOrCreateIdentity(link); err == nil {
			t.Fatal("followed a symlink")
		}
	})
	t.Run("dangling symlink", func(t *testing.T) {
		link := filepath.Join(dir, "dangling.txt")
		target := filepath.Join(dir, "target-does-not-exist")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if _, _, err := envelope.LoadOrCreateIdentity(link); err == nil {
			t.Fatal("created an identity through a dangling symlink")
		}
		if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
			t.Fatal("symlink target was created")
		}
	})
	t.Run("group readable", func(t *testing.T) {
		p := filepath.Join(dir, "loose.txt")
		data, _ := os.ReadFile(real)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := envelope.LoadOrCreateIdentity(p)
		if err == nil || strings.Contains(err.Error(), "AGE-SECRET-KEY") {
			t.Fatalf("got %v, want a permission error without key material", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		p := filepath.Join(dir, "garbage.txt")
		if err := os.WriteFile(p, []byte("AGE-SECRET-KEY-1NOTREALLYAKEY\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := envelope.LoadOrCreateIdentity(p)
		if err == nil || strings.Contains(err.Error(), "NOTREALLYAKEY") {
			t.Fatalf("got %v, want a parse error without key material", err)
		}
	})
}

func TestRecipientFile(t *testing.T) {
	dir := t.TempDir()
	id, _ := age.GenerateX25519Identity()
	path := filepath.Join(dir, "recipient.txt")
	if err := envelope.WriteRecipientFile(path, id.Recipient()); err != nil {
		t.Fatal(err)
	}
	r, err := envelope.LoadRecipient(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.String() != id.Recipient().String() {
		t.Fatal("recipient mismatch")
	}
	// Idempotent for the same recipient; refuses to replace another.
	if err := envelope.WriteRecipientFile(path, id.Recipient()); err != nil {
		t.Fatalf("rewrite same recipient: %v", err)
	}
	other, _ := age.GenerateX25519Identity()
	if err := envelope.WriteRecipientFile(path, other.Recipient()); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("replace: %v, want fs.ErrExist", err)
	}

	for name, content := range map[string]string{
		"empty":      "# nothing\n\n",
		"two":        id.Recipient().String() + "\n" + other.Recipient().String() + "\n",
		"secret key": id.String() + "\n",
		"garbage":    "age1notarecipient\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := envelope.LoadRecipient(p)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), id.String()) {
				t.Fatal("error echoes the secret key")
			}
		})
	}
	// An identity file is not a recipient file.
	idPath := filepath.Join(dir, "id.txt")
	if _, _, err := envelope.LoadOrCreateIdentity(idPath); err != nil {
		t.Fatal(err)
	}
	if _, err := envelope.LoadRecipient(idPath); err == nil {
		t.Fatal("LoadRecipient accepted an identity file")
	}
}

func TestLoadIdentityNeverCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.txt")
	if _, err := envelope.LoadIdentity(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing identity: %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("LoadIdentity created a file")
	}
	id, _, err := envelope.LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := envelope.LoadIdentity(path)
	if err != nil || got.String() != id.String() {
		t.Fatalf("reload: %v", err)
	}
}

// TestKeyFileTraps: recipient.txt (a trust anchor: whoever changes it
// receives every later secret) and identity.txt are refused, with one line
// naming the path, when they are symlinks, writable by group or others,
// owned by another user, or in a directory that group or others can write
// or another user owns. Foreign ownership is real as root (chown to nobody)
// and presented through fsutil.PretendOwnerForTest otherwise.
func TestKeyFileTraps(t *testing.T) {
	setup := func(t *testing.T) (dir, rcpt, ident string) {
		dir = filepath.Join(t.TempDir(), "keys")
		ident = filepath.Join(dir, "identity.txt")
		rcpt = filepath.Join(dir, "recipient.txt")
		id, _, err := envelope.LoadOrCreateIdentity(ident)
		if err != nil {
			t.Fatal(err)
		}
		if err := envelope.WriteRecipientFile(rcpt, id.Recipient()); err != nil {
			t.Fatal(err)
		}
		return dir, rcpt, ident
	}
	foreign := func(t *testing.T, p string) {
		if os.Geteuid() == 0 {
			if err := os.Lchown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return
		}
		fsutil.PretendOwnerForTest(t, p, os.Geteuid()+1)
	}
	loadR := func(p string) error { _, err := envelope.LoadRecipient(p); return err }
	loadI := func(p string) error { _, err := envelope.LoadIdentity(p); return err }
	for _, tc := range []struct {
		name  string
		trap  func(t *testing.T, dir, file string) string
		words string
	}{
		{"symlink", func(t *testing.T, dir, file string) string {
			real := filepath.Join(t.TempDir(), "real")
			if err := os.Rename(file, real); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(real, file); err != nil {
				t.Fatal(err)
			}
			return file
		}, "is a symlink"},
		{"group-writable file", func(t *testing.T, dir, file string) string { os.Chmod(file, 0o620); return file }, "mode 0620"},
		{"group-writable directory", func(t *testing.T, dir, file string) string { os.Chmod(dir, 0o770); return dir }, "mode 0770"},
		{"foreign file", func(t *testing.T, dir, file string) string { foreign(t, file); return file }, "is owned by uid"},
		{"foreign directory", func(t *testing.T, dir, file string) string { foreign(t, dir); return dir }, "is owned by uid"},
	} {
		for _, which := range []string{"recipient", "identity"} {
			t.Run(which+" "+tc.name, func(t *testing.T) {
				dir, rcpt, ident := setup(t)
				file, load := rcpt, loadR
				if which == "identity" {
					file, load = ident, loadI
				}
				path := tc.trap(t, dir, file)
				err := load(file)
				if !errors.Is(err, fsutil.ErrUntrusted) {
					t.Fatalf("%v, want fsutil.ErrUntrusted", err)
				}
				if msg := err.Error(); !strings.Contains(msg, path+": ") || !strings.Contains(msg, tc.words) || strings.Contains(msg, "\n") {
					t.Fatalf("%q: want one line naming %s, saying %q", msg, path, tc.words)
				}
			})
		}
	}
	t.Run("recipient readable by all is fine", func(t *testing.T) {
		_, rcpt, _ := setup(t)
		if fi, _ := os.Stat(rcpt); fi.Mode().Perm() != 0o644 {
			t.Fatalf("recipient.txt mode %#o, want 0644", fi.Mode().Perm())
		}
		if err := loadR(rcpt); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLoadOrCreateIdentityConcurrent: creators racing end with one
// identity, and none reads a half-written file.
func TestLoadOrCreateIdentityConcurrent(t *testing.T) {
	for range 5 {
		p := filepath.Join(t.TempDir(), "identity.txt")
		var wg sync.WaitGroup
		got := make([]string, 8)
		for i := range got {
			wg.Go(func() {
				id, _, err := envelope.LoadOrCreateIdentity(p)
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = id.Recipient().String()
			})
		}
		wg.Wait()
		for _, r := range got {
			if r != got[0] {
				t.Fatalf("different identities: %v", got)
			}
		}
	}
}
