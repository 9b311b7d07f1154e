// Package hardening holds the process-level protections every adapter that
// handles secrets applies at start.
package hardening

import "syscall"

// DisableCoreDumps sets RLIMIT_CORE to zero, so a crash cannot write the
// process's memory (keys, passwords, mnemonics) to a core file.
func DisableCoreDumps() error {
	return syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{Cur: 0, Max: 0})
}
