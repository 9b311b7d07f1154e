//go:build unix

package sqlitestore

import "syscall"

func mayWrite(path string) bool { return syscall.Access(path, 2 /* W_OK */) == nil }
