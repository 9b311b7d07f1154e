package web3signer_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	e2types "github.com/wealdtech/go-eth2-types/v2"
	keystorev4 "github.com/wealdtech/go-eth2-wallet-encryptor-keystorev4"
	"gopkg.in/yaml.v3"

	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/web3signer"
)

type testKey struct {
	sk       *keygen.SecretKey
	pubkey   string
	ks       *keystore.Keystore
	password []byte
}

func newKey(t *testing.T, withKeystore bool) testKey {
	t.Helper()
	for {
		raw := make([]byte, 32)
		rand.Read(raw)
		raw[0] &= 0x3f // below the group order
		sk, err := keygen.SecretKeyFromBytes(raw)
		if err != nil {
			continue
		}
		k := testKey{sk: sk, pubkey: hex.EncodeToString(sk.PublicKey())}
		if withKeystore {
			pw, err := keystore.RandomPassword(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			k.password = pw.UnsafeBytes()
			k.ks, err = keystore.Encrypt(rand.Reader, raw, k.password, keystore.WithPubkey(sk.PublicKey()), keystore.WithInsecureCost(t, 1024))
			if err != nil {
				t.Fatal(err)
			}
		}
		return k
	}
}

// config is a Web3Signer signing-key configuration file.
type config struct {
	Type                 string `yaml:"type"`
	KeyType              string `yaml:"keyType"`
	KeystoreFile         string `yaml:"keystoreFile"`
	KeystorePasswordFile string `yaml:"keystorePasswordFile"`
	PrivateKey           string `yaml:"privateKey"`
}

func readConfig(t *testing.T, path string) config {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// checkKeyDir verifies a key directory independently of this module's
// keystore code: every config is file-keystore with relative paths, every
// keystore opens with keystorev4 under its password file, and the key
// derives the pubkey in the file name. It returns the pubkeys found.
func checkKeyDir(t *testing.T, dir string) map[string]bool {
	t.Helper()
	if err := e2types.InitBLS(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", st.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 || !info.Mode().IsRegular() {
			t.Errorf("%s: mode %v, want regular 0600", e.Name(), info.Mode())
		}
		if !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		pk := strings.TrimSuffix(strings.TrimPrefix(e.Name(), "0x"), ".yaml")
		c := readConfig(t, filepath.Join(dir, e.Name()))
		if c.KeyType != "BLS" {
			t.Errorf("%s: keyType %q", e.Name(), c.KeyType)
		}
		var secret []byte
		switch c.Type {
		case "file-keystore":
			// Relative file names with Web3Signer's naming
			// (KeystoreFileManager: <identifier>.json/.password)...
			if c.KeystoreFile != "0x"+pk+".json" || c.KeystorePasswordFile != "0x"+pk+".password" {
				t.Errorf("%s: paths %q %q", e.Name(), c.KeystoreFile, c.KeystorePasswordFile)
			}
			// ...resolved as Web3Signer does, against --key-store-path
			// (AbstractArtifactSignerFactory.makeRelativePathAbsolute).
			resolve := func(p string) string {
				if filepath.IsAbs(p) {
					return p
				}
				return filepath.Join(dir, p)
			}
			ksJSON, err := os.ReadFile(resolve(c.KeystoreFile))
			if err != nil {
				t.Fatal(err)
			}
			password, err := os.ReadFile(resolve(c.KeystorePasswordFile))
			if err != nil {
				t.Fatal(err)
			}
			// Web3Signer reads the password's first line and refuses a
			// blank one (AbstractArtifactSignerFactory.loadPassword).
			if len(password) == 0 || bytes.ContainsAny(password, "\r\n") {
				t.Errorf("%s: password file is empty or holds a line break", e.Name())
			}
			var doc struct {
				Crypto map[string]any `json:"crypto"`
				Pubkey string         `json:"pubkey"`
			}
			if err := json.Unmarshal(ksJSON, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Pubkey != pk {
				t.Errorf("%s: keystore pubkey %s", e.Name(), doc.Pubkey)
			}
			secret, err = keystorev4.New().Decrypt(doc.Crypto, string(password))
			if err != nil {
				t.Fatalf("%s: keystorev4: %v", e.Name(), err)
			}
		case "file-raw":
			secret, err = hex.DecodeString(strings.TrimPrefix(c.PrivateKey, "0x"))
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: type %q", e.Name(), c.Type)
		}
		sk, err := e2types.BLSPrivateKeyFromBytes(secret)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(sk.PublicKey().Marshal()); got != pk {
			t.Errorf("%s: key derives %s", e.Name(), got)
		}
		found[pk] = true
	}
	return found
}

func TestWriteKeyDir(t *testing.T) {
	a, b := newKey(t, true), newKey(t, true)
	c := newKey(t, false) // raw secret: gets a fresh keystore
	dir := filepath.Join(t.TempDir(), "keys")
	keys := []web3signer.Key{
		{Pubkey: a.pubkey, Keystore: a.ks, Password: a.password},
		{Pubkey: "0x" + strings.ToUpper(b.pubkey), Keystore: b.ks, Password: b.password, SecretKey: b.sk},
		{Pubkey: c.pubkey, SecretKey: c.sk},
	}
	if err := web3signer.WriteKeyDir(dir, keys); err != nil {
		t.Fatal(err)
	}
	found := checkKeyDir(t, dir)
	for _, k := range []testKey{a, b, c} {
		if !found[k.pubkey] {
			t.Errorf("key %s missing", k.pubkey[:8])
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 9 {
		t.Errorf("%d entries, want 9", len(entries))
	}
	pw, _ := os.ReadFile(filepath.Join(dir, "0x"+a.pubkey+".password"))
	if !bytes.Equal(pw, a.password) {
		t.Error("password file differs from the keystore's password")
	}
	// Our own keystore code agrees.
	ksJSON, _ := os.ReadFile(filepath.Join(dir, "0x"+c.pubkey+".json"))
	ks, err := keystore.Parse(ksJSON)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ = os.ReadFile(filepath.Join(dir, "0x"+c.pubkey+".password"))
	if len(pw) != keystore.RandomPasswordLength {
		t.Errorf("generated password has %d characters", len(pw))
	}
	sk, err := ks.DecryptKey(pw)
	if err != nil {
		t.Fatal(err)
	}
	sk.Destroy()
}

func TestWriteKeyDirRaw(t *testing.T) {
	a, c := newKey(t, true), newKey(t, false)
	dir := t.TempDir()
	keys := []web3signer.Key{
		{Pubkey: a.pubkey, Keystore: a.ks, Password: a.password},
		{Pubkey: c.pubkey, SecretKey: c.sk},
	}
	if err := web3signer.WriteKeyDir(dir, keys, web3signer.RawConfigs()); err != nil {
		t.Fatal(err)
	}
	if found := checkKeyDir(t, dir); len(found) != 2 {
		t.Fatalf("found %d keys", len(found))
	}
	if cfg := readConfig(t, filepath.Join(dir, "0x"+c.pubkey+".yaml")); cfg.Type != "file-raw" {
		t.Fatalf("type %q", cfg.Type)
	}
	if _, err := os.Stat(filepath.Join(dir, "0x"+c.pubkey+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a raw key got a keystore file")
	}
}

func TestWriteKeyDirExistingDir(t *testing.T) {
	a := newKey(t, true)
	keys := []web3signer.Key{{Pubkey: a.pubkey, Keystore: a.ks, Password: a.password}}

	t.Run("empty dir is tightened to 0700", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := web3signer.WriteKeyDir(dir, keys); err != nil {
			t.Fatal(err)
		}
		checkKeyDir(t, dir)
	})
	t.Run("non-empty dir is refused", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := web3signer.WriteKeyDir(dir, keys)
		if !errors.Is(err, web3signer.ErrNotEmpty) {
			t.Fatalf("got %v, want ErrNotEmpty", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("%d entries after refusal", len(entries))
		}
	})
	t.Run("AllowNonEmpty", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := web3signer.WriteKeyDir(dir, keys, web3signer.AllowNonEmpty()); err != nil {
			t.Fatal(err)
		}
		// A second write of the same key never replaces a file, and
		// removes nothing it did not write.
		err := web3signer.WriteKeyDir(dir, keys, web3signer.AllowNonEmpty())
		if !errors.Is(err, web3signer.ErrExists) {
			t.Fatalf("got %v, want ErrExists", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 4 {
			t.Fatalf("%d entries, want 4", len(entries))
		}
		checkKeyDir(t, dir)
	})
	t.Run("file in the way", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "f")
		os.WriteFile(f, nil, 0o600)
		if err := web3signer.WriteKeyDir(f, keys); err == nil {
			t.Fatal("wrote into a file")
		}
	})
}

func TestWriteKeyDirAllOrNothing(t *testing.T) {
	a, b := newKey(t, true), newKey(t, true)
	base := t.TempDir()
	dir := filepath.Join(base, "keys")
	// A file named like b's password file, with AllowNonEmpty, makes the
	// second key fail after the first was written.
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(dir, "0x"+b.pubkey+".password")
	if err := os.WriteFile(blocker, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := []web3signer.Key{
		{Pubkey: a.pubkey, Keystore: a.ks, Password: a.password},
		{Pubkey: b.pubkey, Keystore: b.ks, Password: b.password},
	}
	err := web3signer.WriteKeyDir(dir, keys, web3signer.AllowNonEmpty())
	if !errors.Is(err, web3signer.ErrExists) {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), string(b.password)) {
		t.Fatal("error names the password")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d entries left, want only the blocker", len(entries))
	}
	if got, _ := os.ReadFile(blocker); string(got) != "keep" {
		t.Fatal("the existing file was changed")
	}

	// A directory WriteKeyDir created is removed on failure.
	dir2 := filepath.Join(base, "new")
	bad := []web3signer.Key{
		{Pubkey: a.pubkey, Keystore: a.ks, Password: a.password},
		{Pubkey: a.pubkey, Keystore: a.ks, Password: a.password},
	}
	if err := web3signer.WriteKeyDir(dir2, bad); !errors.Is(err, web3signer.ErrKey) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := os.Stat(dir2); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("directory left behind")
	}
}

func TestWriteKeyDirBadKeys(t *testing.T) {
	a, b := newKey(t, true), newKey(t, true)
	noPub := *a.ks
	noPub.Pubkey = ""
	cases := map[string]web3signer.Key{
		"bad pubkey":                {Pubkey: "0x1234", Keystore: a.ks, Password: a.password},
		"no material":               {Pubkey: a.pubkey},
		"keystore of another key":   {Pubkey: b.pubkey, Keystore: a.ks, Password: a.password},
		"secret key of another key": {Pubkey: b.pubkey, SecretKey: a.sk},
		"no password":               {Pubkey: a.pubkey, Keystore: a.ks},
		"keystore names no pubkey":  {Pubkey: a.pubkey, Keystore: &noPub, Password: a.password},
	}
	for name, k := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "k")
			err := web3signer.WriteKeyDir(dir, []web3signer.Key{k})
			if !errors.Is(err, web3signer.ErrKey) {
				t.Fatalf("got %v, want ErrKey", err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("directory created for a refused key")
			}
		})
	}
	t.Run("VerifyKeystores catches a wrong password", func(t *testing.T) {
		k := web3signer.Key{Pubkey: a.pubkey, Keystore: a.ks, Password: b.password}
		if err := web3signer.WriteKeyDir(t.TempDir(), []web3signer.Key{k}, web3signer.VerifyKeystores()); !errors.Is(err, web3signer.ErrKey) {
			t.Fatalf("got %v", err)
		}
		k = web3signer.Key{Pubkey: a.pubkey, Keystore: &noPub, Password: a.password}
		if err := web3signer.WriteKeyDir(t.TempDir(), []web3signer.Key{k}, web3signer.VerifyKeystores()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestEmptyInterchange(t *testing.T) {
	const root = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"
	a, b := newKey(t, false), newKey(t, false)
	got, err := web3signer.EmptyInterchange(root, []string{a.pubkey, "0x" + b.pubkey})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + root + `"},"data":[` +
		`{"pubkey":"0x` + a.pubkey + `","signed_blocks":[],"signed_attestations":[]},` +
		`{"pubkey":"0x` + b.pubkey + `","signed_blocks":[],"signed_attestations":[]}]}` + "\n"
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	empty, err := web3signer.EmptyInterchange(root[2:], nil)
	if err != nil || !strings.Contains(string(empty), `"data":[]`) {
		t.Fatalf("no keys: %s %v", empty, err)
	}
	for name, args := range map[string]struct {
		root string
		pks  []string
	}{
		"short root":    {"0x1234", []string{a.pubkey}},
		"bad pubkey":    {root, []string{"zz"}},
		"duplicate key": {root, []string{a.pubkey, "0x" + a.pubkey}},
	} {
		if _, err := web3signer.EmptyInterchange(args.root, args.pks); !errors.Is(err, web3signer.ErrInterchange) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}
