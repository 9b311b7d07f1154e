package web3signer

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
)

// Errors. Test for them with errors.Is.
var (
	// ErrNotEmpty reports a key directory that already has entries, given
	// without AllowNonEmpty.
	ErrNotEmpty = errors.New("web3signer: key directory is not empty")
	// ErrKey reports a Key that cannot be written: a malformed or repeated
	// pubkey, no key material, or material for another pubkey.
	ErrKey = errors.New("web3signer: invalid key")
	// ErrExists reports a file that WriteKeyDir would have to replace.
	ErrExists = errors.New("web3signer: file already exists")
)

// Key is one validator key to hand to Web3Signer.
//
// Give SecretKey (the opened key; a Keystore given with it only serves to
// check its pubkey): WriteKeyDir encrypts it into a hand-off keystore
// (keystore.WithHandoffKDF: pbkdf2 with c=1, since the password file lies
// beside it) under a fresh random password, or, with RawConfigs, writes a
// file-raw config. Or give Keystore with its Password and no SecretKey (a
// keystore made elsewhere, say by HandoffKeystore or PrepareHandoffs): it
// is written as given, and no KDF runs.
//
// WriteKeyDir neither retains nor clears Password or SecretKey.
type Key struct {
	Pubkey    string             // 48-byte BLS public key, hex, "0x" optional
	Keystore  *keystore.Keystore // EIP-2335 keystore of the key, or nil
	Password  []byte             // the keystore's password
	SecretKey *keygen.SecretKey  // the key itself, or nil
	Path      string             // EIP-2334 path of the key, written into a keystore made from SecretKey
}

// Option configures WriteKeyDir.
type Option interface{ apply(*options) error }

type options struct {
	allowNonEmpty bool
	raw           bool
	verify        bool
	ksOpts        []keystore.Option
	random        io.Reader
}

type optionFunc func(*options) error

func (f optionFunc) apply(o *options) error { return f(o) }

// AllowNonEmpty lets WriteKeyDir write into a directory that already has
// entries. Existing files are still never replaced.
func AllowNonEmpty() Option {
	return optionFunc(func(o *options) error { o.allowNonEmpty = true; return nil })
}

// RawConfigs writes keys given only as SecretKey as Web3Signer "file-raw"
// configs (the private key in hex in the YAML file) instead of encrypting
// them into a new keystore. This is weaker: anyone who can read the
// directory reads the key with no KDF in between. Use it only for an
// in-memory directory inside protected compute, where it saves one KDF run
// per key at write and at Web3Signer's load.
func RawConfigs() Option {
	return optionFunc(func(o *options) error { o.raw = true; return nil })
}

// VerifyKeystores decrypts every given keystore with its password (one KDF
// run per key) and checks that the key derives the pubkey before anything
// is written. Without it, WriteKeyDir checks only the keystore's pubkey
// field (and the SecretKey, when given), which suffices when the keystore
// was just verified by whoever opened it, as custody.Opener does.
func VerifyKeystores() Option {
	return optionFunc(func(o *options) error { o.verify = true; return nil })
}

// WithKeystoreOptions passes options to keystore.Encrypt for the keystores
// WriteKeyDir creates from a SecretKey, instead of the hand-off KDF (for
// example keystore.WithKDF(keystore.Scrypt), for a directory whose
// password files are kept elsewhere).
func WithKeystoreOptions(opts ...keystore.Option) Option {
	return optionFunc(func(o *options) error { o.ksOpts = append(o.ksOpts, opts...); return nil })
}

// File-name suffixes of the files written per key, after the pubkey as
// 0x and 96 lowercase hex: Web3Signer's own naming when it writes a key
// directory (Consensys/web3signer, signing/.../KeystoreFileManager.java:
// METADATA_YAML_EXTENSION, KEYSTORE_JSON_EXTENSION,
// KEYSTORE_PASSWORD_EXTENSION, after the signer's identifier).
const (
	KeystoreSuffix = ".json"
	PasswordSuffix = ".password"
	ConfigSuffix   = ".yaml"
)

// FilePerm and DirPerm are the modes of what WriteKeyDir creates.
const (
	FilePerm os.FileMode = 0o600
	DirPerm  os.FileMode = 0o700
)

// NormalizePubkey returns pubkey as 96 lowercase hex characters without
// "0x", or an error wrapping ErrKey.
func NormalizePubkey(pubkey string) (string, error) {
	p := pubkey
	if len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') {
		p = p[2:]
	}
	p = strings.ToLower(p)
	if b, err := hex.DecodeString(p); err != nil || len(b) != 48 {
		return "", fmt.Errorf("%w: pubkey %q is not 48 bytes of hex", ErrKey, pubkey)
	}
	return p, nil
}

// file is one file to write; secret data is wiped after writing.
type file struct {
	name   string
	data   []byte
	secret bool
}

// WriteKeyDir writes a Web3Signer key directory for keys into dir, creating
// dir (mode 0700) if it does not exist. See the package documentation for
// the layout. It refuses a dir that has entries unless AllowNonEmpty is
// given, never replaces a file, and on failure removes everything it wrote.
func WriteKeyDir(dir string, keys []Key, opts ...Option) (err error) {
	o := options{random: rand.Reader}
	for _, opt := range opts {
		if err := opt.apply(&o); err != nil {
			return err
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("web3signer: key directory: %w", err)
	}

	// Check and prepare everything in memory before touching the disk.
	var files []file
	defer func() {
		for _, f := range files {
			if f.secret {
				keygen.Wipe(f.data)
			}
		}
	}()
	seen := make(map[string]bool, len(keys))
	for i := range keys {
		fs, err := prepare(&keys[i], &o)
		if err != nil {
			return err
		}
		base := fs[0].name[:len(fs[0].name)-len(filepath.Ext(fs[0].name))]
		if seen[base] {
			return fmt.Errorf("%w: pubkey %s appears twice", ErrKey, base)
		}
		seen[base] = true
		files = append(files, fs...)
	}

	created, err := prepareDir(abs, o.allowNonEmpty)
	if err != nil {
		return err
	}
	var batch fsutil.Batch
	defer func() {
		if err != nil {
			batch.Rollback()
			if created {
				_ = os.Remove(abs)
			}
		}
	}()
	all := make([]fsutil.File, len(files))
	for i, f := range files {
		all[i] = fsutil.File{Name: f.name, Data: f.data}
	}
	if werr := batch.WriteAll(abs, all, FilePerm); werr != nil {
		var ee *fsutil.ExistsError
		if errors.As(werr, &ee) {
			return fmt.Errorf("%w: %s", ErrExists, ee.Path)
		}
		return fmt.Errorf("web3signer: writing the key directory: %w", werr)
	}
	batch.Commit()
	return nil
}

// prepareDir creates dir or checks it, and makes it 0700. It reports whether
// it created dir.
// CheckDir reports, without changing anything, whether WriteKeyDir would
// accept dir: missing (it will be created), or a directory that is empty
// (or any directory, with allowNonEmpty). Callers use it to fail early,
// before work that a refused directory would waste.
func CheckDir(dir string, allowNonEmpty bool) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("web3signer: key directory: %w", err)
	}
	exists, err := checkDirTrust(abs)
	switch {
	case err != nil:
		return err
	case !exists, allowNonEmpty:
		return nil
	}
	return checkEmpty(abs)
}

// checkDirTrust refuses a key directory path that is not UTF-8 (a config
// naming it would name a file that does not exist), that is a symlink,
// that another user owns or that group or others can write, or whose
// parent directory another user owns or group or others can write (they
// could swap the directory while it is written). It reports whether dir
// exists (as a directory).
func checkDirTrust(dir string) (exists bool, err error) {
	if err := fsutil.CheckUTF8Path(dir); err != nil {
		return false, fmt.Errorf("web3signer: key directory %w", err)
	}
	if err := fsutil.CheckTrustedParent(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("web3signer: key directory: %w", err)
	}
	err = fsutil.CheckTrustedDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("web3signer: key directory: %w", err)
	}
	return true, nil
}

func checkEmpty(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("web3signer: key directory: %w", err)
	}
	names, err := f.Readdirnames(1)
	f.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("web3signer: key directory: %w", err)
	}
	if len(names) > 0 {
		return fmt.Errorf("%w: %s", ErrNotEmpty, dir)
	}
	return nil
}

func prepareDir(dir string, allowNonEmpty bool) (created bool, err error) {
	exists, err := checkDirTrust(dir)
	if err != nil {
		return false, err
	}
	if !exists {
		if err := os.MkdirAll(filepath.Dir(dir), DirPerm); err != nil {
			return false, fmt.Errorf("web3signer: key directory: %w", err)
		}
		if err := os.Mkdir(dir, DirPerm); err != nil {
			return false, fmt.Errorf("web3signer: key directory: %w", err)
		}
		return true, nil
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return false, fmt.Errorf("web3signer: key directory: %w", err)
	}
	if !allowNonEmpty {
		if err := checkEmpty(dir); err != nil {
			return false, err
		}
	}
	if st.Mode().Perm() != DirPerm {
		if err := os.Chmod(dir, DirPerm); err != nil {
			return false, fmt.Errorf("web3signer: key directory: %w", err)
		}
	}
	return false, nil
}

// prepare checks k and returns its files, the first being its config.
func prepare(k *Key, o *options) ([]file, error) {
	pk, err := NormalizePubkey(k.Pubkey)
	if err != nil {
		return nil, err
	}
	base := "0x" + pk
	if k.SecretKey != nil && hex.EncodeToString(k.SecretKey.PublicKey()) != pk {
		return nil, fmt.Errorf("%w: the secret key of %s derives another pubkey", ErrKey, base)
	}
	ks, password := k.Keystore, k.Password
	if ks != nil && k.SecretKey != nil && ks.Pubkey != "" && strings.ToLower(ks.Pubkey) != pk {
		return nil, fmt.Errorf("%w: the keystore given for %s names another pubkey", ErrKey, base)
	}
	switch {
	case k.SecretKey != nil && o.raw:
		return []file{{name: base + ConfigSuffix, data: rawConfig(k.SecretKey.UnsafeBytes()), secret: true}}, nil
	case k.SecretKey != nil:
		pkBytes, _ := hex.DecodeString(pk)
		if o.ksOpts == nil {
			h, err := newHandoff(o.random, k.SecretKey, pkBytes, pathFor(k))
			if err != nil {
				return nil, err
			}
			defer h.Destroy()
			return keystoreFiles(base, h.Keystore, h.Password.UnsafeBytes())
		}
		pw, err := keystore.RandomPassword(o.random)
		if err != nil {
			return nil, fmt.Errorf("web3signer: %w", err)
		}
		defer pw.Destroy()
		ksOpts := append([]keystore.Option{keystore.WithPubkey(pkBytes), keystore.WithPath(pathFor(k))}, o.ksOpts...)
		nks, err := keystore.Encrypt(o.random, k.SecretKey.UnsafeBytes(), pw.UnsafeBytes(), ksOpts...)
		if err != nil {
			return nil, fmt.Errorf("web3signer: encrypting a keystore for %s: %w", base, err)
		}
		return keystoreFiles(base, nks, pw.UnsafeBytes())
	case ks != nil:
		switch {
		case ks.Pubkey != "":
			if strings.ToLower(ks.Pubkey) != pk {
				return nil, fmt.Errorf("%w: the keystore given for %s names another pubkey", ErrKey, base)
			}
		case k.SecretKey == nil && !o.verify:
			return nil, fmt.Errorf("%w: the keystore given for %s names no pubkey (give SecretKey or VerifyKeystores)", ErrKey, base)
		}
		if len(password) == 0 {
			return nil, fmt.Errorf("%w: no password for the keystore of %s", ErrKey, base)
		}
		if o.verify {
			sk, err := ks.DecryptKey(password)
			if err != nil {
				return nil, fmt.Errorf("%w: the keystore of %s does not open with its password", ErrKey, base)
			}
			got := hex.EncodeToString(sk.PublicKey())
			sk.Destroy()
			if got != pk {
				return nil, fmt.Errorf("%w: the keystore of %s holds the key of another pubkey", ErrKey, base)
			}
		}
		return keystoreFiles(base, ks, password)
	default:
		return nil, fmt.Errorf("%w: no keystore and no secret key for %s", ErrKey, base)
	}
}

// pathFor is the EIP-2334 path of a key: the one given, else its keystore's.
func pathFor(k *Key) string {
	if k.Path != "" || k.Keystore == nil {
		return k.Path
	}
	return k.Keystore.Path
}

func keystoreFiles(base string, ks *keystore.Keystore, password []byte) ([]file, error) {
	js, err := ks.Marshal()
	if err != nil {
		return nil, fmt.Errorf("web3signer: encoding the keystore of %s: %w", base, err)
	}
	return []file{
		{name: base + ConfigSuffix, data: keystoreConfig(base+KeystoreSuffix, base+PasswordSuffix)},
		{name: base + KeystoreSuffix, data: js},
		{name: base + PasswordSuffix, data: append([]byte(nil), password...), secret: true},
	}, nil
}

// keystoreConfig is a Web3Signer signing-key configuration file of type
// file-keystore. Its paths are file names relative to the directory, which
// Web3Signer resolves against --key-store-path (Consensys/web3signer,
// signing/.../config/metadata/AbstractArtifactSignerFactory.java
// makeRelativePathAbsolute: configsDirectory.resolve(path), used by
// BlsArtifactSignerFactory.createKeystoreArtifact for keystoreFile and
// keystorePasswordFile), so the directory can be moved or mounted
// elsewhere. Strings are written as JSON strings, which are valid YAML
// double-quoted scalars.
func keystoreConfig(ksPath, pwPath string) []byte {
	var b []byte
	b = append(b, "type: \"file-keystore\"\nkeyType: \"BLS\"\nkeystoreFile: "...)
	b = appendQuoted(b, ksPath)
	b = append(b, "\nkeystorePasswordFile: "...)
	b = appendQuoted(b, pwPath)
	return append(b, '\n')
}

// rawConfig is a file-raw configuration holding the key in hex. The caller
// wipes the result.
func rawConfig(secret []byte) []byte {
	b := make([]byte, 0, 128)
	b = append(b, "type: \"file-raw\"\nkeyType: \"BLS\"\nprivateKey: \"0x"...)
	b = hex.AppendEncode(b, secret)
	return append(b, "\"\n"...)
}

func appendQuoted(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}
