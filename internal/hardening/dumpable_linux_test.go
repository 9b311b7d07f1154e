//go:build linux

package hardening

import "testing"

// TestDisableDumping: after the call the kernel reports the process
// non-dumpable (PR_GET_DUMPABLE = 0). tests/memory's TestCLINotDumpable
// checks the same on the running CLI from outside.
func TestDisableDumping(t *testing.T) {
	if err := DisableDumping(); err != nil {
		t.Fatal(err)
	}
	d, err := dumpable()
	if err != nil {
		t.Fatal(err)
	}
	if d {
		t.Fatal("PR_GET_DUMPABLE still 1")
	}
}
