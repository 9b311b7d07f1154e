// Package fsutil writes output files so that a failed run leaves nothing
// behind: each file appears whole (temporary file, fsync, rename) and a Batch
// removes every file it wrote unless it is committed.
package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// WriteFileAtomic writes data to path with perm: the file either appears
// complete or not at all. It refuses to replace an existing file.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Link fails if path exists: never overwrite a file we did not write.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return &ExistsError{Path: path}
		}
		return err
	}
	ok = true
	_ = os.Remove(tmp)
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	_ = d.Sync() // not supported everywhere; best effort
	return nil
}

// ExistsError reports a file that WriteFileAtomic would not replace.
type ExistsError struct{ Path string }

func (e *ExistsError) Error() string { return e.Path + " already exists" }

// Unwrap makes errors.Is(err, fs.ErrExist) hold.
func (e *ExistsError) Unwrap() error { return fs.ErrExist }

// Batch tracks files written for one run.
type Batch struct {
	written   []string
	committed bool
}

// Write writes one file of the batch atomically.
func (b *Batch) Write(path string, data []byte, perm os.FileMode) error {
	if err := WriteFileAtomic(path, data, perm); err != nil {
		return err
	}
	b.written = append(b.written, path)
	return nil
}

// File is one file of WriteAll.
type File struct {
	Name string // in the directory given to WriteAll
	Data []byte
}

// WriteAll writes files into dir with perm, each appearing whole or not at
// all and none replacing an existing file, as Write does, but for many
// files at the cost of a few: every file's data is written to a temporary
// file first, all of them are fsynced concurrently (the filesystem commits
// them together), then each is linked to its name, then dir is synced
// once. On error the temporary files are removed; the files already
// linked stay in the batch for Rollback.
func (b *Batch) WriteAll(dir string, files []File, perm os.FileMode) error {
	tmps := make([]string, 0, len(files))
	defer func() {
		for _, t := range tmps {
			_ = os.Remove(t) // a no-op once linked and removed
		}
	}()
	for _, f := range files {
		t, err := os.CreateTemp(dir, "."+f.Name+".tmp-*")
		if err != nil {
			return err
		}
		tmps = append(tmps, t.Name())
		_, werr := t.Write(f.Data)
		cerr := t.Chmod(perm)
		if err := errors.Join(werr, cerr, t.Close()); err != nil {
			return err
		}
	}
	if err := syncAll(tmps); err != nil {
		return err
	}
	for i, f := range files {
		path := filepath.Join(dir, f.Name)
		if err := os.Link(tmps[i], path); err != nil {
			if errors.Is(err, os.ErrExist) {
				return &ExistsError{Path: path}
			}
			return err
		}
		b.written = append(b.written, path)
		_ = os.Remove(tmps[i])
	}
	return syncDir(dir)
}

// syncAll fsyncs the files at paths, several at once.
func syncAll(paths []string) error {
	const workers = 16
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan string)
	for range min(workers, len(paths)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				f, err := os.Open(p)
				if err == nil {
					err = errors.Join(f.Sync(), f.Close())
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, p := range paths {
		next <- p
	}
	close(next)
	wg.Wait()
	return firstErr
}

// Files lists what was written.
func (b *Batch) Files() []string { return b.written }

// Commit keeps the files.
func (b *Batch) Commit() { b.committed = true }

// Rollback removes every file written unless the batch was committed. Call
// it deferred.
func (b *Batch) Rollback() {
	if b.committed {
		return
	}
	for _, p := range b.written {
		_ = os.Remove(p)
	}
	b.written = nil
}

// EnsurePrivateDir creates dir (0700) if it is missing and checks that it is
// a writable directory.
func EnsurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("cannot write to %s: %w", dir, errors.Unwrap(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

// ReadSecretFile reads a password or mnemonic file as validator clients and
// Web3Signer do: one trailing newline (LF or CRLF) is not part of the secret.
// The caller owns (and should clear) the returned bytes.
func ReadSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b, nil
}

// ReplaceFileAtomic writes data to path with perm, replacing the file if it
// exists: readers see the old contents or the new, never a part.
func ReplaceFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}
