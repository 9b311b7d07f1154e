package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"unicode/utf8"
)

// ErrUntrusted is wrapped by every refusal of OpenTrusted, CreateTrusted,
// CheckTrustedDir and PrepareTrustedFile: a symlink where a file or
// directory was expected, a file or directory owned by another user, or
// one that group or others can write (or, for secrets, read).
var ErrUntrusted = errors.New("untrusted file")

// Kind says how strictly a file is checked.
type Kind int

const (
	// Public is a trust anchor that others may read but nobody else may
	// change: recipient.txt, generator.pub. No group or other write.
	Public Kind = iota
	// Secret is a private key or store: identity.txt, generator.key,
	// ethkeygen.db. No group or other access at all.
	Secret
)

// TrustError is the one-line refusal: "<path>: <reason>".
type TrustError struct {
	Path   string
	Reason string
}

func (e *TrustError) Error() string { return e.Path + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrUntrusted) hold.
func (e *TrustError) Unwrap() error { return ErrUntrusted }

func untrusted(path, format string, args ...any) error {
	return &TrustError{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// geteuid is the user that files must belong to (besides root); a test
// replaces it to check that root-owned files are trusted.
var geteuid = os.Geteuid

// OpenTrusted opens an existing file for reading. It never follows a
// symlink at the last path element (O_NOFOLLOW, on the directory opened
// and checked first, so the file checked is the file read), and refuses:
// a symlink; a file that is not regular; a file or parent directory owned
// by a user other than the effective user or root; a parent directory that
// group or others can write; a file that group or others can write, or,
// for Secret, access at all. A missing file gives an error wrapping
// fs.ErrNotExist. Only the immediate parent directory is checked.
//
// On systems without these file modes (not Unix) it is a plain open.
func OpenTrusted(path string, kind Kind) (*os.File, error) { return openTrusted(path, kind) }

// CreateTrusted creates a new file (O_EXCL, never through a symlink) with
// mode perm in a parent directory that passes the checks of OpenTrusted.
// An existing file or symlink gives an error wrapping fs.ErrExist.
func CreateTrusted(path string, perm os.FileMode) (*os.File, error) {
	return createTrusted(path, perm)
}

// WriteTrustedFile writes data to a new file path with mode perm, in a
// parent directory that passes the checks of OpenTrusted. The file appears
// complete or not at all (temporary file, fsync, link), so a concurrent
// reader never sees it half-written; an existing file or symlink at path
// is never replaced and gives an error wrapping fs.ErrExist.
func WriteTrustedFile(path string, data []byte, perm os.FileMode) error {
	return writeTrustedFile(path, data, perm)
}

// CheckTrustedDir refuses dir if it is a symlink (not followed), not a
// directory, owned by another user (other than root), or writable by group
// or others. A missing dir gives an error wrapping fs.ErrNotExist.
func CheckTrustedDir(dir string) error { return checkTrustedDir(dir) }

// CheckTrustedParent checks the directory that holds path (following
// symlinks to it) as OpenTrusted does: owned by the user or root, not
// writable by group or others. A missing directory gives an error wrapping
// fs.ErrNotExist.
func CheckTrustedParent(path string) error { return checkTrustedParent(path) }

// PrepareTrustedFile readies path for a program that opens it by name
// itself (SQLite): the parent directory must pass CheckTrustedDir's
// ownership and write checks; an existing path must be a regular file
// (not a symlink) owned by the user or root with no group or other access
// beyond kind; a missing one is created empty with mode perm, so the
// program never creates it with the umask's mode. created reports whether
// it was created.
func PrepareTrustedFile(path string, kind Kind, perm os.FileMode) (created bool, err error) {
	for range 3 { // again only if the file appeared after our check
		f, err := OpenTrusted(path, kind)
		if err == nil {
			return false, f.Close()
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
		f, err = CreateTrusted(path, perm)
		if errors.Is(err, fs.ErrExist) {
			continue // someone created it since: check theirs
		}
		if err != nil {
			return false, err
		}
		return true, f.Close()
	}
	return false, untrusted(path, "keeps appearing and disappearing")
}

// CheckUTF8Path refuses a path that is not valid UTF-8: such a path cannot
// be written into a JSON or YAML configuration (which would then name a
// file that does not exist).
func CheckUTF8Path(path string) error {
	if !utf8.ValidString(path) {
		return fmt.Errorf("%q: the path is not valid UTF-8; use a UTF-8 path", path)
	}
	return nil
}

func splitPath(path string) (dir, base string) {
	return filepath.Dir(path), filepath.Base(path)
}

// PretendOwnerForTest makes the ownership checks see path (as given to
// them, cleaned) as owned by uid until t ends, so a test that is not root
// can present its own file as another user's (root can os.Chown it for
// real). Tests only: it changes whose files are trusted, process-wide.
func PretendOwnerForTest(t testing.TB, path string, uid int) {
	t.Helper()
	path = filepath.Clean(path)
	pretendMu.Lock()
	defer pretendMu.Unlock()
	if pretendOwner == nil {
		pretendOwner = map[string]int{}
	}
	pretendOwner[path] = uid
	t.Cleanup(func() {
		pretendMu.Lock()
		defer pretendMu.Unlock()
		delete(pretendOwner, path)
	})
}

var (
	pretendMu    sync.Mutex
	pretendOwner map[string]int
)

// ownerOf returns uid, or the owner a test pretends path has.
func ownerOf(path string, uid int) int {
	pretendMu.Lock()
	defer pretendMu.Unlock()
	if u, ok := pretendOwner[filepath.Clean(path)]; ok {
		return u
	}
	return uid
}
