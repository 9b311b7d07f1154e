package main

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
	e2types "github.com/wealdtech/go-eth2-types/v2"
	keystorev4 "github.com/wealdtech/go-eth2-wallet-encryptor-keystorev4"
)

// checkWeb3SignerDir reads every key config in dir the way Web3Signer does
// (type file-keystore: keystoreFile + keystorePasswordFile) and decrypts the
// keystore with wealdtech's independent EIP-2335 implementation; the key
// must derive the pubkey the files are named for.
func checkWeb3SignerDir(t *testing.T, dir string, want []string) {
	t.Helper()
	if err := e2types.InitBLS(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode: %v %v", st, err)
	}
	configs, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(configs) != len(want) {
		t.Fatalf("%d configs, want %d", len(configs), len(want))
	}
	field := func(doc, name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `: "([^"]*)"$`).FindStringSubmatch(doc)
		if m == nil {
			t.Fatalf("config lacks %s:\n%s", name, doc)
		}
		return m[1]
	}
	for _, pk := range want {
		cfgPath := filepath.Join(dir, "0x"+pk+".yaml")
		raw, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		doc := string(raw)
		if field(doc, "type") != "file-keystore" || field(doc, "keyType") != "BLS" {
			t.Fatalf("config %s", doc)
		}
		// Relative to the directory, as Web3Signer resolves them against
		// --key-store-path.
		ksPath, pwPath := filepath.Join(dir, field(doc, "keystoreFile")), filepath.Join(dir, field(doc, "keystorePasswordFile"))
		for _, p := range []string{cfgPath, ksPath, pwPath} {
			if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("%s: mode %v %v", p, st, err)
			}
		}
		ksRaw, _ := os.ReadFile(ksPath)
		pw, _ := os.ReadFile(pwPath)
		var ks struct {
			Crypto map[string]any `json:"crypto"`
			Pubkey string         `json:"pubkey"`
		}
		if err := json.Unmarshal(ksRaw, &ks); err != nil {
			t.Fatal(err)
		}
		secret, err := keystorev4.New().Decrypt(ks.Crypto, strings.TrimSuffix(string(pw), "\n"))
		if err != nil {
			t.Fatalf("keystorev4: %v", err)
		}
		sk, err := e2types.BLSPrivateKeyFromBytes(secret)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(sk.PublicKey().Marshal()); got != pk || ks.Pubkey != pk {
			t.Fatalf("key derives %s, files say %s", got, pk)
		}
	}
}

func TestDecryptToWeb3Signer(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	var pubkeys []string
	for _, format := range []string{"keystore", "raw"} {
		out := generateJSON(t, "--count", "2", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir, "--secret-format", format,
			"--kdf", "pbkdf2", "--request-id", "dec-"+format)
		for _, v := range out.Validators {
			pubkeys = append(pubkeys, v.Pubkey)
		}
	}
	w3s := filepath.Join(dir, "w3s")
	r := runCLI(t, "decrypt", "--all", "--db", db, "--web3signer-dir", w3s)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	checkWeb3SignerDir(t, w3s, pubkeys)
	// Loaded keys are marked deposited; loading one again (a second signer)
	// is refused unless it is a takeover.
	if r := runCLI(t, "list", "--db", db, "--status", "deposited", "--json"); strings.Count(r.stdout, "\n") != len(pubkeys) {
		t.Fatalf("deposited after decrypt: %s", r.stdout)
	}
	r = runCLI(t, "decrypt", "--pubkey", pubkeys[1], "--db", db, "--web3signer-dir", filepath.Join(dir, "second"))
	if r.code == 0 || !strings.Contains(r.stderr, "is live on") {
		t.Fatalf("second signer: %+v", r)
	}
	if r := runCLI(t, "decrypt", "--all", "--db", db, "--web3signer-dir", filepath.Join(dir, "second")); r.code == 0 {
		t.Fatal("--all loaded deposited keys without --takeover")
	}
	// A directory that is not empty is refused unless told, and nothing is replaced.
	r = runCLI(t, "decrypt", "--takeover", "--pubkey", "0x"+pubkeys[0], "--db", db, "--web3signer-dir", w3s)
	if r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("non-empty dir: %+v", r)
	}
	// One key alone, into a fresh directory: a takeover, which needs the
	// previous signer's slashing-protection history (the interchange the
	// first load wrote beside its keys stands in for it).
	one := filepath.Join(dir, "one")
	r = runCLI(t, "decrypt", "--takeover", "--pubkey", pubkeys[3], "--db", db, "--web3signer-dir", one)
	if r.code == 0 || !strings.Contains(r.stderr, "slashing-protection history") {
		t.Fatalf("takeover without history: %+v", r)
	}
	ics, _ := filepath.Glob(filepath.Join(w3s, "slashing-protection-*.json"))
	if len(ics) != 1 {
		t.Fatalf("interchange files beside the keys: %v", ics)
	}
	if r := runCLI(t, "decrypt", "--takeover", "--pubkey", pubkeys[3], "--db", db, "--web3signer-dir", one, "--slashing-protection-file", ics[0]); r.code != 0 {
		t.Fatal(r.stderr)
	}
	checkWeb3SignerDir(t, one, pubkeys[3:])
	// The wrong identity opens nothing and writes nothing.
	otherID := otherIdentity(t, dir)
	bad := filepath.Join(dir, "bad")
	r = runCLI(t, "decrypt", "--all", "--takeover", "--no-slashing-history-i-understand", "--db", db, "--web3signer-dir", bad, "--identity-file", otherID)
	if r.code == 0 || !(strings.Contains(r.stderr, "sealed to age recipient")) {
		t.Fatalf("wrong identity: %+v", r)
	}
	// Another generator's key (a replaced generator.pub, another home)
	// opens nothing either: the store's records are not its.
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "other-home"))
	if r := runCLI(t, "generate", "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--db", filepath.Join(dir, "other.db"), "--out", dir, "--secret-format", "raw"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	r = runCLI(t, "decrypt", "--all", "--takeover", "--db", db, "--web3signer-dir", bad)
	if r.code == 0 || !strings.Contains(r.stderr, "not the key this store was first used with") {
		t.Fatalf("another generator key: %+v", r)
	}
	if _, err := os.Stat(bad); err == nil {
		if entries, _ := os.ReadDir(bad); len(entries) != 0 {
			t.Fatal("a failed decrypt left files")
		}
	}
}

// otherIdentity makes a second age identity file in dir.
func otherIdentity(t *testing.T, dir string) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "other-identity.txt")
	if err := os.WriteFile(p, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDecryptRaceOneSignerWins: two loaders racing for the same key: one
// writes a key directory, the other fails and leaves nothing behind.
func TestDecryptRaceOneSignerWins(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	out := generateJSON(t, "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir, "--secret-format", "keystore",
		"--kdf", "pbkdf2", "--request-id", "race")
	pk := out.Validators[0].Pubkey
	results := make(chan result, 2)
	for i := range 2 {
		go func() {
			results <- runCLI(t, "decrypt", "--pubkey", pk, "--db", db, "--web3signer-dir", filepath.Join(dir, "signer"+strconv.Itoa(i)))
		}()
	}
	wins := 0
	for range 2 {
		if r := <-results; r.code == 0 {
			wins++
		} else if !strings.Contains(r.stderr, "deposited") && !strings.Contains(r.stderr, "claimed") {
			t.Fatalf("loser's error: %s", r.stderr)
		}
	}
	if wins != 1 {
		t.Fatalf("%d loaders won", wins)
	}
	dirsWithKeys := 0
	for i := range 2 {
		if entries, _ := os.ReadDir(filepath.Join(dir, "signer"+strconv.Itoa(i))); len(entries) > 0 {
			dirsWithKeys++
		}
	}
	if dirsWithKeys != 1 {
		t.Fatalf("%d key directories written", dirsWithKeys)
	}
}

// TestDecryptFailureReleasesClaim: a load that fails (the wrong identity)
// leaves the key's status as it was, so another signer can load it.
func TestDecryptFailureReleasesClaim(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	out := generateJSON(t, "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir, "--secret-format", "raw", "--request-id", "rel")
	pk := out.Validators[0].Pubkey
	if r := runCLI(t, "decrypt", "--pubkey", pk, "--db", db, "--web3signer-dir", filepath.Join(dir, "bad"), "--identity-file", otherIdentity(t, dir)); r.code == 0 {
		t.Fatal("wrong identity opened the key")
	}
	r := runCLI(t, "list", "--db", db, "--json")
	if !strings.Contains(r.stdout, `"status":"exported"`) {
		t.Fatalf("status after a failed load: %s", r.stdout)
	}
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	if r := runCLI(t, "decrypt", "--pubkey", pk, "--db", db, "--web3signer-dir", filepath.Join(dir, "good")); r.code != 0 {
		t.Fatal(r.stderr)
	}
}
