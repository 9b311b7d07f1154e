//go:build linux

package hardening

import "golang.org/x/sys/unix"

func disableDumping() error { return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) }

// dumpable reports prctl(PR_GET_DUMPABLE) (for tests).
func dumpable() (bool, error) {
	r, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	return r != 0, err
}
