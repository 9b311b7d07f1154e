package custody

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
)

// fuzzSecretMnemonic is a public test mnemonic: the fuzz seeds are sealed
// documents for its first validator.
const fuzzSecretMnemonic = "test test test test test test test test test test test waste"

// fuzzSecretDocs builds valid documents (raw, raw with mnemonic, keystore
// with a cheap KDF and its password, with and without the raw key beside it) for validator 0 of fuzzSecretMnemonic,
// and returns them with the validator's pubkey.
func fuzzSecretDocs(tb testing.TB) (pubkey string, docs [][]byte) {
	m, err := keygen.ParseMnemonic(fuzzSecretMnemonic)
	if err != nil {
		tb.Fatal(err)
	}
	defer m.Destroy()
	seed := m.Seed("")
	defer seed.Destroy()
	sk, err := keygen.DeriveKey(seed, keygen.SigningPath(0))
	if err != nil {
		tb.Fatal(err)
	}
	defer sk.Destroy()
	pubkey = hex.EncodeToString(sk.PublicKey())
	password := []byte("fuzz-password-0123")
	ks, err := keystore.Encrypt(rand.Reader, sk.UnsafeBytes(), password, keystore.WithKDF(keystore.PBKDF2), keystore.WithInsecureCost(tb, 2))
	if err != nil {
		tb.Fatal(err)
	}
	ks.Pubkey, ks.Path = pubkey, keygen.SigningPath(0)
	ksJSON, err := ks.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	for _, d := range []secretDoc{
		{pubkey: pubkey, format: FormatRaw, key: sk.UnsafeBytes()},
		{pubkey: pubkey, format: FormatRaw, key: sk.UnsafeBytes(), mnemonic: []byte(fuzzSecretMnemonic)},
		{pubkey: pubkey, format: FormatKeystore, keystore: ksJSON, password: password},
		{pubkey: pubkey, format: FormatKeystore, keystore: ksJSON, password: password, mnemonic: []byte(fuzzSecretMnemonic)},
		{pubkey: pubkey, format: FormatKeystore, keystore: ksJSON, password: password, key: sk.UnsafeBytes()},
		{pubkey: pubkey, format: FormatKeystore, keystore: ksJSON, password: password, key: sk.UnsafeBytes(), mnemonic: []byte(fuzzSecretMnemonic)},
	} {
		docs = append(docs, d.marshal())
	}
	return pubkey, docs
}

// FuzzParseSecret: an opened document (as a compromised or buggy sealer
// could write it) never makes parseSecret panic; what it accepts holds a
// signing key of the record's pubkey; every refusal is ErrSecret, one line,
// and quotes no secret field of the input.
func FuzzParseSecret(f *testing.F) {
	pubkey, docs := fuzzSecretDocs(f)
	for _, d := range docs {
		f.Add(d)
	}
	f.Add([]byte(`{"version":1,"pubkey":"` + pubkey + `","format":"raw","index":0,"secret_key":"00"}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"pubkey":"` + pubkey + `","format":"pem"}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := parseSecret(context.Background(), doc, pubkey)
		if err != nil {
			if s != nil {
				t.Fatal("a secret and an error")
			}
			if !errors.Is(err, ErrSecret) {
				t.Fatalf("error %q is not ErrSecret", err)
			}
			oneLineError(t, err)
			if strings.Contains(err.Error(), "fuzz-password") {
				t.Fatalf("error quotes the password: %q", err)
			}
			return
		}
		defer s.Destroy()
		if s.Pubkey != pubkey || hex.EncodeToString(s.SigningKey().PublicKey()) != pubkey {
			t.Fatal("accepted a key of another pubkey")
		}
		if s.Format != FormatKeystore && s.Format != FormatRaw {
			t.Fatalf("format %q accepted", s.Format)
		}
		if s.Format == FormatKeystore && s.Keystore == nil {
			t.Fatal("keystore format without a keystore")
		}
	})
}
