package memory

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// TestCLINotDumpable: the running CLI is non-dumpable
// (prctl(PR_SET_DUMPABLE, 0)), which a piped core_pattern cannot ignore.
// The kernel shows it from outside: the /proc/<pid> entries of a
// non-dumpable process (environ, mem, status, ...) belong to root, not to
// the process's user (proc(5), "/proc/pid").
// So the CLI must run as a user other than root: as root (here and in CI)
// the test starts it as nobody (uid 65534); otherwise as the test's own
// user. It blocks reading its password from a FIFO; once it has the FIFO
// open it is past main's hardening, and /proc/<pid> is examined.
func TestCLINotDumpable(t *testing.T) {
	dir := t.TempDir()
	// nobody must reach the binary and the FIFO: t.TempDir is
	// <TMPDIR>/<TestName><random>/001, both made 0700.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := binary
	cmdUID := os.Getuid()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		bin = filepath.Join(dir, "ethkeygen")
		copyFile(t, binary, bin, 0o755)
		cmdUID = 65534
		cred = &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}
	}
	fifo := filepath.Join(dir, "password.fifo")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "existing-mnemonic", "--mnemonic-file", fifo, "--keystore-password-file", fifo,
		"--count", "1", "--chain", "hoodi", "--out", filepath.Join(dir, "out"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	proc := "/proc/" + itoa(cmd.Process.Pid)

	// Wait until the CLI has opened the FIFO for reading: a non-blocking
	// writer open succeeds only then (ENXIO before).
	var w *os.File
	deadline := time.Now().Add(20 * time.Second)
	for {
		f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			w = f
			break
		}
		if !errors.Is(err, syscall.ENXIO) || time.Now().After(deadline) {
			t.Fatalf("the CLI never opened its password FIFO: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer w.Close()

	status, err := os.ReadFile(proc + "/status")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)`).FindSubmatch(status)
	if m == nil || string(m[1]) != itoa(cmdUID) || cmdUID == 0 {
		t.Fatalf("the CLI runs as uid %s, want %d (not root, or the test proves nothing)", m[1], cmdUID)
	}
	// (The /proc/<pid> directory itself keeps the user's uid: the kernel
	// exempts world-readable directories, for ps.)
	for _, name := range []string{"/environ", "/mem", "/status", "/maps"} {
		fi, err := os.Lstat(proc + name)
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 0 {
			t.Errorf("%s%s belongs to uid %d: the CLI (uid %d) is dumpable", proc, name, uid, cmdUID)
		}
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
