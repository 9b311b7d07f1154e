// Package signals holds process-level tests of how the ethkeygen binary
// answers signals during long work.
package signals

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/tests/clitest"
)

var binary string

func TestMain(m *testing.M) { os.Exit(clitest.Main(m, "signals", &binary)) }

// hostileKeystore is a keystore whose scrypt parameters are the costliest
// the bounds allow (n=2^19, r=8, p=2: 512 MiB, n·r·p = MaxScryptWork),
// seconds of work on any machine.
func hostileKeystore(t *testing.T, dir string) string {
	t.Helper()
	const n, r, p = 1 << 19, 8, 2
	if n*r*p != keystore.MaxScryptWork || 128*n*r != keystore.MaxScryptMemory {
		t.Fatalf("the keystore is not at the bounds (%d, %d)", keystore.MaxScryptWork, keystore.MaxScryptMemory)
	}
	ks := fmt.Sprintf(`{"crypto":{"kdf":{"function":"scrypt","params":{"dklen":32,"n":%d,"r":%d,"p":%d,"salt":"d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"},"message":""},`+
		`"checksum":{"function":"sha256","params":{},"message":"d2217fe5f3e9a1e34581ef8a78f7c9928e436d36dacc5e846690a5581e8ea484"},`+
		`"cipher":{"function":"aes-128-ctr","params":{"iv":"264daa3f303d7259501c93d997d84fe6"},"message":"06ae90d55fe0a6e9c5c3bc5b170827b2e5cce3929ed3f116c2811e6366dfe20f"}},`+
		`"description":"","pubkey":"","path":"m/12381/3600/0/0/0","uuid":"1d85ae20-35c5-4611-98e8-aa14a633906f","version":4}`, n, r, p)
	path := filepath.Join(dir, "keystore.json")
	if err := os.WriteFile(path, []byte(ks), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestVerifyKeystoreSIGTERM: SIGTERM during the KDF of a hostile but
// allowed keystore ends `ethkeygen verify-keystore` within a second (it
// used to run the KDF to its end, seconds to minutes, ignoring the signal).
func TestVerifyKeystoreSIGTERM(t *testing.T) {
	dir := t.TempDir()
	ks := hostileKeystore(t, dir)
	pw := filepath.Join(dir, "password.txt")
	if err := os.WriteFile(pw, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "verify-keystore", ks, "--password-file", pw)
	cmd.Env = append(os.Environ(), "ETHKEYGEN_HOME="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Let it get well into the KDF (2^20 sequential blocks of 1 KiB).
	select {
	case err := <-done:
		t.Fatalf("finished before the signal: %v: %s", err, stderr.String())
	case <-time.After(700 * time.Millisecond):
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		took := time.Since(sent)
		t.Logf("exited %v after SIGTERM: %v: %s", took, err, strings.TrimSpace(stderr.String()))
		if took > time.Second {
			t.Fatalf("exited %v after SIGTERM, want within 1s", took)
		}
		if err == nil {
			t.Fatal("exit status 0 after SIGTERM")
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("still running 30s after SIGTERM")
	}
}
