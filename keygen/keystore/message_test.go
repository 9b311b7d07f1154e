package keystore_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/ethkeygen/ethkeygen/keygen/keystore"
)

// TestChainsafeMessageVector: a message sealed by @chainsafe/bls-keystore
// 3.1.0's create() as Lido's validator-ejector encryptor calls it
// (testdata/chainsafe_message.mjs made testdata/chainsafe_message.json)
// parses with ParseMessage and decrypts to the message; Parse refuses it
// (it is no key) and a wrong password is ErrWrongPassword.
func TestChainsafeMessageVector(t *testing.T) {
	b, err := os.ReadFile("testdata/chainsafe_message.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Password string          `json:"password"`
		Message  string          `json:"message"`
		Keystore json.RawMessage `json:"keystore"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	ks, err := keystore.ParseMessage(v.Keystore)
	if err != nil {
		t.Fatal(err)
	}
	if ks.KDF() != keystore.PBKDF2 || ks.Pubkey != "" || ks.Path != "" {
		t.Fatalf("vector: kdf %s pubkey %q path %q", ks.KDF(), ks.Pubkey, ks.Path)
	}
	got, err := ks.DecryptContext(t.Context(), []byte(v.Password))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Destroy()
	if string(got.UnsafeBytes()) != v.Message {
		t.Fatalf("decrypted %q, want %q", got.UnsafeBytes(), v.Message)
	}
	// EIP-2335's normalisation: a trailing newline (a control code) is
	// no part of the password, as in the ejector's password file.
	nl, err := ks.Decrypt([]byte(v.Password + "\n"))
	if err != nil {
		t.Fatalf("password with a trailing newline: %v", err)
	}
	nl.Destroy()
	if _, err := ks.Decrypt([]byte(v.Password + "x")); !errors.Is(err, keystore.ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := keystore.Parse(v.Keystore); !errors.Is(err, keystore.ErrFormat) {
		t.Fatalf("Parse of a message keystore: %v, want ErrFormat", err)
	}
}

// TestEncryptMessage: EncryptMessage writes @chainsafe/bls-keystore's
// defaults (pbkdf2 c=262144, empty pubkey and path, version 4) and its
// output reads back; sizes out of range are refused.
func TestEncryptMessage(t *testing.T) {
	msg := []byte(`{"message": {"epoch": "1", "validator_index": "7"}, "signature": "0x00"}`)
	ks, err := keystore.EncryptMessage(rand.Reader, msg, []byte("a long enough password"), keystore.WithInsecureCost(t, 16))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ks.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Pubkey  string `json:"pubkey"`
		Path    string `json:"path"`
		Version int    `json:"version"`
		Crypto  struct {
			KDF struct {
				Function string         `json:"function"`
				Params   map[string]any `json:"params"`
			} `json:"kdf"`
		} `json:"crypto"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if f.Pubkey != "" || f.Path != "" || f.Version != 4 || f.Crypto.KDF.Function != "pbkdf2" || f.Crypto.KDF.Params["prf"] != "hmac-sha256" {
		t.Fatalf("encrypted message: %s", b)
	}
	back, err := keystore.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := back.Decrypt([]byte("a long enough password"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pt.UnsafeBytes(), msg) {
		t.Fatalf("round trip: %q", pt.UnsafeBytes())
	}
	pt.Destroy()
	def, err := keystore.EncryptMessage(rand.Reader, msg, []byte("a long enough password"))
	if err != nil {
		t.Fatal(err)
	}
	if p := string(def.Crypto.KDF.Params); !bytes.Contains([]byte(p), []byte(`"c":262144`)) {
		t.Fatalf("default kdf params %s, want c=262144 (bls-keystore's create)", p)
	}
	for _, n := range []int{0, keystore.MaxMessageSize + 1} {
		if _, err := keystore.EncryptMessage(rand.Reader, make([]byte, n), []byte("a long enough password"), keystore.WithInsecureCost(t, 16)); err == nil {
			t.Errorf("EncryptMessage of %d bytes accepted", n)
		}
	}
}
