// Package hardening holds the process-level protections every adapter that
// handles secrets applies at start.
package hardening

import "syscall"

// DisableCoreDumps sets RLIMIT_CORE to zero, so a crash cannot write the
// process's memory (keys, passwords, mnemonics) to a core file.
//
// A core_pattern that pipes to a program (systemd-coredump, apport) ignores
// RLIMIT_CORE; DisableDumping covers that case.
func DisableCoreDumps() error {
	return syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{Cur: 0, Max: 0})
}

// DisableDumping marks the process non-dumpable (Linux
// prctl(PR_SET_DUMPABLE, 0)): the kernel writes no core dump of it through
// any core_pattern, including a piped one, other processes of the same user
// can no longer ptrace it or read its /proc/<pid>/mem, environ, maps and
// the like (those files become root's). Elsewhere it does nothing. The
// setting survives until the process execs a new program.
func DisableDumping() error { return disableDumping() }
