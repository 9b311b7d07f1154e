package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// signerBadInputCases are TestBadInputPerCommand's cases of the Keymanager
// API hand-off (decrypt --keymanager-url, unload) and of import. None of
// them may claim, store or write anything.
func signerBadInputCases(t *testing.T, w *badInputWorld) []struct {
	name    string
	args    []string
	mention string
} {
	d := w.dir
	token := writeFile(t, t.TempDir(), "token.txt", "0123456789abcdef\n")
	down := "http://127.0.0.1:1" // nothing listens there
	unknownPK := strings.Repeat("ab", 48)
	wrongPw := writeFile(t, t.TempDir(), "wrong.txt", "not the password at all")
	ksRaw, _ := os.ReadFile(w.keystoreFile)
	// A keystore that claims another validator's pubkey (the world's raw key).
	i := strings.Index(string(ksRaw), `"pubkey": "`) + len(`"pubkey": "`)
	mismatch := writeFile(t, t.TempDir(), "mismatch.json", string(ksRaw[:i])+w.pubkey+string(ksRaw[i+96:]))
	otherNet := writeFile(t, t.TempDir(), "mainnet-interchange.json",
		`{"metadata":{"interchange_format_version":"5","genesis_validators_root":"0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"},"data":[]}`)
	km := []string{"--keymanager-url", down, "--keymanager-token-file", token}
	return []struct {
		name    string
		args    []string
		mention string
	}{
		{"decrypt/both routes", append([]string{"decrypt", "--db", w.db, "--all", "--web3signer-dir", filepath.Join(d, "x")}, km...), "one of them"},
		{"decrypt/keymanager down", append([]string{"decrypt", "--db", w.db, "--pubkey", w.pubkey}, km...), "unavailable"},
		{"decrypt/keymanager batch zero", append([]string{"decrypt", "--db", w.db, "--pubkey", w.pubkey, "--keymanager-batch", "0"}, km...), "--keymanager-batch"},
		{"decrypt/no token file", []string{"decrypt", "--db", w.db, "--pubkey", w.pubkey, "--keymanager-url", down}, "--keymanager-token-file"},
		{"decrypt/token file missing", []string{"decrypt", "--db", w.db, "--pubkey", w.pubkey, "--keymanager-url", down, "--keymanager-token-file", filepath.Join(d, "nope")}, "token file"},
		{"decrypt/http to a remote host", []string{"decrypt", "--db", w.db, "--pubkey", w.pubkey, "--keymanager-url", "http://192.0.2.1:5062", "--keymanager-token-file", token}, "plain http"},
		{"decrypt/root of another network", []string{"decrypt", "--db", w.db, "--pubkey", w.pubkey, "--web3signer-dir", filepath.Join(t.TempDir(), "w"),
			"--genesis-validators-root", "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"}, "another network"},
		{"decrypt/slashing file missing", []string{"decrypt", "--db", w.db, "--pubkey", w.pubkey, "--web3signer-dir", filepath.Join(t.TempDir(), "w"),
			"--slashing-protection-file", filepath.Join(d, "nope")}, "slashing-protection file"},
		{"decrypt/slashing file of another network", []string{"decrypt", "--db", w.db, "--pubkey", w.pubkey, "--web3signer-dir", filepath.Join(t.TempDir(), "w"),
			"--slashing-protection-file", otherNet}, "another network"},

		{"unload/no pubkey", append([]string{"unload", "--db", w.db}, km...), "--pubkey"},
		{"unload/no url", []string{"unload", "--db", w.db, "--pubkey", w.pubkey}, "--keymanager-url"},
		{"unload/not live there", append([]string{"unload", "--db", w.db, "--pubkey", w.pubkey}, km...), "not live on"},
		{"unload/unknown pubkey", append([]string{"unload", "--db", w.db, "--pubkey", unknownPK}, km...), "not found"},
		{"unload/history out exists", append([]string{"unload", "--db", w.db, "--pubkey", w.pubkey, "--slashing-protection-out", token}, km...), "exists"},
		{"unload/history file missing", append([]string{"unload", "--db", w.db, "--pubkey", w.pubkey, "--slashing-protection-file", filepath.Join(d, "nope")}, km...), "slashing-protection file"},

		{"import/wrong password", []string{"import", "--db", w.db, "--keystore", w.keystoreFile, "--keystore-password-file", wrongPw, "--chain", "hoodi"}, "wrong password"},
		{"import/pubkey mismatch", []string{"import", "--db", w.db, "--keystore", mismatch, "--keystore-password-file", w.pwFile, "--chain", "hoodi"}, "does not match"},
		{"import/no password file", []string{"import", "--db", w.db, "--keystore", w.keystoreFile, "--chain", "hoodi"}, "--keystore-password-file"},
		{"import/no chain", []string{"import", "--db", w.db, "--keystore", w.keystoreFile, "--keystore-password-file", w.pwFile}, "--chain"},
		{"import/both sources", []string{"import", "--db", w.db, "--keystore", w.keystoreFile, "--mnemonic-file", w.mnemonicFile, "--chain", "hoodi"}, "one of them"},
		{"import/mnemonic does not derive the claimed key", []string{"import", "--db", w.db, "--mnemonic-file", w.mnemonicFile, "--count", "1",
			"--pubkey", unknownPK, "--chain", "hoodi"}, "not the claimed"},
		{"import/deposited without signer", []string{"import", "--db", w.db, "--keystore", w.keystoreFile, "--keystore-password-file", w.pwFile, "--chain", "hoodi",
			"--status", "deposited"}, "--signer"},
	}
}
