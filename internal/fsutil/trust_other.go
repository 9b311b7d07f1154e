//go:build !unix

package fsutil

import (
	"os"
	"path/filepath"
)

// Without Unix owners and modes only the symlink and regular-file checks
// apply.

func openTrusted(path string, _ Kind) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, untrusted(path, "is not a regular file (%v)", fi.Mode().Type())
	}
	return os.Open(path)
}

func createTrusted(path string, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
}

func checkTrustedDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return untrusted(dir, "is not a directory (%v)", fi.Mode().Type())
	}
	return nil
}

func writeTrustedFile(path string, data []byte, perm os.FileMode) error {
	return WriteFileAtomic(path, data, perm)
}

func checkTrustedParent(path string) error {
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return untrusted(filepath.Dir(path), "is not a directory")
	}
	return nil
}
