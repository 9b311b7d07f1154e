package provenance

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ethkeygen/ethkeygen/internal/fsutil"
)

// File names of the embedded default's generator key, in the key directory
// beside identity.txt and recipient.txt.
const (
	KeyFile = "generator.key" // the signing key: secret, mode 0600
	PubFile = "generator.pub" // the verification key: public, mode 0644
)

// Line prefixes of the two files (see the package documentation).
const (
	secretPrefix = "ETHKEYGEN-GENERATOR-ED25519-SECRET-KEY:"
	publicPrefix = "ethkeygen-generator-ed25519:"
)

// maxKeyFile bounds what is read from either file.
const maxKeyFile = 4 << 10

// LoadOrCreateLocalSigner loads the Ed25519 signing key dir/generator.key,
// or, if there is none, creates one (mode 0600, O_EXCL) with
// dir/generator.pub beside it (mode 0644). created reports whether a new key
// was written. dir is created (0700) if it is missing.
//
// Both files are opened without following symlinks, must be regular files
// owned by the effective user or root, and may not be writable by group or
// others (generator.key may not be accessible to them at all); dir must be
// owned by the user or root and not writable by group or others.
//
// An existing generator.pub must hold the key's public key (a missing one is
// written). A generator.pub without generator.key is refused rather than
// replaced: either the signing key was lost (and records signed by it still
// verify only with that generator.pub) or someone planted the file.
func LoadOrCreateLocalSigner(dir string) (s Signer, created bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("provenance: create key directory: %w", err)
	}
	keyPath, pubPath := filepath.Join(dir, KeyFile), filepath.Join(dir, PubFile)
	for range 2 { // a second pass only after losing a creation race
		priv, err := readSecretKey(keyPath)
		if err == nil {
			s, err := NewEd25519Signer(priv)
			if err != nil {
				return nil, false, err
			}
			return s, false, ensurePub(pubPath, priv.Public().(ed25519.PublicKey))
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, false, err
		}
		if _, err := readPublicKey(pubPath); err == nil {
			return nil, false, fmt.Errorf("provenance: %s exists but %s does not: restore the signing key (records it signed verify only with this %s), or move %s away to start a new generator key",
				pubPath, keyPath, PubFile, PubFile)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, false, err
		}
		priv, err = createSecretKey(keyPath)
		if errors.Is(err, fs.ErrExist) {
			continue // another process created it: use theirs
		}
		if err != nil {
			return nil, false, err
		}
		s, err := NewEd25519Signer(priv)
		if err != nil {
			return nil, false, err
		}
		return s, true, ensurePub(pubPath, priv.Public().(ed25519.PublicKey))
	}
	return nil, false, fmt.Errorf("provenance: %s keeps appearing and disappearing", keyPath)
}

// LoadLocalVerifier reads dir/generator.pub (only: it never touches
// generator.key), with the checks of LoadOrCreateLocalSigner.
func LoadLocalVerifier(dir string) (Verifier, error) {
	pub, err := readPublicKey(filepath.Join(dir, PubFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("provenance: no generator verification key: %w", err)
	}
	if err != nil {
		return nil, err
	}
	return NewEd25519Verifier(pub)
}

// FormatPublicKey is the line generator.pub holds for pub:
// "ethkeygen-generator-ed25519:<64 lowercase hex digits>".
func FormatPublicKey(pub ed25519.PublicKey) string { return publicPrefix + hex.EncodeToString(pub) }

func ensurePub(path string, pub ed25519.PublicKey) error {
	got, err := readPublicKey(path)
	if err == nil {
		if !bytes.Equal(got, pub) {
			return fmt.Errorf("provenance: %s holds %s, but the signing key beside it is %s: refusing a mismatched pair",
				path, FormatPublicKey(got), FormatPublicKey(pub))
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	content := "# ethkeygen generator verification key (public; the exporter needs only this file)\n" + FormatPublicKey(pub) + "\n"
	err = fsutil.WriteTrustedFile(path, []byte(content), 0o644)
	if errors.Is(err, fs.ErrExist) {
		return ensurePub(path, pub) // written meanwhile: check it
	}
	if err != nil {
		return fmt.Errorf("provenance: write %s: %w", PubFile, err)
	}
	return nil
}

// createSecretKey writes a new key to path; it appears whole or not at all.
func createSecretKey(path string) (ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("provenance: generate key: %w", err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# ethkeygen generator signing key (secret; keep it on the generating host, mode 0600)\n")
	fmt.Fprintf(&buf, "# created: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&buf, "# public key: %s\n", FormatPublicKey(pub))
	fmt.Fprintf(&buf, "%s%s\n", secretPrefix, hex.EncodeToString(priv.Seed()))
	err = fsutil.WriteTrustedFile(path, buf.Bytes(), 0o600)
	clear(buf.Bytes())
	if errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("provenance: write %s: %w", KeyFile, err)
	}
	return priv, nil
}

func readSecretKey(path string) (ed25519.PrivateKey, error) {
	line, err := readKeyLine(path, fsutil.Secret, secretPrefix)
	if err != nil {
		return nil, err
	}
	defer clear(line)
	seed := make([]byte, hex.DecodedLen(len(line)))
	defer clear(seed)
	// Never echo the line or hex's error (it quotes the bad byte).
	if n, err := hex.Decode(seed, line); err != nil || n != ed25519.SeedSize {
		return nil, fmt.Errorf("provenance: %s: the key line is not %s followed by %d hex digits", path, secretPrefix, 2*ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func readPublicKey(path string) (ed25519.PublicKey, error) {
	line, err := readKeyLine(path, fsutil.Public, publicPrefix)
	if err != nil {
		return nil, err
	}
	pub := make([]byte, hex.DecodedLen(len(line)))
	if n, err := hex.Decode(pub, line); err != nil || n != ed25519.PublicKeySize || strings.ToLower(string(line)) != string(line) {
		return nil, fmt.Errorf("provenance: %s: the key line is not %s followed by %d lowercase hex digits", path, publicPrefix, 2*ed25519.PublicKeySize)
	}
	return pub, nil
}

// readKeyLine returns what follows prefix on the one non-comment line of
// path. Errors never contain the line.
func readKeyLine(path string, kind fsutil.Kind, prefix string) ([]byte, error) {
	f, err := fsutil.OpenTrusted(path, kind)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("provenance: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	defer clear(data)
	if err != nil {
		return nil, fmt.Errorf("provenance: read %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("provenance: %s is larger than %d bytes", path, maxKeyFile)
	}
	var key []byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if key != nil {
			return nil, fmt.Errorf("provenance: %s holds more than one key line", path)
		}
		if !bytes.HasPrefix(line, []byte(prefix)) {
			return nil, fmt.Errorf("provenance: %s line %d does not start with %s", path, n, prefix)
		}
		key = bytes.Clone(line[len(prefix):])
	}
	if key == nil {
		return nil, fmt.Errorf("provenance: %s holds no key line", path)
	}
	return key, nil
}
