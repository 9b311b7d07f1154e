package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ethkeygen/ethkeygen/internal/fsutil"
)

// outDir is an output directory: created 0700 (with missing parents) if it
// does not exist, and removed again, with the parents made for it, when the
// command ends without writing into it.
type outDir struct {
	path string
	made []string // directories this command created, deepest first
}

func openOutDir(path string) (*outDir, error) {
	var made []string
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		made = append(made, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	o := &outDir{path: path, made: made}
	if err := fsutil.EnsurePrivateDir(path); err != nil {
		o.discard()
		return nil, err
	}
	return o, nil
}

// discard removes the directories made for this command if they are empty
// (os.Remove leaves a directory that holds anything).
func (o *outDir) discard() {
	if o == nil {
		return
	}
	for _, p := range o.made {
		if os.Remove(p) != nil {
			return
		}
	}
}
