//go:build unix

package fsutil

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// openDir opens dir (following symlinks: the directory reached is the one
// checked and used) and checks its owner and mode.
func openDir(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	d := os.NewFile(uintptr(fd), dir)
	fi, err := d.Stat()
	if err == nil {
		err = checkOwnerMode(dir, fi, 0o022, "directory")
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// checkOwnerMode refuses fi if it belongs to another user than the
// effective one or root, or has any of the bad permission bits.
func checkOwnerMode(path string, fi fs.FileInfo, bad fs.FileMode, what string) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return untrusted(path, "cannot read the owner of this %s", what)
	}
	if uid := ownerOf(path, int(st.Uid)); uid != geteuid() && uid != 0 {
		return untrusted(path, "%s is owned by uid %d, not by this user (uid %d) or root; refusing it", what, uid, geteuid())
	}
	if m := fi.Mode().Perm(); m&bad != 0 {
		who, fix := "group or others can write it", "go-w"
		if m&0o022 == 0 {
			who, fix = "group or others can read it", "go-rwx"
		}
		return untrusted(path, "%s has mode %#o: %s; run chmod %s on it", what, m, who, fix)
	}
	return nil
}

func badBits(kind Kind) fs.FileMode {
	if kind == Secret {
		return 0o077
	}
	return 0o022
}

func openTrusted(path string, kind Kind) (*os.File, error) {
	dir, base := splitPath(path)
	d, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	fd, err := unix.Openat(int(d.Fd()), base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EMLINK) {
			return nil, untrusted(path, "is a symlink; refusing to follow it (use the real path)")
		}
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = untrusted(path, "is not a regular file (%v)", fi.Mode().Type())
	}
	if err == nil {
		err = checkOwnerMode(path, fi, badBits(kind), "file")
	}
	if err == nil {
		// O_NONBLOCK only kept a FIFO from blocking the open.
		err = clearNonblock(fd)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func clearNonblock(fd int) error {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&^unix.O_NONBLOCK)
	return err
}

func createTrusted(path string, perm os.FileMode) (*os.File, error) {
	dir, base := splitPath(path)
	d, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	fd, err := unix.Openat(int(d.Fd()), base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, &fs.PathError{Op: "create", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	// The umask may have removed bits; never added any. Set exactly perm.
	if err := f.Chmod(perm.Perm()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func writeTrustedFile(path string, data []byte, perm os.FileMode) error {
	dir, base := splitPath(path)
	d, err := openDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	dfd := int(d.Fd())
	var tmp string
	var fd int
	for range 100 {
		tmp = "." + base + ".tmp-" + rand.Text()[:12]
		fd, err = unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if !errors.Is(err, unix.EEXIST) {
			break
		}
	}
	if err != nil {
		return &fs.PathError{Op: "create", Path: filepath.Join(dir, tmp), Err: err}
	}
	defer unix.Unlinkat(dfd, tmp, 0)
	f := os.NewFile(uintptr(fd), filepath.Join(dir, tmp))
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm.Perm())
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// linkat fails if base exists (even as a dangling symlink).
	if err := unix.Linkat(dfd, tmp, dfd, base, 0); err != nil {
		return &fs.PathError{Op: "link", Path: path, Err: err}
	}
	_ = d.Sync()
	return nil
}

func checkTrustedParent(path string) error {
	dir, _ := splitPath(path)
	d, err := openDir(dir)
	if err != nil {
		return err
	}
	return d.Close()
}

func checkTrustedDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return untrusted(dir, "is a symlink; refusing to follow it (use the real path)")
	}
	if !fi.IsDir() {
		return untrusted(dir, "is not a directory")
	}
	return checkOwnerMode(dir, fi, 0o022, "directory")
}
