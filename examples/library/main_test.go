package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestExampleRuns runs the example as a user would.
func TestExampleRuns(t *testing.T) {
	if os.Getenv("ETHKEYGEN_EXAMPLE_CHILD") == "1" {
		main()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestExampleRuns$")
	cmd.Env = append(os.Environ(), "ETHKEYGEN_EXAMPLE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "2 validators, export req-example-1: deposit_data-") ||
		!strings.Contains(string(out), "-req-example-1.json of 1408 bytes") || !strings.Contains(string(out), "([REDACTED])") {
		t.Fatalf("unexpected output: %s", out)
	}
}
