package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// beForeign makes path belong to another user: really (chown to nobody,
// uid 65534) when the test runs as root, as it does here and in CI; else by
// telling the check that the test's own uid is someone else's.
func beForeign(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.Lchown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		return
	}
	PretendOwnerForTest(t, path, os.Geteuid()+1)
}

func wantUntrusted(t *testing.T, err error, path, words string) {
	t.Helper()
	if !errors.Is(err, ErrUntrusted) {
		t.Fatalf("err = %v, want ErrUntrusted", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, path+": ") || !strings.Contains(msg, words) || strings.Contains(msg, "\n") {
		t.Fatalf("err %q: want one line starting with %q and saying %q", msg, path+": ", words)
	}
}

// TestOpenTrusted: each trap is refused with one line naming the path;
// the honest file opens.
func TestOpenTrusted(t *testing.T) {
	setup := func(t *testing.T) (dir, file string) {
		dir = filepath.Join(t.TempDir(), "keys")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		file = filepath.Join(dir, "recipient.txt")
		if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir, file
	}
	t.Run("honest", func(t *testing.T) {
		_, file := setup(t)
		for _, k := range []Kind{Public, Secret} {
			f, err := OpenTrusted(file, k)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	})
	t.Run("missing", func(t *testing.T) {
		dir, _ := setup(t)
		if _, err := OpenTrusted(filepath.Join(dir, "nope"), Public); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%v, want ErrNotExist", err)
		}
	})
	t.Run("symlink", func(t *testing.T) {
		dir, file := setup(t)
		link := filepath.Join(dir, "link.txt")
		if err := os.Symlink(file, link); err != nil {
			t.Fatal(err)
		}
		_, err := OpenTrusted(link, Public)
		wantUntrusted(t, err, link, "is a symlink")
	})
	t.Run("dangling symlink", func(t *testing.T) {
		dir, _ := setup(t)
		link := filepath.Join(dir, "link.txt")
		if err := os.Symlink(filepath.Join(dir, "missing"), link); err != nil {
			t.Fatal(err)
		}
		_, err := OpenTrusted(link, Public)
		wantUntrusted(t, err, link, "is a symlink")
	})
	t.Run("group-writable parent", func(t *testing.T) {
		dir, file := setup(t)
		if err := os.Chmod(dir, 0o770); err != nil {
			t.Fatal(err)
		}
		_, err := OpenTrusted(file, Public)
		wantUntrusted(t, err, dir, "mode 0770")
	})
	t.Run("other-writable parent", func(t *testing.T) {
		dir, file := setup(t)
		if err := os.Chmod(dir, 0o703); err != nil {
			t.Fatal(err)
		}
		_, err := OpenTrusted(file, Public)
		wantUntrusted(t, err, dir, "mode 0703")
	})
	t.Run("group-writable file", func(t *testing.T) {
		_, file := setup(t)
		os.Chmod(file, 0o620)
		_, err := OpenTrusted(file, Public)
		wantUntrusted(t, err, file, "group or others can write it")
	})
	t.Run("readable secret", func(t *testing.T) {
		_, file := setup(t)
		os.Chmod(file, 0o604)
		if f, err := OpenTrusted(file, Public); err != nil {
			t.Fatalf("a world-readable public file is fine: %v", err)
		} else {
			f.Close()
		}
		_, err := OpenTrusted(file, Secret)
		wantUntrusted(t, err, file, "group or others can read it")
	})
	t.Run("foreign file", func(t *testing.T) {
		_, file := setup(t)
		beForeign(t, file)
		_, err := OpenTrusted(file, Public)
		wantUntrusted(t, err, file, "is owned by uid")
	})
	t.Run("foreign parent", func(t *testing.T) {
		dir, file := setup(t)
		beForeign(t, dir)
		_, err := OpenTrusted(file, Public)
		wantUntrusted(t, err, dir, "is owned by uid")
	})
	t.Run("root-owned is trusted", func(t *testing.T) {
		// Like OpenSSH, root may own a trust anchor (one an administrator
		// installed), even for a user that is not root.
		dir, file := setup(t)
		if os.Geteuid() != 0 {
			PretendOwnerForTest(t, dir, 0)
			PretendOwnerForTest(t, file, 0)
		}
		prev := geteuid
		geteuid = func() int { return 4242 }
		defer func() { geteuid = prev }()
		f, err := OpenTrusted(file, Public)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	})
	t.Run("fifo does not block", func(t *testing.T) {
		dir, _ := setup(t)
		p := filepath.Join(dir, "fifo")
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := OpenTrusted(p, Public); done <- err }()
		select {
		case err := <-done:
			wantUntrusted(t, err, p, "not a regular file")
		case <-time.After(5 * time.Second):
			t.Fatal("OpenTrusted blocked on a FIFO")
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir, _ := setup(t)
		sub := filepath.Join(dir, "sub")
		os.Mkdir(sub, 0o700)
		_, err := OpenTrusted(sub, Public)
		wantUntrusted(t, err, sub, "not a regular file")
	})
}

// TestCheckTrustedDir: a symlinked, foreign or group-writable directory
// is refused; a real private one passes.
func TestCheckTrustedDir(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "d")
	os.Mkdir(dir, 0o700)
	if err := CheckTrustedDir(dir); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "l")
	os.Symlink(dir, link)
	wantUntrusted(t, CheckTrustedDir(link), link, "is a symlink")
	os.Chmod(dir, 0o775)
	wantUntrusted(t, CheckTrustedDir(dir), dir, "mode 0775")
	os.Chmod(dir, 0o700)
	beForeign(t, dir)
	wantUntrusted(t, CheckTrustedDir(dir), dir, "is owned by uid")
}

// TestPrepareTrustedFile: a missing file is created with exactly the
// mode asked for, whatever the umask; an existing symlink, foreign or
// group-writable file is refused.
func TestPrepareTrustedFile(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	p := filepath.Join(dir, "ethkeygen.db")
	created, err := PrepareTrustedFile(p, Secret, 0o600)
	if err != nil || !created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %#o, want 0600 (umask 0)", fi.Mode().Perm())
	}
	if created, err := PrepareTrustedFile(p, Secret, 0o600); err != nil || created {
		t.Fatalf("again: created=%v err=%v", created, err)
	}
	os.Chmod(p, 0o660)
	_, err = PrepareTrustedFile(p, Secret, 0o600)
	wantUntrusted(t, err, p, "mode 0660")
	os.Remove(p)
	link := filepath.Join(dir, "link.db")
	os.Symlink(filepath.Join(dir, "elsewhere.db"), link)
	_, err = PrepareTrustedFile(link, Secret, 0o600)
	wantUntrusted(t, err, link, "is a symlink")
	if _, err := os.Lstat(filepath.Join(dir, "elsewhere.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("created the symlink's target")
	}
}

// TestWriteTrustedFile: the file appears with its mode and content, an
// existing file or symlink is never replaced, and no temporary is left.
func TestWriteTrustedFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "generator.pub")
	if err := WriteTrustedFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteTrustedFile(p, []byte("two"), 0o644); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("replace: %v", err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(filepath.Join(dir, "target"), link)
	if err := WriteTrustedFile(link, []byte("x"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("through a symlink: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "one" {
		t.Fatalf("content %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %#o", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("left %v", entries)
	}
	os.Chmod(dir, 0o777)
	wantUntrusted(t, WriteTrustedFile(filepath.Join(dir, "new"), []byte("x"), 0o600), dir, "mode 0777")
}

func TestCheckUTF8Path(t *testing.T) {
	if err := CheckUTF8Path("/tmp/ok-ü"); err != nil {
		t.Fatal(err)
	}
	if err := CheckUTF8Path("/tmp/bad-\xff"); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Fatalf("%v", err)
	}
}
