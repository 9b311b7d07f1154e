//go:build !unix

package sqlitestore

func mayWrite(string) bool { return true }
