//go:build unix

package sqlitestore

import "syscall"

func umask(m int) int { return syscall.Umask(m) }
