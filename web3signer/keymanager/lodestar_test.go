package keymanager_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/web3signer"
	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

// These tests run against Lodestar's validator client (v1.5.1 under
// `lodestar dev`, started by make test), a real implementation of the
// Keymanager API.

// genesisRoot asks the dev chain's beacon node for its genesis validators
// root: the interchange must name that network.
func genesisRoot(t *testing.T, beaconURL string) string {
	t.Helper()
	resp, err := http.Get(beaconURL + "/eth/v1/beacon/genesis")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Data struct {
			GenesisValidatorsRoot string `json:"genesis_validators_root"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || len(doc.Data.GenesisValidatorsRoot) != 66 {
		t.Fatalf("genesis: %v %+v", err, doc)
	}
	return doc.Data.GenesisValidatorsRoot
}

type newKey struct {
	pubkey string
	ks     keymanager.Keystore
}

// freshKey is a random key in a keystore that opens quickly (pbkdf2,
// lowest cost the test option allows), so the server's import is fast.
func freshKey(t *testing.T) newKey {
	t.Helper()
	for {
		raw := make([]byte, 32)
		rand.Read(raw)
		raw[0] &= 0x3f
		sk, err := keygen.SecretKeyFromBytes(raw)
		if err != nil {
			continue
		}
		pw, _ := keystore.RandomPassword(rand.Reader)
		ks, err := keystore.Encrypt(rand.Reader, raw, pw.UnsafeBytes(), keystore.WithPubkey(sk.PublicKey()),
			keystore.WithKDF(keystore.PBKDF2), keystore.WithInsecureCost(t, 2))
		if err != nil {
			t.Fatal(err)
		}
		js, _ := ks.Marshal()
		return newKey{pubkey: hex.EncodeToString(sk.PublicKey()), ks: keymanager.Keystore{JSON: js, Password: pw.UnsafeBytes()}}
	}
}

func lodestarClient(t *testing.T) (*keymanager.Client, testenv.Keymanager) {
	t.Helper()
	km := testenv.KeymanagerAPI(t)
	tok, err := keymanager.ReadTokenFile(km.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := keymanager.New(km.URL, tok, keymanager.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, km
}

func listed(t *testing.T, c *keymanager.Client, pubkey string) bool {
	t.Helper()
	keys, err := c.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Pubkey == pubkey {
			return true
		}
	}
	return false
}

// TestLodestarImportDuplicateDelete: a fresh key imports ("imported"), is
// listed, a repeat answers "duplicate", and DELETE answers "deleted" with
// an interchange for the dev chain's root that holds the key; a second
// DELETE no longer finds it active.
func TestLodestarImportDuplicateDelete(t *testing.T) {
	c, km := lodestarClient(t)
	root := genesisRoot(t, km.BeaconURL)
	a, b := freshKey(t), freshKey(t)
	ic, err := web3signer.EmptyInterchange(root, []string{a.pubkey, b.pubkey})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Import(t.Context(), []keymanager.Keystore{a.ks, b.ks}, ic)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Status != keymanager.Imported || res[1].Status != keymanager.Imported {
		t.Fatalf("import: %+v", res)
	}
	if !listed(t, c, a.pubkey) || !listed(t, c, b.pubkey) {
		t.Fatal("imported keys are not listed")
	}
	res, err = c.Import(t.Context(), []keymanager.Keystore{a.ks}, ic)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != keymanager.Duplicate {
		t.Fatalf("repeat import: %+v", res)
	}

	del, got, err := c.Delete(t.Context(), []string{a.pubkey, "0x" + b.pubkey})
	if err != nil {
		t.Fatal(err)
	}
	if len(del) != 2 || del[0].Status != keymanager.Deleted || del[1].Status != keymanager.Deleted {
		t.Fatalf("delete: %+v", del)
	}
	var doc web3signer.Interchange
	if err := json.Unmarshal(got, &doc); err != nil {
		t.Fatalf("interchange %s: %v", got, err)
	}
	if doc.Metadata.InterchangeFormatVersion != "5" || doc.Metadata.GenesisValidatorsRoot != root {
		t.Fatalf("interchange metadata %+v", doc.Metadata)
	}
	seen := map[string]bool{}
	for _, d := range doc.Data {
		seen[strings.TrimPrefix(d.Pubkey, "0x")] = true
	}
	if !seen[a.pubkey] || !seen[b.pubkey] {
		t.Fatalf("the returned interchange misses a deleted key: %s", got)
	}
	if listed(t, c, a.pubkey) {
		t.Fatal("deleted key still listed")
	}
	del, _, err = c.Delete(t.Context(), []string{a.pubkey})
	if err != nil {
		t.Fatal(err)
	}
	if del[0].Status == keymanager.Deleted {
		t.Fatalf("second delete: %+v", del)
	}
}

// TestLodestarRefusesWrongRoot: an interchange for another network
// (mainnet's root) is refused whole: Lodestar answers 500
// ERR_INTERCHANGE_GENESIS_VALIDATOR_MISMATCH and loads nothing.
func TestLodestarRefusesWrongRoot(t *testing.T) {
	c, _ := lodestarClient(t)
	a := freshKey(t)
	const mainnet = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"
	ic, _ := web3signer.EmptyInterchange(mainnet, []string{a.pubkey})
	_, err := c.Import(t.Context(), []keymanager.Keystore{a.ks}, ic)
	if !errors.Is(err, keymanager.ErrServer) || !strings.Contains(err.Error(), "GENESIS_VALIDATOR") {
		t.Fatalf("got %v", err)
	}
	if listed(t, c, a.pubkey) {
		t.Fatal("key loaded despite the refused interchange")
	}
}

// TestLodestarPerKeyError: a keystore whose password is wrong gets the
// per-key status "error"; the other key of the request is imported.
func TestLodestarPerKeyError(t *testing.T) {
	c, km := lodestarClient(t)
	root := genesisRoot(t, km.BeaconURL)
	a, b := freshKey(t), freshKey(t)
	bad := a.ks
	bad.Password = b.ks.Password
	ic, _ := web3signer.EmptyInterchange(root, []string{a.pubkey, b.pubkey})
	res, err := c.Import(t.Context(), []keymanager.Keystore{bad, b.ks}, ic)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != keymanager.Failed || res[1].Status != keymanager.Imported {
		t.Fatalf("got %+v", res)
	}
	if strings.Contains(res[0].Message, string(b.ks.Password)) {
		t.Fatal("the server's message quotes the password")
	}
	if listed(t, c, a.pubkey) || !listed(t, c, b.pubkey) {
		t.Fatal("wrong keys listed")
	}
	if _, _, err := c.Delete(t.Context(), []string{b.pubkey}); err != nil {
		t.Fatal(err)
	}
}

// TestLodestarWrongToken: a wrong token is 401, one line, token not quoted.
func TestLodestarWrongToken(t *testing.T) {
	km := testenv.KeymanagerAPI(t)
	c, err := keymanager.New(km.URL, token(t, "0123456789abcdef-not-the-token"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.List(t.Context())
	if !errors.Is(err, keymanager.ErrUnauthorized) || strings.Contains(err.Error(), "not-the-token") {
		t.Fatalf("got %v", err)
	}
}
