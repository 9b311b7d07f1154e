package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/web3signer"
)

// devRoot is the genesis validators root of the running lodestar dev chain
// (a devnet the network table does not hold: the tests name it with
// --genesis-validators-root, as an operator of a devnet does).
func devRoot(t *testing.T, km testenv.Keymanager) string {
	t.Helper()
	resp, err := http.Get(km.BeaconURL + "/eth/v1/beacon/genesis")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Data struct {
			Root string `json:"genesis_validators_root"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || len(doc.Data.Root) != 66 {
		t.Fatalf("genesis: %v %+v", err, doc)
	}
	return doc.Data.Root
}

func listKeys(t *testing.T, db string) map[string]listEntry {
	t.Helper()
	r := runCLI(t, "list", "--db", db, "--json")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	out := map[string]listEntry{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e listEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out[e.Pubkey] = e
	}
	return out
}

// TestKeymanagerHandoffLodestar runs the hand-off against Lodestar's
// validator client (the real Keymanager API of lodestar dev): decrypt
// imports; another signer is refused by custody; a duplicate is not a load;
// unload stores the interchange Lodestar returns; a takeover without
// history is refused, one with the stored history loads; an imported
// keystore is loaded.
func TestKeymanagerHandoffLodestar(t *testing.T) {
	km := testenv.KeymanagerAPI(t)
	root := devRoot(t, km)
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	dev := []string{"--chain", "lsdev", "--fork-version", "0x00000001"}
	gen := generateJSON(t, append([]string{"--count", "2", "--bls-withdrawal", "--db", db, "--out", dir,
		"--secret-format", "raw", "--request-id", "km-" + randomSuffix(t)}, dev...)...)
	a, b := gen.Validators[0].Pubkey, gen.Validators[1].Pubkey
	kmFlags := []string{"--keymanager-url", km.URL, "--keymanager-token-file", km.TokenFile, "--genesis-validators-root", root}
	signer := "keymanager:" + km.URL
	var cleanup []string
	t.Cleanup(func() {
		// Leave the shared server as it was: remove what this test loaded.
		for _, pk := range cleanup {
			if r := runCLI(t, append([]string{"unload", "--db", db, "--pubkey", pk}, kmFlags...)...); r.code != 0 {
				t.Errorf("cleanup: unload 0x%s: %s", pk[:16], r.stderr)
			}
		}
	})

	// decrypt → imported, recorded live on the keymanager.
	r := runCLI(t, append([]string{"decrypt", "--db", db, "--pubkey", a, "--pubkey", b}, kmFlags...)...)
	if r.code != 0 {
		t.Fatalf("decrypt: %s %s", r.stdout, r.stderr)
	}
	cleanup = append(cleanup, a, b)
	if strings.Count(r.stdout, "\timported") != 2 {
		t.Fatalf("decrypt stdout: %s", r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, readToken(t, km)) {
		t.Fatal("the token is printed")
	}
	keys := listKeys(t, db)
	if keys[a].Status != "deposited" || keys[a].Signer != signer {
		t.Fatalf("after decrypt: %+v", keys[a])
	}

	// Another signer (a key directory) is refused by custody.
	r = runCLI(t, "decrypt", "--db", db, "--pubkey", a, "--web3signer-dir", filepath.Join(dir, "w3s-second"), "--genesis-validators-root", root)
	if r.code == 0 || !strings.Contains(r.stderr, "is live on "+signer) {
		t.Fatalf("second signer: %+v", r)
	}

	// The same server under another name: a takeover that Lodestar answers
	// "duplicate" for. Not a load: exit 1, and the claim is released (the
	// ledger still has the key on the first name).
	other := strings.Replace(km.URL, "127.0.0.1", "localhost", 1)
	r = runCLI(t, "decrypt", "--db", db, "--pubkey", a, "--takeover", "--no-slashing-history-i-understand",
		"--keymanager-url", other, "--keymanager-token-file", km.TokenFile, "--genesis-validators-root", root)
	if r.code == 0 || !strings.Contains(r.stdout, "\tduplicate\t") || !strings.Contains(r.stderr, "duplicate") {
		t.Fatalf("duplicate: %+v", r)
	}
	if k := listKeys(t, db)[a]; k.Signer != signer {
		t.Fatalf("after a duplicate: %+v", k)
	}

	// A takeover without history is refused, before anything is claimed.
	r = runCLI(t, "decrypt", "--db", db, "--pubkey", b, "--takeover", "--web3signer-dir", filepath.Join(dir, "w3s-b"), "--genesis-validators-root", root)
	if r.code == 0 || !strings.Contains(r.stderr, "slashing-protection history") {
		t.Fatalf("takeover without history: %+v", r)
	}
	if k := listKeys(t, db)[b]; k.Signer != signer {
		t.Fatalf("after a refused takeover: %+v", k)
	}

	// unload: DELETE, and the returned interchange is stored with the key.
	r = runCLI(t, append([]string{"unload", "--db", db, "--pubkey", a}, kmFlags...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "\tdeleted") {
		t.Fatalf("unload: %+v", r)
	}
	cleanup = cleanup[1:]
	if k := listKeys(t, db)[a]; k.Status != "exported" || k.Signer != "" || !k.SlashingHistory {
		t.Fatalf("after unload: %+v", k)
	}

	// The key goes to a key directory with the stored history beside it...
	w3s := filepath.Join(dir, "w3s-a")
	if r := runCLI(t, "decrypt", "--db", db, "--pubkey", a, "--web3signer-dir", w3s, "--genesis-validators-root", root); r.code != 0 {
		t.Fatal(r.stderr)
	}
	ics, _ := filepath.Glob(filepath.Join(w3s, "slashing-protection-*.json"))
	if len(ics) != 1 {
		t.Fatalf("interchange beside the keys: %v", ics)
	}
	ic, _ := os.ReadFile(ics[0])
	rb, _ := web3signer.ParseRoot(root)
	if doc, err := web3signer.ParseInterchange(ic, rb); err != nil || len(doc.Data) != 1 || doc.Data[0].Pubkey != "0x"+a {
		t.Fatalf("interchange %s: %v", ic, err)
	}
	// ... and is taken over from there back into the Keymanager API with
	// that history (the ledger's), no file needed.
	r = runCLI(t, append([]string{"decrypt", "--db", db, "--pubkey", a, "--takeover"}, kmFlags...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "\timported") {
		t.Fatalf("takeover with the stored history: %+v", r)
	}
	cleanup = append(cleanup, a)

	// import a keystore made elsewhere, then decrypt it into the signer.
	ksFile, pwFile, pk := elsewhereKeystore(t, dir)
	r = runCLI(t, append([]string{"import", "--db", db, "--keystore", ksFile, "--keystore-password-file", pwFile, "--json"}, dev...)...)
	if r.code != 0 {
		t.Fatalf("import: %s", r.stderr)
	}
	if k := listKeys(t, db)[pk]; k.Status != "imported" || k.Origin != "imported" {
		t.Fatalf("after import: %+v", k)
	}
	// Importing it again stores nothing twice.
	if r := runCLI(t, append([]string{"import", "--db", db, "--keystore", ksFile, "--keystore-password-file", pwFile, "--json"}, dev...)...); r.code != 0 || !strings.Contains(r.stdout, `"created":0`) {
		t.Fatalf("second import: %+v", r)
	}
	r = runCLI(t, append([]string{"decrypt", "--db", db, "--pubkey", pk}, kmFlags...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "0x"+pk+"\timported") {
		t.Fatalf("decrypt of the imported key: %+v", r)
	}
	cleanup = append(cleanup, pk)
	if k := listKeys(t, db)[pk]; k.Status != "deposited" || k.Signer != signer {
		t.Fatalf("imported key after decrypt: %+v", k)
	}
}

// TestImportDeposited: keys imported as live on their old signer are a
// takeover for any other, which needs that signer's history (a file).
func TestImportDeposited(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	// A store made the usual way first (keys, pins).
	generateJSON(t, "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir, "--secret-format", "raw", "--request-id", "imp-dep")
	mn := writeFile(t, dir, "mnemonic.txt", testMnemonic+"\n")
	r := runCLI(t, "import", "--db", db, "--mnemonic-file", mn, "--start-index", "3", "--count", "2", "--chain", "hoodi",
		"--status", "deposited", "--signer", "lighthouse:old-host")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	pks := strings.Fields(strings.ReplaceAll(r.stdout, "0x", ""))
	if len(pks) != 2 {
		t.Fatalf("import stdout %q", r.stdout)
	}
	// The derived keys are the mnemonic's at 3 and 4.
	m, _ := keygen.ParseMnemonic(testMnemonic)
	seed := m.Seed("")
	for i, pk := range pks {
		sk, _ := keygen.DeriveKey(seed, keygen.SigningPath(uint32(3+i)))
		if hex.EncodeToString(sk.PublicKey()) != pk {
			t.Fatalf("key %d is not the mnemonic's", i)
		}
	}
	if k := listKeys(t, db)[pks[0]]; k.Status != "deposited" || k.Signer != "lighthouse:old-host" || k.Origin != "imported" {
		t.Fatalf("after import: %+v", k)
	}
	w3s := filepath.Join(dir, "w3s")
	if r := runCLI(t, "decrypt", "--db", db, "--pubkey", pks[0], "--web3signer-dir", w3s); r.code == 0 || !strings.Contains(r.stderr, "is live on lighthouse:old-host") {
		t.Fatalf("load without takeover: %+v", r)
	}
	if r := runCLI(t, "decrypt", "--db", db, "--pubkey", pks[0], "--takeover", "--web3signer-dir", w3s); r.code == 0 || !strings.Contains(r.stderr, "slashing-protection history") {
		t.Fatalf("takeover without history: %+v", r)
	}
	// The old signer's history (an interchange for another key is refused).
	hist := func(pk string) string {
		return `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"0x212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f"},` +
			`"data":[{"pubkey":"0x` + pk + `","signed_blocks":[{"slot":"81952"}],"signed_attestations":[{"source_epoch":"2290","target_epoch":"3007"}]}]}`
	}
	wrongKey := writeFile(t, dir, "other-key.json", hist(pks[1]))
	if r := runCLI(t, "decrypt", "--db", db, "--pubkey", pks[0], "--takeover", "--web3signer-dir", w3s, "--slashing-protection-file", wrongKey); r.code == 0 {
		t.Fatal("took over with another key's history")
	}
	good := writeFile(t, dir, "old-signer.json", hist(pks[0]))
	if r := runCLI(t, "decrypt", "--db", db, "--pubkey", pks[0], "--takeover", "--web3signer-dir", w3s, "--slashing-protection-file", good); r.code != 0 {
		t.Fatal(r.stderr)
	}
	ics, _ := filepath.Glob(filepath.Join(w3s, "slashing-protection-*.json"))
	ic, _ := os.ReadFile(ics[0])
	if !strings.Contains(string(ic), `"target_epoch":"3007"`) || !strings.Contains(string(ic), `"slot":"81952"`) {
		t.Fatalf("the old signer's history did not travel: %s", ic)
	}
	checkWeb3SignerDir(t, w3s, pks[:1])
}

// elsewhereKeystore is a keystore made by another tool (a random key, its
// pubkey recorded) and its password file.
func elsewhereKeystore(t *testing.T, dir string) (string, string, string) {
	t.Helper()
	for {
		raw := make([]byte, 32)
		rand.Read(raw)
		raw[0] &= 0x3f
		sk, err := keygen.SecretKeyFromBytes(raw)
		if err != nil {
			continue
		}
		pw := "elsewhere password " + randomSuffix(t)
		ks, err := keystore.Encrypt(rand.Reader, raw, []byte(pw), keystore.WithPubkey(sk.PublicKey()),
			keystore.WithKDF(keystore.PBKDF2), keystore.WithInsecureCost(t, 16), keystore.WithPath(keygen.SigningPath(7)))
		if err != nil {
			t.Fatal(err)
		}
		js, _ := ks.Marshal()
		return writeFile(t, dir, "elsewhere.json", string(js)), writeFile(t, dir, "elsewhere.txt", pw+"\n"), hex.EncodeToString(sk.PublicKey())
	}
}

func readToken(t *testing.T, km testenv.Keymanager) string {
	t.Helper()
	b, err := os.ReadFile(km.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
