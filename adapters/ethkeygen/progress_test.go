package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProgressOnTerminalOnly: a run longer than a second shows
// "validators N/N" on a terminal's stderr, and nothing when stderr is not a
// terminal (scripts read clean output).
func TestProgressOnTerminalOnly(t *testing.T) {
	dir := t.TempDir()
	mn := writeFile(t, dir, "mnemonic.txt", testMnemonic)
	pw := writeFile(t, dir, "password.txt", "a long enough password")
	for _, terminal := range []bool{true, false} {
		var out, errb bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: os.Getenv, isTerminal: terminal}
		code := run(context.Background(), e, []string{"existing-mnemonic", "--mnemonic-file", mn, "--count", "4", "--chain", "hoodi",
			"--keystore-password-file", pw, "--out", filepath.Join(dir, "out", map[bool]string{true: "tty", false: "pipe"}[terminal]),
			"--max-memory", "300MiB"})
		if code != 0 {
			t.Fatal(errb.String())
		}
		shown := strings.Contains(errb.String(), "validators 4/4")
		if shown != terminal {
			t.Fatalf("terminal=%v: progress shown=%v: %q", terminal, shown, errb.String())
		}
	}
}
