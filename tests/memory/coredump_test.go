package memory

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCoreDumpsDisabled: while the CLI holds secrets (a scrypt run of
// existing-mnemonic), its core file size limit is zero.
func TestCoreDumpsDisabled(t *testing.T) {
	dir := t.TempDir()
	mn := filepath.Join(dir, "mnemonic.txt")
	pw := filepath.Join(dir, "password.txt")
	_ = os.WriteFile(mn, []byte("test test test test test test test test test test test waste\n"), 0o600)
	_ = os.WriteFile(pw, []byte("a long enough password\n"), 0o600)
	cmd := exec.Command(binary, "existing-mnemonic", "--mnemonic-file", mn, "--keystore-password-file", pw,
		"--count", "4", "--chain", "hoodi", "--out", filepath.Join(dir, "out"), "--max-memory", "300MiB")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()
	limit := regexp.MustCompile(`(?m)^Max core file size\s+(\S+)\s+(\S+)`)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + itoa(cmd.Process.Pid) + "/limits")
		if err != nil {
			t.Fatal(err)
		}
		m := limit.FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("no core limit in %s", b)
		}
		if m[1] == "0" && m[2] == "0" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile("/proc/" + itoa(cmd.Process.Pid) + "/limits")
	t.Fatalf("core dumps still allowed: %s", strings.TrimSpace(limit.FindString(string(b))))
}

func itoa(n int) string { return strconv.Itoa(n) }
