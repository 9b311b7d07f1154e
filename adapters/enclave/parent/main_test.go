package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain runs the command itself when the test binary is started with
// PARENT_TEST_MAIN=1 (the bad-input tests below start it so).
func TestMain(m *testing.M) {
	if os.Getenv("PARENT_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestWatchBadUsage: -watch flag combinations that cannot run exit 2 with
// one JSON error line naming the problem, before anything is opened.
func TestWatchBadUsage(t *testing.T) {
	for _, c := range []struct {
		args    []string
		mention string
	}{
		{[]string{"-watch"}, "-watch needs -signer"},
		{[]string{"-watch", "-signer", "s", "-takeover"}, "never takes a key over"},
		{[]string{"-watch", "-signer", "s", "-no-slashing-history-i-understand"}, "never takes a key over"},
		{[]string{"-watch", "-signer", "s", "-pubkeys", "keys.txt"}, "no -pubkeys"},
		{[]string{"-watch", "-signer", "s", "-interval", "10ms"}, "-interval"},
		{[]string{"-watch", "-signer", "s", "-batch", "0"}, "-batch must be"},
		{[]string{"-watch", "-signer", "s", "-interval", "soon"}, "invalid value"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], c.args...)
			cmd.Env = []string{"PARENT_TEST_MAIN=1", "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
			cmd.Dir = t.TempDir()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2; stderr %s", err, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if !strings.Contains(lines[0], c.mention) {
				t.Fatalf("stderr %q does not mention %q", stderr.String(), c.mention)
			}
			if strings.HasPrefix(lines[0], "{") {
				if len(lines) != 1 || !json.Valid([]byte(lines[0])) {
					t.Fatalf("not one JSON line: %q", stderr.String())
				}
			}
			if entries, _ := os.ReadDir(cmd.Dir); len(entries) != 0 {
				t.Fatalf("a refused run made %v", entries)
			}
		})
	}
}
