package ops_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/opscheck"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/ops"
)

// TestDecryptChainsafeExit: the oracle's hoodi exit file, encrypted by
// @chainsafe/bls-keystore as the ejector's encryptor does
// (testdata/chainsafe_encrypted_exit.json), opens with the password as its
// file holds it (newline and all) to the exit the oracle signed, which
// verifies; a wrong password is ErrWrongPassword.
func TestDecryptChainsafeExit(t *testing.T) {
	var v struct {
		Password      string `json:"password"`
		EncryptedFile string `json:"encrypted_file"`
	}
	readJSON(t, "testdata/chainsafe_encrypted_exit.json", &v)
	var x exitVector
	readJSON(t, "testdata/oracle_sister_hoodi_exit.json", &x)
	e, err := ops.DecryptExitFile([]byte(v.EncryptedFile), []byte(v.Password))
	if err != nil {
		t.Fatal(err)
	}
	if uint64(e.Message.ValidatorIndex) != x.ValidatorIndex || uint64(e.Message.Epoch) != x.Epoch || "0x"+hex.EncodeToString(e.Signature[:]) != x.Signature {
		t.Fatalf("decrypted exit %+v is not the oracle's", e)
	}
	pub, _ := hex.DecodeString(x.SigningPubkey[2:])
	if err := ops.VerifyExit(e, pub, depositdata.Hoodi); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.DecryptExitFile([]byte(v.EncryptedFile), []byte("not the password")); !errors.Is(err, keystore.ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
}

// TestEncryptExitFile: an exit we encrypt opens with DecryptExitFile; a
// scrypt container (which the ejector refuses) and a plaintext that is no
// exit are refused; the Node checker decrypts ours with
// @chainsafe/bls-keystore as the ejector reads it and verifies the exit,
// with the password file's trailing newline as the ejector passes it.
func TestEncryptExitFile(t *testing.T) {
	var x exitVector
	readJSON(t, "testdata/oracle_sister_hoodi_exit.json", &x)
	const password = "correct horse battery staple"
	enc, err := ops.EncryptExitFile(rand.Reader, []byte(x.EthstakerFile), []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	e, err := ops.DecryptExitFile(enc, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := ops.MarshalExitFile(e); string(b) != x.EthstakerFile {
		t.Fatalf("round trip: %s", b)
	}
	if _, err := ops.EncryptExitFile(rand.Reader, []byte(`{"not":"an exit"}`), []byte(password)); !errors.Is(err, ops.ErrInvalid) {
		t.Fatalf("encrypting a non-exit: %v", err)
	}
	ks, err := keystore.EncryptMessage(rand.Reader, []byte(x.EthstakerFile), []byte(password), keystore.WithKDF(keystore.Scrypt), keystore.WithInsecureCost(t, 16))
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := ks.Marshal()
	if _, err := ops.DecryptExitFile(sb, []byte(password)); !errors.Is(err, ops.ErrInvalid) {
		t.Fatalf("scrypt container: %v, want ErrInvalid", err)
	}
	pub, _ := hex.DecodeString(x.SigningPubkey[2:])
	item := opscheck.EncryptedExit(enc, password+"\n", pub, depositdata.Hoodi)
	opscheck.RequireValid(t, []opscheck.Item{item})
	res := opscheck.Check(t, []opscheck.Item{
		opscheck.EncryptedExit(enc, "wrong password\n", pub, depositdata.Hoodi),
		opscheck.EncryptedExit(sb, password, pub, depositdata.Hoodi),
	})
	for i, r := range res {
		if r.OK {
			t.Errorf("checker accepted bad encrypted exit %d", i)
		}
	}
	t.Logf("checker refusals: %q, %q", res[0].Error, res[1].Error)
}
