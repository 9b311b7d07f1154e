package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpsBadInput: the exit and bls-change subcommands refuse bad input
// with one line and the right exit code before they reach AWS or the
// enclave, and write nothing.
func TestOpsBadInput(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	pk := strings.Repeat("ab", 48)
	for _, c := range []struct {
		args    []string
		code    int
		mention string
	}{
		{[]string{"exit", "--out", out}, 2, "--pubkey and --out"},
		{[]string{"exit", "--pubkey", pk, "--validator-index", "1,2", "--out", out}, 2, "2 validator index(es) for 1 key"},
		{[]string{"exit", "--pubkey", pk, "--validator-index", "x", "--out", out}, 2, "not a number"},
		{[]string{"exit", "--pubkey", pk, "--validator-index", "1", "--out", out, "--withdrawal-address", "0x00"}, 2, "for bls-change"},
		{[]string{"exit", "--pubkey", pk, "--validator-index", "1", "--out", out, "--encrypt-password-file", short}, 1, "at least 12"},
		{[]string{"bls-change", "--pubkey", pk, "--validator-index", "1", "--out", out, "--withdrawal-address", strings.ToLower("0x5B38Da6a701c568545dCfcB03FcB875f56beddC4")}, 2, "EIP-55"},
		{[]string{"bls-change", "--pubkey", pk, "--validator-index", "1", "--out", out, "--epoch", "3"}, 2, "for exit"},
		{[]string{"bls-change", "--bogus"}, 2, "bogus"},
	} {
		var stdout, stderr bytes.Buffer
		code := runOpsMain(c.args, &stdout, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code != c.code || !strings.Contains(stderr.String(), c.mention) || (c.args[1] != "--bogus" && len(lines) != 1) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", c.args, code, c.code, stderr.String(), c.mention)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%v wrote %s", c.args, out)
		}
	}
}
