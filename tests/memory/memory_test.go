// Package memory checks the memory bound of key generation (issue 6,
// item 4): with scrypt keystores (256 MiB per run), `--max-memory` decides
// how many workers run, and the process's peak resident set (the child's
// getrusage ru_maxrss after wait) must stay within the bound plus a fixed
// allowance for the rest of the process, and must not grow with the number
// of validators.
package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/tests/clitest"
)

const (
	mib = 1 << 20
	// allowance is what the process may hold beyond the scrypt buffers the
	// bound pays for: the Go runtime, BLS tables, the store, buffers.
	allowance = 120 * mib
	// growth is the slack on "does not grow with N": peak(8) must stay
	// under peak(4)·1.15 + growth.
	growth = 16 * mib
)

var binary string

func TestMain(m *testing.M) { os.Exit(clitest.Main(m, "memory", &binary)) }

// peakRSS runs the CLI and returns its peak resident set in bytes.
func peakRSS(t *testing.T, env []string, args ...string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	// The bound is the CLI's job: no GOGC or GOMEMLIMIT from outside may
	// help it (or hurt it).
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GOMEMLIMIT=") && !strings.HasPrefix(kv, "GODEBUG=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			t.Fatalf("ethkeygen %s: %v: %s", args[0], err, stderr.String())
		}
		t.Fatal(err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatal("no rusage for the child")
	}
	rss := ru.Maxrss * 1024 // KiB on Linux
	t.Logf("%s: peak RSS %d MiB in %.1fs", strings.Join(args[:1], " "), rss/mib, time.Since(start).Seconds())
	return rss
}

// settled measures with fn and, if the peak is at or over bound, once more:
// the Go heap may by rare chance place a new scrypt buffer beside a freed
// one not yet returned to the system. A broken bound (too many workers, a
// buffer kept alive, a memory leak) exceeds it every time.
func settled(t *testing.T, bound int64, fn func() int64) int64 {
	t.Helper()
	p := fn()
	if p >= bound {
		t.Logf("peak RSS %d MiB at or over %d MiB once: measuring again", p/mib, bound/mib)
		p = fn()
	}
	return p
}

func existing(t *testing.T, maxMemory string, n int) int64 {
	t.Helper()
	dir := t.TempDir()
	mn := filepath.Join(dir, "mnemonic.txt")
	pw := filepath.Join(dir, "password.txt")
	if err := os.WriteFile(mn, []byte("test test test test test test test test test test test waste\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pw, []byte("a long enough password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return peakRSS(t, nil, "existing-mnemonic", "--mnemonic-file", mn, "--keystore-password-file", pw,
		"--count", fmt.Sprint(n), "--chain", "hoodi", "--kdf", "scrypt", "--out", filepath.Join(dir, "out"),
		"--max-memory", maxMemory)
}

// TestMaxMemoryOneWorker: 300MiB fits one scrypt worker. Peak RSS stays
// under the bound plus the allowance, for 4 and for 8 validators, and does
// not grow with their number.
func TestMaxMemoryOneWorker(t *testing.T) {
	bound := int64(300*mib + allowance)
	p4 := settled(t, bound, func() int64 { return existing(t, "300MiB", 4) })
	p8 := settled(t, bound, func() int64 { return existing(t, "300MiB", 8) })
	for n, p := range map[int]int64{4: p4, 8: p8} {
		if p >= bound {
			t.Errorf("--max-memory 300MiB, %d validators: peak RSS %d MiB, want < %d MiB", n, p/mib, bound/mib)
		}
	}
	if float64(p8) >= float64(p4)*1.15+growth {
		t.Errorf("peak RSS grows with the validators: %d MiB for 4, %d MiB for 8", p4/mib, p8/mib)
	}
	t.Logf("1 worker: peak RSS %d MiB (4 validators), %d MiB (8 validators)", p4/mib, p8/mib)
}

// TestMaxMemoryTwoWorkers: 600MiB fits two scrypt workers.
func TestMaxMemoryTwoWorkers(t *testing.T) {
	bound := int64(600*mib + allowance)
	p := settled(t, bound, func() int64 { return existing(t, "600MiB", 4) })
	if p >= bound {
		t.Errorf("--max-memory 600MiB: peak RSS %d MiB, want < %d MiB", p/mib, bound/mib)
	}
	t.Logf("2 workers: peak RSS %d MiB (%d MiB per worker)", p/mib, p/2/mib)
}

// TestMaxMemoryGenerate: the main job with keystore secrets (scrypt, then
// sealing and the embedded store) keeps the same bound.
func TestMaxMemoryGenerate(t *testing.T) {
	bound := int64(300*mib + allowance)
	p := settled(t, bound, func() int64 {
		dir := t.TempDir()
		return peakRSS(t, []string{"ETHKEYGEN_HOME=" + filepath.Join(dir, "home")},
			"generate", "--count", "4", "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "keystore", "--kdf", "scrypt",
			"--db", filepath.Join(dir, "ethkeygen.db"), "--out", filepath.Join(dir, "out"), "--request-id", "memory",
			"--max-memory", "300MiB")
	})
	if p >= bound {
		t.Errorf("generate --max-memory 300MiB: peak RSS %d MiB, want < %d MiB", p/mib, bound/mib)
	}
}
