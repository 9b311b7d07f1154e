package envelope

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/ethkeygen/ethkeygen/internal/fsutil"
)

// maxKeyFileSize bounds identity and recipient files read from disk.
const maxKeyFileSize = 64 << 10

// LoadOrCreateIdentity loads the age X25519 identity stored at path, or, if no
// file exists there, generates one and writes it in the standard age identity
// file format (comment lines followed by one AGE-SECRET-KEY-1... line), as
// age-keygen does. created reports whether a new identity was written.
//
// A new file is created with mode 0600, whole (temporary file and link), so
// an existing file or symlink is never overwritten; missing parent
// directories are created with mode 0700. On Unix the identity file is
// opened without following symlinks, must be a regular file owned by the
// user (or root) and not accessible to group or others, and its directory
// must be owned by the user (or root) and not writable by group or others.
func LoadOrCreateIdentity(path string) (id *age.X25519Identity, created bool, err error) {
	id, err = loadIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("envelope: create identity directory: %w", err)
	}
	id, err = age.GenerateX25519Identity()
	if err != nil {
		return nil, false, fmt.Errorf("envelope: generate identity: %w", err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# created: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&buf, "# public key: %s\n", id.Recipient())
	fmt.Fprintf(&buf, "%s\n", id)
	// The file appears complete or not at all, never through a symlink,
	// and never replaces one.
	err = fsutil.WriteTrustedFile(path, buf.Bytes(), 0o600)
	clear(buf.Bytes())
	if errors.Is(err, fs.ErrExist) {
		// Lost a race with another creator: use theirs.
		id, err = loadIdentity(path)
		return id, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("envelope: create identity file: %w", err)
	}
	return id, true, nil
}

// LoadIdentity loads an existing age X25519 identity file, with the checks
// of LoadOrCreateIdentity (no symlink, no group or other access); it never
// creates one.
func LoadIdentity(path string) (*age.X25519Identity, error) {
	id, err := loadIdentity(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("envelope: identity file: %w", err)
	}
	return id, err
}

func loadIdentity(path string) (*age.X25519Identity, error) {
	f, err := fsutil.OpenTrusted(path, fsutil.Secret)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err // let the caller create it
		}
		return nil, fmt.Errorf("envelope: identity file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("envelope: read identity file: %w", err)
	}
	defer clear(data)
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("envelope: identity file %s is too large", path)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		// age's parse errors do not echo secret key material.
		return nil, fmt.Errorf("envelope: identity file %s: %w", path, err)
	}
	if len(ids) != 1 {
		return nil, fmt.Errorf("envelope: identity file %s holds %d identities; want 1", path, len(ids))
	}
	id, ok := ids[0].(*age.X25519Identity)
	if !ok {
		return nil, fmt.Errorf("envelope: identity file %s does not hold an X25519 identity", path)
	}
	return id, nil
}

// LoadRecipient reads an age X25519 recipient (age1...) from a file holding
// exactly one, optionally with blank and '#' comment lines. The file is a
// trust anchor (whoever can change it receives every secret sealed
// afterwards): it is opened without following symlinks and must be a
// regular file owned by the user (or root), not writable by group or
// others, in a directory with the same rules.
func LoadRecipient(path string) (*age.X25519Recipient, error) {
	f, err := fsutil.OpenTrusted(path, fsutil.Public)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("envelope: open recipient file: %w", err)
		}
		return nil, fmt.Errorf("envelope: recipient file: %w", err)
	}
	defer f.Close()
	return parseRecipientFile(io.LimitReader(f, maxKeyFileSize), path)
}

func parseRecipientFile(r io.Reader, path string) (*age.X25519Recipient, error) {
	var rcpt *age.X25519Recipient
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rcpt != nil {
			return nil, fmt.Errorf("envelope: recipient file %s holds more than one recipient", path)
		}
		if strings.HasPrefix(line, "AGE-SECRET-KEY-") {
			// Never echo the line: it is a secret key.
			return nil, fmt.Errorf("envelope: recipient file %s line %d holds a secret key, not a recipient", path, n)
		}
		var err error
		if rcpt, err = age.ParseX25519Recipient(line); err != nil {
			return nil, fmt.Errorf("envelope: recipient file %s line %d: %w", path, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("envelope: read recipient file %s: %w", path, err)
	}
	if rcpt == nil {
		return nil, fmt.Errorf("envelope: recipient file %s holds no recipient", path)
	}
	return rcpt, nil
}

// WriteRecipientFile writes r to path (mode 0644) as a comment line and the
// age1... recipient, so that a generator can be given only the public key.
// It never replaces a different file: if path exists and already holds r it
// returns nil, and otherwise an error wrapping fs.ErrExist.
func WriteRecipientFile(path string, r *age.X25519Recipient) error {
	if r == nil {
		return errors.New("envelope: WriteRecipientFile: nil recipient")
	}
	content := fmt.Sprintf("# ethkeygen envelope recipient (public key; safe to share)\n%s\n", r)
	err := fsutil.WriteTrustedFile(path, []byte(content), 0o644)
	if errors.Is(err, fs.ErrExist) {
		existing, lerr := LoadRecipient(path)
		if lerr == nil && existing.String() == r.String() {
			return nil
		}
		return fmt.Errorf("envelope: recipient file %s already exists with other content: %w", path, fs.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("envelope: write recipient file: %w", err)
	}
	return nil
}
