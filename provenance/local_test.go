package provenance_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/provenance"
)

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestLocalCreateAndReload: the first call writes generator.key (0600) and
// generator.pub (0644) and reports created; the second loads the same key;
// the verifier made from generator.pub alone accepts the signer's
// signatures and refuses a flipped bit.
func TestLocalCreateAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	s1, created, err := provenance.LoadOrCreateLocalSigner(dir)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	if m := mode(t, filepath.Join(dir, "generator.key")); m != 0o600 {
		t.Errorf("generator.key mode %#o, want 0600", m)
	}
	if m := mode(t, filepath.Join(dir, "generator.pub")); m != 0o644 {
		t.Errorf("generator.pub mode %#o, want 0644", m)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("key dir mode %#o, want 0700", m)
	}
	s2, created, err := provenance.LoadOrCreateLocalSigner(dir)
	if err != nil || created {
		t.Fatalf("second call: created=%v err=%v", created, err)
	}
	if s1.KeyID() != s2.KeyID() || !strings.HasPrefix(s1.KeyID(), "ed25519:") || len(s1.KeyID()) != len("ed25519:")+64 {
		t.Fatalf("key ids %q, %q", s1.KeyID(), s2.KeyID())
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "generator.pub"))
	if !strings.Contains(string(pub), "ethkeygen-generator-ed25519:"+strings.TrimPrefix(s1.KeyID(), "ed25519:")) {
		t.Fatalf("generator.pub does not name the key:\n%s", pub)
	}
	// The verifier never needs generator.key.
	if err := os.Rename(filepath.Join(dir, "generator.key"), filepath.Join(t.TempDir(), "away")); err != nil {
		t.Fatal(err)
	}
	v, err := provenance.LoadLocalVerifier(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v.KeyID() != s1.KeyID() {
		t.Fatalf("verifier %s, signer %s", v.KeyID(), s1.KeyID())
	}
	msg := []byte("record public fields")
	sig, err := s2.Sign(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(msg, sig); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(msg, flip(sig, 77)); !errors.Is(err, provenance.ErrForged) {
		t.Fatalf("flipped bit: %v", err)
	}
	// A signature by another generator key is forged for this verifier.
	other, _, err := provenance.LoadOrCreateLocalSigner(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	osig, _ := other.Sign(t.Context(), msg)
	if err := v.Verify(msg, osig); !errors.Is(err, provenance.ErrForged) {
		t.Fatalf("another key's signature: %v", err)
	}
}

// TestLocalConcurrentCreate: processes starting at once end with one key.
func TestLocalConcurrentCreate(t *testing.T) {
	dir := t.TempDir()
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			s, _, err := provenance.LoadOrCreateLocalSigner(dir)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = s.KeyID()
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("different keys: %v", ids)
		}
	}
}

// TestLocalRefusals: every trap in the key directory is refused with one
// line naming the file, and nothing is replaced.
func TestLocalRefusals(t *testing.T) {
	fresh := func(t *testing.T) string {
		dir := t.TempDir()
		if _, _, err := provenance.LoadOrCreateLocalSigner(dir); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	signer := func(dir string) error { _, _, err := provenance.LoadOrCreateLocalSigner(dir); return err }
	verifier := func(dir string) error { _, err := provenance.LoadLocalVerifier(dir); return err }
	symlink := func(name string) func(t *testing.T, dir string) string {
		return func(t *testing.T, dir string) string {
			p := filepath.Join(dir, name)
			real := filepath.Join(t.TempDir(), name)
			if err := os.Rename(p, real); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(real, p); err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	chmod := func(name string, m fs.FileMode) func(t *testing.T, dir string) string {
		return func(t *testing.T, dir string) string {
			p := filepath.Join(dir, name)
			if err := os.Chmod(p, m); err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	for _, tc := range []struct {
		name  string
		trap  func(t *testing.T, dir string) string // returns the path the error must name
		open  func(dir string) error
		words string
	}{
		{"symlinked generator.key", symlink("generator.key"), signer, "symlink"},
		{"symlinked generator.pub (signer)", symlink("generator.pub"), signer, "symlink"},
		{"symlinked generator.pub (verifier)", symlink("generator.pub"), verifier, "symlink"},
		{"generator.key readable by group", chmod("generator.key", 0o640), signer, "mode 0640"},
		{"generator.pub writable by group", chmod("generator.pub", 0o664), verifier, "mode 0664"},
		{"generator.pub writable by others", chmod("generator.pub", 0o646), signer, "mode 0646"},
		{"key dir writable by group (signer)", func(t *testing.T, dir string) string { chmod(".", 0o770)(t, dir); return dir }, signer, "directory has mode 0770"},
		{"key dir writable by group (verifier)", func(t *testing.T, dir string) string { chmod(".", 0o775)(t, dir); return dir }, verifier, "directory has mode 0775"},
		{"generator.pub of another key", func(t *testing.T, dir string) string {
			other := fresh(t)
			p := filepath.Join(dir, "generator.pub")
			os.Remove(p)
			b, _ := os.ReadFile(filepath.Join(other, "generator.pub"))
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}, signer, "mismatched pair"},
		{"generator.pub without generator.key", func(t *testing.T, dir string) string {
			os.Remove(filepath.Join(dir, "generator.key"))
			return filepath.Join(dir, "generator.pub")
		}, signer, "restore the signing key"},
		{"generator.pub holds a secret key line", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "generator.pub")
			b, _ := os.ReadFile(filepath.Join(dir, "generator.key"))
			os.Remove(p)
			os.WriteFile(p, b, 0o644)
			return p
		}, verifier, "does not start with ethkeygen-generator-ed25519:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fresh(t)
			path := tc.trap(t, dir)
			before, _ := os.ReadFile(filepath.Join(dir, "generator.pub"))
			err := tc.open(dir)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, tc.words) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line naming %s and saying %q", msg, path, tc.words)
			}
			if strings.Contains(msg, "SECRET-KEY:") {
				t.Fatalf("error echoes the key line: %q", msg)
			}
			after, _ := os.ReadFile(filepath.Join(dir, "generator.pub"))
			if string(before) != string(after) {
				t.Fatal("generator.pub was changed")
			}
		})
	}
}

// TestLocalForeignOwner: a generator.key, a generator.pub or a key
// directory that belongs to another user is refused. As root (CI) the
// files really are given to nobody (uid 65534); otherwise the check is
// told that the test's own uid is someone else's.
func TestLocalForeignOwner(t *testing.T) {
	for _, name := range []string{"generator.key", "generator.pub", "."} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := provenance.LoadOrCreateLocalSigner(dir); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, name)
			if os.Geteuid() == 0 {
				if err := os.Lchown(p, 65534, 65534); err != nil {
					t.Fatal(err)
				}
			} else {
				fsutil.PretendOwnerForTest(t, p, os.Geteuid()+1)
			}
			_, _, err := provenance.LoadOrCreateLocalSigner(dir)
			if err == nil || !strings.Contains(err.Error(), filepath.Clean(p)) || !strings.Contains(err.Error(), "is owned by uid") {
				t.Fatalf("signer: %v", err)
			}
			if name != "generator.key" {
				if _, err := provenance.LoadLocalVerifier(dir); err == nil || !strings.Contains(err.Error(), "is owned by uid") {
					t.Fatalf("verifier: %v", err)
				}
			}
		})
	}
}

// TestSignerRedacts: every fmt verb prints the key id and nothing else.
func TestSignerRedacts(t *testing.T) {
	s, _, err := provenance.LoadOrCreateLocalSigner(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := "provenance.Signer(" + s.KeyID() + ")"
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		if out := fmt.Sprintf(verb, s); out != want {
			t.Fatalf("%s = %q, want %q", verb, out, want)
		}
	}
}

// BenchmarkLocalSignVerify: one authenticator made and checked, the cost
// the embedded default adds per validator.
func BenchmarkLocalSignVerify(b *testing.B) {
	dir := b.TempDir()
	s, _, err := provenance.LoadOrCreateLocalSigner(dir)
	if err != nil {
		b.Fatal(err)
	}
	v, err := provenance.LoadLocalVerifier(dir)
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte(strings.Repeat("a record's canonical public fields ", 12)) // ~420 bytes
	ctx := b.Context()
	for b.Loop() {
		sig, err := s.Sign(ctx, msg)
		if err != nil {
			b.Fatal(err)
		}
		if err := v.Verify(msg, sig); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
