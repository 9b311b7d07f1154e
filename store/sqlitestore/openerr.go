package sqlitestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/ethkeygen/ethkeygen/store"
)

// MustExist makes Open fail, instead of creating a new empty store, when
// there is no file at path: for commands that read or export records, to
// which a store that was deleted or moved must not look like an empty one.
func MustExist() Option {
	return optionFunc(func(o *options) error { o.mustExist = true; return nil })
}

// openError is a failure to open the store file, said in one plain line;
// it wraps store.ErrUnavailable and the cause.
type openError struct {
	msg   string
	cause error
}

func (e *openError) Error() string   { return e.msg }
func (e *openError) Unwrap() []error { return []error{store.ErrUnavailable, e.cause} }

// errMissing reports a store file that MustExist requires and that is not
// there.
func errMissing(path string, cause error) error {
	return &openError{fmt.Sprintf("store file %s does not exist (was it deleted or moved?); only generate creates a new store: check --db", path), cause}
}

// plainOpenError turns what creating or opening the file, or reading its
// schema, failed with into one line an operator can act on: a directory or
// file that cannot be written, or a file that is not a (sound) SQLite
// database. Other errors are returned unchanged.
func plainOpenError(path string, err error) error {
	dir := filepath.Dir(path)
	if abs, aerr := filepath.Abs(dir); aerr == nil {
		dir = abs
	}
	var se *sqlite.Error
	code := 0
	if errors.As(err, &se) {
		code = se.Code() & 0xff
	}
	switch {
	case code == sqlite3.SQLITE_NOTADB || code == sqlite3.SQLITE_CORRUPT:
		return &openError{fmt.Sprintf("store file %s is damaged or not an ethkeygen store (SQLite: %s); restore it from a backup, or check --db",
			path, sqlite.ErrorCodeString[code]), err}
	case code == sqlite3.SQLITE_READONLY || code == sqlite3.SQLITE_CANTOPEN || code == sqlite3.SQLITE_PERM ||
		errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS):
		if !writable(dir) {
			return &openError{fmt.Sprintf("store file %s cannot be written: its directory %s is read-only (SQLite keeps its -wal and -shm files beside it); use a writable directory", path, dir), err}
		}
		if !writable(path) {
			return &openError{fmt.Sprintf("store file %s is read-only; make it writable (chmod u+w) or use another --db", path), err}
		}
	}
	return err
}

// writable reports whether this process may write path: create a file in
// it if it is a directory, or write it if it is a file (access(2) on
// Unix). Neither changes anything that exists.
func writable(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	if fi.IsDir() {
		f, err := os.CreateTemp(path, ".ethkeygen-probe-*")
		if err != nil {
			return false
		}
		f.Close()
		os.Remove(f.Name())
		return true
	}
	// Not by opening it: closing a descriptor of a database file drops
	// the POSIX locks other connections of this process hold on it.
	return mayWrite(path)
}
