//go:build !unix

package sqlitestore

func umask(m int) int { return 0 }
