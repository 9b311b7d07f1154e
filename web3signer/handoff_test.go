package web3signer_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	keystorev4 "github.com/wealdtech/go-eth2-wallet-encryptor-keystorev4"

	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/web3signer"
	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

// kdfOf returns the KDF function and pbkdf2 c of a keystore JSON.
func kdfOf(t *testing.T, js []byte) (string, int) {
	t.Helper()
	var doc struct {
		Crypto struct {
			KDF struct {
				Function string `json:"function"`
				Params   struct {
					C int `json:"c"`
				} `json:"params"`
			} `json:"kdf"`
		} `json:"crypto"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Crypto.KDF.Function, doc.Crypto.KDF.Params.C
}

func TestHandoffKeystore(t *testing.T) {
	k := newKey(t, false)
	pkb, _ := hex.DecodeString(k.pubkey)
	js, pw, err := web3signer.HandoffKeystore(k.sk, pkb, "m/12381/3600/7/0/0")
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Destroy()
	if f, c := kdfOf(t, js); f != "pbkdf2" || c != 1 {
		t.Fatalf("kdf %s c=%d, want pbkdf2 c=1", f, c)
	}
	var doc struct {
		Crypto map[string]any `json:"crypto"`
		Pubkey string         `json:"pubkey"`
		Path   string         `json:"path"`
	}
	json.Unmarshal(js, &doc)
	if doc.Pubkey != k.pubkey || doc.Path != "m/12381/3600/7/0/0" {
		t.Fatalf("pubkey %s path %s", doc.Pubkey, doc.Path)
	}
	secret, err := keystorev4.New().Decrypt(doc.Crypto, string(pw.UnsafeBytes()))
	if err != nil || hex.EncodeToString(secret) != hex.EncodeToString(k.sk.UnsafeBytes()) {
		t.Fatalf("keystorev4: %v", err)
	}
	if _, _, err := web3signer.HandoffKeystore(k.sk, pkb[:47], ""); !errors.Is(err, web3signer.ErrKey) {
		t.Fatalf("short pubkey: %v", err)
	}
}

func TestPrepareHandoffs(t *testing.T) {
	keys := make([]testKey, 6)
	for i := range keys {
		keys[i] = newKey(t, false)
	}
	var released atomic.Int32
	open := func(_ context.Context, i int) (web3signer.Opened, error) {
		return web3signer.Opened{Pubkey: keys[i].pubkey, SecretKey: keys[i].sk, Release: func() { released.Add(1) }}, nil
	}
	hs, err := web3signer.PrepareHandoffs(t.Context(), len(keys), 3, open)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != len(keys) || released.Load() != int32(len(keys)) {
		t.Fatalf("%d hand-offs, %d released", len(hs), released.Load())
	}
	for i, h := range hs {
		if h.Pubkey != keys[i].pubkey {
			t.Fatalf("hand-off %d is for another key", i)
		}
		got, err := h.Keystore.DecryptKey(h.Password.UnsafeBytes())
		if err != nil || hex.EncodeToString(got.UnsafeBytes()) != hex.EncodeToString(keys[i].sk.UnsafeBytes()) {
			t.Fatalf("hand-off %d does not open to its key: %v", i, err)
		}
	}
	// They make a key directory with no KDF run at write.
	dir := filepath.Join(t.TempDir(), "keys")
	wk := make([]web3signer.Key, len(hs))
	for i, h := range hs {
		wk[i] = h.Key()
	}
	if err := web3signer.WriteKeyDir(dir, wk); err != nil {
		t.Fatal(err)
	}
	if found := checkKeyDir(t, dir); len(found) != len(keys) {
		t.Fatalf("%d keys in the directory", len(found))
	}

	t.Run("an open error stops the work and is returned", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := web3signer.PrepareHandoffs(t.Context(), len(keys), 2, func(ctx context.Context, i int) (web3signer.Opened, error) {
			if i == 3 {
				return web3signer.Opened{}, boom
			}
			return open(ctx, i)
		})
		if !errors.Is(err, boom) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("cancel returns promptly", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var started atomic.Int32
		slow := func(ctx context.Context, i int) (web3signer.Opened, error) {
			if started.Add(1) == 2 {
				cancel()
			}
			select { // an open that honours ctx, as custody's does between KDF runs
			case <-ctx.Done():
				return web3signer.Opened{}, ctx.Err()
			case <-time.After(time.Second):
			}
			return open(ctx, i%len(keys))
		}
		start := time.Now()
		_, err := web3signer.PrepareHandoffs(ctx, 10000, 2, slow)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v after cancel", d)
		}
		if n := started.Load(); n > 4 {
			t.Fatalf("%d opens started after cancel", n)
		}
	})
	t.Run("wrong secret key for the pubkey", func(t *testing.T) {
		// A hand-off records the pubkey it is told: the open function
		// must give the checked pair (custody.Opener does). A malformed
		// one is refused.
		_, err := web3signer.PrepareHandoffs(t.Context(), 1, 1, func(context.Context, int) (web3signer.Opened, error) {
			return web3signer.Opened{Pubkey: "0x12", SecretKey: keys[0].sk}, nil
		})
		if !errors.Is(err, web3signer.ErrKey) {
			t.Fatalf("got %v", err)
		}
	})
}

// TestWriteKeyDirHandoffKDF: keys given as secret keys (raw-format, or
// keystore-format once opened) are written under pbkdf2 with c=1, since
// their password file lies beside them; a given keystore alone is written
// unchanged.
func TestWriteKeyDirHandoffKDF(t *testing.T) {
	a, c := newKey(t, true), newKey(t, false)
	dir := t.TempDir()
	err := web3signer.WriteKeyDir(dir, []web3signer.Key{
		{Pubkey: a.pubkey, Keystore: a.ks, Password: a.password, SecretKey: a.sk},
		{Pubkey: c.pubkey, SecretKey: c.sk},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, pk := range []string{a.pubkey, c.pubkey} {
		js, _ := os.ReadFile(filepath.Join(dir, "0x"+pk+".json"))
		if f, n := kdfOf(t, js); f != "pbkdf2" || n != 1 {
			t.Fatalf("%s: kdf %s c=%d", pk[:8], f, n)
		}
	}
	checkKeyDir(t, dir)
	dir2 := t.TempDir()
	if err := web3signer.WriteKeyDir(dir2, []web3signer.Key{{Pubkey: a.pubkey, Keystore: a.ks, Password: a.password}}); err != nil {
		t.Fatal(err)
	}
	js, _ := os.ReadFile(filepath.Join(dir2, "0x"+a.pubkey+".json"))
	if f, _ := kdfOf(t, js); f != "scrypt" {
		t.Fatalf("a given keystore was re-encrypted (%s)", f)
	}
}

// TestKeyDirMoved: a key directory moved (or mounted) elsewhere still
// works, read as Web3Signer reads it: configs resolved against the new
// --key-store-path.
func TestKeyDirMoved(t *testing.T) {
	a, c := newKey(t, true), newKey(t, false)
	base := t.TempDir()
	dir := filepath.Join(base, "first", "keys")
	if err := web3signer.WriteKeyDir(dir, []web3signer.Key{{Pubkey: a.pubkey, Keystore: a.ks, Password: a.password}, {Pubkey: c.pubkey, SecretKey: c.sk}}); err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(base, "elsewhere")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(base, "first"))
	if found := checkKeyDir(t, moved); !found[a.pubkey] || !found[c.pubkey] {
		t.Fatalf("keys after the move: %v", found)
	}
	for _, e := range []string{a.pubkey, c.pubkey} {
		b, _ := os.ReadFile(filepath.Join(moved, "0x"+e+".yaml"))
		if strings.Contains(string(b), base) {
			t.Fatalf("config names the old location: %s", b)
		}
	}
}

// TestLodestarImportsKeyDir: a real validator client takes the keys of a
// directory we write: `lodestar validator import` of each keystore with
// its password file, then `lodestar validator list` shows them all.
func TestLodestarImportsKeyDir(t *testing.T) {
	a, c := newKey(t, true), newKey(t, false)
	dir := filepath.Join(t.TempDir(), "keys")
	if err := web3signer.WriteKeyDir(dir, []web3signer.Key{
		{Pubkey: a.pubkey, SecretKey: a.sk}, // a keystore-format key, once opened
		{Pubkey: c.pubkey, SecretKey: c.sk}, // a raw-format key
	}); err != nil {
		t.Fatal(err)
	}
	vc := t.TempDir()
	for _, pk := range []string{a.pubkey, c.pubkey} {
		testenv.Lodestar(t, 2*time.Minute, "validator", "import", "--network", "mainnet", "--dataDir", vc,
			"--importKeystores", filepath.Join(dir, "0x"+pk+web3signer.KeystoreSuffix),
			"--importKeystoresPassword", filepath.Join(dir, "0x"+pk+web3signer.PasswordSuffix))
	}
	out := testenv.Lodestar(t, 2*time.Minute, "validator", "list", "--network", "mainnet", "--dataDir", vc)
	for _, pk := range []string{a.pubkey, c.pubkey} {
		if !strings.Contains(out, pk) {
			t.Fatalf("lodestar validator list does not show 0x%s:\n%s", pk, out)
		}
	}
}

// TestLodestarImportsHandoffKeystores: Lodestar's Keymanager API imports
// hand-off keystores (pbkdf2, c=1) made by PrepareHandoffs, with an
// interchange from BuildInterchange for the dev chain's root.
func TestLodestarImportsHandoffKeystores(t *testing.T) {
	km := testenv.KeymanagerAPI(t)
	tok, err := keymanager.ReadTokenFile(km.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	client, err := keymanager.New(km.URL, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	keys := []testKey{newKey(t, false), newKey(t, false), newKey(t, false)}
	hs, err := web3signer.PrepareHandoffs(t.Context(), len(keys), 0, func(_ context.Context, i int) (web3signer.Opened, error) {
		return web3signer.Opened{Pubkey: keys[i].pubkey, SecretKey: keys[i].sk}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rootHex := beaconGenesisRoot(t, km.BeaconURL)
	hist := make([]web3signer.KeyHistory, len(hs))
	kms := make([]keymanager.Keystore, len(hs))
	for i, h := range hs {
		hist[i] = web3signer.KeyHistory{Pubkey: h.Pubkey}
		kms[i] = keymanager.Keystore{JSON: h.JSON, Password: h.Password.UnsafeBytes()}
	}
	ic, err := web3signer.BuildInterchange(root(t, rootHex), hist)
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Import(t.Context(), kms, ic)
	if err != nil {
		t.Fatal(err)
	}
	pks := make([]string, len(res))
	for i, r := range res {
		if r.Status != keymanager.Imported {
			t.Fatalf("key %d: %+v", i, r)
		}
		pks[i] = hs[i].Pubkey
	}
	if _, _, err := client.Delete(t.Context(), pks); err != nil {
		t.Fatal(err)
	}
}

func beaconGenesisRoot(t *testing.T, beaconURL string) string {
	t.Helper()
	out, err := httpGetJSON(beaconURL + "/eth/v1/beacon/genesis")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Data struct {
			Root string `json:"genesis_validators_root"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Data.Root
}

func httpGetJSON(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
