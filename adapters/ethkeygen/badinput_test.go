package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
)

// Known secrets of the bad-input tests: none of them may appear in what a
// refused command prints.
const (
	badInputPassword   = "bad-input password 0123456789"
	badInputPassphrase = "bad-input passphrase"
	// badIdentity looks like an age identity; a refusal must not echo it.
	badIdentity = "AGE-SECRET-KEY-1BADINPUTNOTAREALKEYQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
)

// badInputWorld is a store with one raw-format validator, its local
// identity, a keystore with a known password, and files holding the
// secrets, shared by the cases of TestBadInputPerCommand.
type badInputWorld struct {
	dir, home, db, pubkey   string
	mnemonicFile, pwFile    string
	keystoreFile, depositOK string
	secrets                 []string
}

func newBadInputWorld(t *testing.T) *badInputWorld {
	t.Helper()
	dir := t.TempDir()
	w := &badInputWorld{dir: dir, home: filepath.Join(dir, "home"), db: filepath.Join(dir, "ethkeygen.db")}
	t.Setenv("ETHKEYGEN_HOME", w.home)
	t.Setenv("ETHKEYGEN_LOG_LEVEL", "debug") // refusals at the most verbose level
	gen := generateJSON(t, "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--db", w.db, "--out", filepath.Join(dir, "gen"),
		"--secret-format", "raw", "--request-id", "bad-input")
	w.pubkey, w.depositOK = gen.Validators[0].Pubkey, gen.DepositData

	w.mnemonicFile = writeFile(t, dir, "mnemonic.txt", testMnemonic+"\n")
	w.pwFile = writeFile(t, dir, "password.txt", badInputPassword+"\n")
	writeFile(t, dir, "passphrase.txt", badInputPassphrase)

	m, err := keygen.ParseMnemonic(testMnemonic)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy()
	seed := m.Seed("")
	defer seed.Destroy()
	sk, err := keygen.DeriveKey(seed, keygen.SigningPath(0))
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Destroy()
	ks, err := keystore.Encrypt(rand.Reader, sk.UnsafeBytes(), []byte(badInputPassword), keystore.WithKDF(keystore.PBKDF2),
		keystore.WithInsecureCost(t, 16), keystore.WithPubkey(sk.PublicKey()), keystore.WithPath(keygen.SigningPath(0)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ks.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	w.keystoreFile = writeFile(t, dir, "keystore.json", string(raw))

	w.secrets = append(w.secrets, badInputPassword, badInputPassphrase, badIdentity, hex.EncodeToString(sk.UnsafeBytes()))
	words := strings.Fields(testMnemonic)
	for i := 0; i+3 <= len(words); i++ {
		w.secrets = append(w.secrets, strings.Join(words[i:i+3], " "))
	}
	if id, err := os.ReadFile(filepath.Join(w.home, "identity.txt")); err == nil {
		for _, line := range strings.Split(string(id), "\n") {
			if strings.HasPrefix(line, "AGE-SECRET-KEY-") {
				w.secrets = append(w.secrets, line)
			}
		}
	} else {
		t.Fatal(err)
	}
	return w
}

// listing is every file under dir with its size, to prove a refused command
// wrote nothing.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		// SQLite's -shm index and an empty -wal hold no data: they come
		// and go with connections (a read-only one leaves them behind,
		// the last writing one removes them) and readers write read
		// marks into the index. A -wal with pages is data and counts.
		if err == nil && p != dir && !strings.HasSuffix(p, "-shm") && !(strings.HasSuffix(p, "-wal") && fi.Size() == 0) {
			out = append(out, fmt.Sprintf("%s:%v:%d:%d", strings.TrimPrefix(p, dir), fi.Mode(), fi.Size(), fi.ModTime().UnixNano()))
		}
		return nil
	})
	return out
}

// TestBadInputPerCommand: malformed input for every command. Each gets a
// non-zero exit, a first stderr line that names the problem, at most one
// more line (the --help hint of a usage error), no file written or changed,
// no record changed, and no secret of the run in anything printed.
func TestBadInputPerCommand(t *testing.T) {
	w := newBadInputWorld(t)
	d := w.dir
	notJSON := writeFile(t, d, "notjson.json", "{not json")
	emptyFile := writeFile(t, d, "empty.txt", "")
	elevenWords := writeFile(t, d, "eleven.txt", strings.Join(strings.Fields(testMnemonic)[:11], " "))
	badIdentityFile := writeFile(t, d, "bad-identity.txt", badIdentity+"\n")
	wrongPw := writeFile(t, d, "wrong-password.txt", "not the password at all")
	ksRaw, _ := os.ReadFile(w.keystoreFile)
	truncatedKS := writeFile(t, d, "truncated-keystore.json", string(ksRaw[:len(ksRaw)/2]))
	otherKS := writeFile(t, d, "other-version.json", strings.Replace(string(ksRaw), `"version": 4`, `"version": 3`, 1))
	depRaw, _ := os.ReadFile(w.depositOK)
	badSig := writeFile(t, d, "bad-signature.json", flipSignature(string(depRaw)))
	notArray := writeFile(t, d, "object.json", `{"pubkey":"00"}`)
	writeFile(t, d, "existing-deposits.json", "do not replace me")
	// A directory holding another file under the name of the request's export.
	existingDir := filepath.Join(d, "taken")
	if err := os.MkdirAll(existingDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, existingDir, filepath.Base(w.depositOK), "do not replace me")
	nonEmpty := filepath.Join(d, "w3s-nonempty")
	if err := os.MkdirAll(nonEmpty, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, nonEmpty, "keep.txt", "x")
	unknownPK := strings.Repeat("ab", 48)
	missing := filepath.Join(d, "no-such-file")
	w3s := func() string { return filepath.Join(t.TempDir(), "w3s") }

	cases := []struct {
		name    string
		args    []string
		mention string
	}{
		// generate (the table in generate_test.go covers the request's
		// fields; these are the remaining flag and path errors)
		{"generate/positional argument", []string{"generate", "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--db", w.db, "extra"}, "unexpected argument"},
		{"generate/bad max-memory", []string{"generate", "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--db", w.db, "--max-memory", "lots"}, "max-memory"},
		{"generate/no chain", []string{"generate", "--count", "1", "--db", w.db}, "--chain"},
		{"generate/no count", []string{"generate", "--chain", "hoodi", "--db", w.db}, "--count"},
		{"generate/out is a file", []string{"generate", "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--db", w.db, "--out", w.pwFile, "--secret-format", "raw"}, "output directory"},
		{"generate/bad kdf", []string{"generate", "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--db", w.db, "--kdf", "argon2"}, "kdf"},
		{"generate/reused request id", []string{"generate", "--count", "2", "--chain", "hoodi", "--bls-withdrawal", "--db", w.db, "--out", t.TempDir(), "--secret-format", "raw", "--request-id", "bad-input"}, "different parameters"},

		// existing-mnemonic (TestExistingMnemonicBadInput covers the
		// deposit fields; these are the secret files)
		{"existing-mnemonic/missing mnemonic file", mnemonicArgs(w, "--mnemonic-file", missing), "mnemonic file"},
		{"existing-mnemonic/empty mnemonic file", mnemonicArgs(w, "--mnemonic-file", emptyFile), "12, 15, 18, 21 or 24 words"},
		{"existing-mnemonic/eleven words", mnemonicArgs(w, "--mnemonic-file", elevenWords), "got 11"},
		{"existing-mnemonic/missing passphrase file", mnemonicArgs(w, "--mnemonic-passphrase-file", missing), "passphrase file"},
		{"existing-mnemonic/no out", []string{"existing-mnemonic", "--mnemonic-file", w.mnemonicFile, "--count", "1", "--chain", "hoodi", "--keystore-password-file", w.pwFile}, "--out"},
		{"existing-mnemonic/mnemonic as password", mnemonicArgs(w, "--keystore-password-file", emptyFile), "12"},

		// new-mnemonic (tests/cli runs it on a terminal)
		{"new-mnemonic/non-interactive without mnemonic-out", []string{"new-mnemonic", "--count", "1", "--chain", "hoodi", "--keystore-password-file", w.pwFile, "--out", filepath.Join(d, "nm"), "--non-interactive"}, "--mnemonic-out"},
		{"new-mnemonic/no terminal", []string{"new-mnemonic", "--count", "1", "--chain", "hoodi", "--keystore-password-file", w.pwFile, "--out", filepath.Join(d, "nm")}, "terminal"},

		// backup
		{"backup/no out", []string{"backup", "--db", w.db}, "--out"},
		{"backup/store missing", []string{"backup", "--db", filepath.Join(missing, "x.db"), "--out", filepath.Join(d, "bk")}, "no store"},

		// export-deposits
		{"export-deposits/no selection", []string{"export-deposits", "--db", w.db, "--bls-withdrawal"}, "--request-id, --pubkey, --all or --export-id"},
		{"export-deposits/two selections", []string{"export-deposits", "--db", w.db, "--all", "--request-id", "bad-input", "--bls-withdrawal"}, "one of"},
		{"export-deposits/no target", []string{"export-deposits", "--db", w.db, "--all"}, "--withdrawal-address"},
		{"export-deposits/both targets", []string{"export-deposits", "--db", w.db, "--all", "--bls-withdrawal", "--withdrawal-address", "0x0f51bb10119727a7e5eA3538074fb341F56B09Ad"}, "not both"},
		{"export-deposits/other target", []string{"export-deposits", "--db", w.db, "--request-id", "bad-input", "--withdrawal-address", "0x0f51bb10119727a7e5eA3538074fb341F56B09Ad", "--out", filepath.Join(d, "t")}, "withdrawal credentials"},
		{"export-deposits/nothing to export", []string{"export-deposits", "--db", w.db, "--all", "--bls-withdrawal", "--out", filepath.Join(d, "y")}, "no deposit to hand out"},
		{"export-deposits/unknown export", []string{"export-deposits", "--db", w.db, "--export-id", "exp-nope", "--bls-withdrawal", "--out", filepath.Join(d, "u")}, "not found"},
		{"export-deposits/existing other file", []string{"export-deposits", "--db", w.db, "--request-id", "bad-input", "--bls-withdrawal", "--out", existingDir}, "other content"},
		{"export-deposits/store missing", []string{"export-deposits", "--db", filepath.Join(missing, "x.db"), "--all", "--bls-withdrawal", "--out", filepath.Join(d, "z")}, "store"},

		// retire
		{"retire/no pubkey", []string{"retire", "--db", w.db}, "--pubkey"},
		{"retire/malformed pubkey", []string{"retire", "--db", w.db, "--pubkey", "0x12"}, "48 bytes"},
		{"retire/unknown pubkey", []string{"retire", "--db", w.db, "--pubkey", unknownPK}, "not found"},

		// list
		{"list/bad status", []string{"list", "--db", w.db, "--status", "active"}, "--status"},
		{"list/positional argument", []string{"list", "--db", w.db, "extra"}, "unexpected argument"},
		{"list/store missing", []string{"list", "--db", filepath.Join(missing, "x.db")}, "store"},

		// decrypt
		{"decrypt/non-empty directory", []string{"decrypt", "--db", w.db, "--all", "--web3signer-dir", nonEmpty}, "not empty"},
		{"decrypt/unknown pubkey", []string{"decrypt", "--db", w.db, "--pubkey", unknownPK, "--web3signer-dir", w3s()}, "not found"},
		{"decrypt/malformed pubkey", []string{"decrypt", "--db", w.db, "--pubkey", "0x1234", "--web3signer-dir", w3s()}, "48 bytes"},
		{"decrypt/missing identity", []string{"decrypt", "--db", w.db, "--all", "--identity-file", missing, "--web3signer-dir", w3s()}, "identity file"},
		{"decrypt/malformed identity", []string{"decrypt", "--db", w.db, "--all", "--identity-file", badIdentityFile, "--web3signer-dir", w3s()}, "identity"},
		{"decrypt/pubkey and all", []string{"decrypt", "--db", w.db, "--all", "--pubkey", w.pubkey, "--web3signer-dir", w3s()}, "--pubkey or --all"},
		{"decrypt/neither pubkey nor all", []string{"decrypt", "--db", w.db, "--web3signer-dir", w3s()}, "--pubkey or --all"},
		{"decrypt/no dir", []string{"decrypt", "--db", w.db, "--all"}, "--web3signer-dir"},

		// verify-deposits
		{"verify-deposits/missing file", []string{"verify-deposits", missing}, "no such file"},
		{"verify-deposits/not JSON", []string{"verify-deposits", notJSON}, "notjson.json"},
		{"verify-deposits/not an array", []string{"verify-deposits", notArray}, "object.json"},
		{"verify-deposits/bad signature", []string{"verify-deposits", badSig, "--chain", "hoodi"}, "signature"},
		{"verify-deposits/unknown chain", []string{"verify-deposits", w.depositOK, "--chain", "goerli"}, "unknown network"},
		{"verify-deposits/two files", []string{"verify-deposits", w.depositOK, w.depositOK}, "exactly one FILE"},

		// verify-keystore
		{"verify-keystore/wrong password", []string{"verify-keystore", w.keystoreFile, "--password-file", wrongPw}, "wrong password"},
		{"verify-keystore/missing file", []string{"verify-keystore", missing, "--password-file", w.pwFile}, "no such file"},
		{"verify-keystore/missing password file", []string{"verify-keystore", w.keystoreFile, "--password-file", missing}, "password file"},
		{"verify-keystore/no password file", []string{"verify-keystore", w.keystoreFile}, "--password-file"},
		{"verify-keystore/malformed JSON", []string{"verify-keystore", truncatedKS, "--password-file", w.pwFile}, "malformed keystore"},
		{"verify-keystore/not a keystore", []string{"verify-keystore", notJSON, "--password-file", w.pwFile}, "malformed keystore"},
		{"verify-keystore/version 3", []string{"verify-keystore", otherKS, "--password-file", w.pwFile}, "version 3"},
	}
	cases = append(cases, opsBadInputCases(t, w)...)    // cmd_ops_test.go
	cases = append(cases, sealedOpsBadInputCases(w)...) // cmd_ops_sealed_test.go
	cases = append(cases, signerBadInputCases(t, w)...) // signer_badinput_test.go
	cases = append(cases, assignBadInputCases(w)...)    // cmd_assign_test.go
	seen := map[string]bool{}
	for _, c := range cases {
		seen[strings.SplitN(c.name, "/", 2)[0]] = true
		t.Run(c.name, func(t *testing.T) {
			before := listing(t, d)
			listBefore := runCLI(t, "list", "--db", w.db, "--json")
			r := runCLI(t, c.args...)
			if r.code == 0 {
				t.Fatalf("succeeded: %s", r.stdout)
			}
			lines := nonDebugLines(r.stderr)
			if len(lines) == 0 {
				t.Fatal("no error message")
			}
			if !strings.Contains(lines[0], c.mention) {
				t.Fatalf("first line %q does not mention %q (stderr %q)", lines[0], c.mention, r.stderr)
			}
			if len(lines) > 2 || (len(lines) == 2 && !strings.HasPrefix(lines[1], "Run 'ethkeygen ")) {
				t.Fatalf("more than a one-line error: %q", lines)
			}
			for _, s := range w.secrets {
				if strings.Contains(r.stdout+r.stderr, s) {
					t.Fatalf("output leaks a secret %q: %s", s, r.stderr)
				}
			}
			if after := listing(t, d); !slices.Equal(before, after) {
				t.Fatalf("files changed:\nbefore %v\nafter  %v", before, after)
			}
			if listAfter := runCLI(t, "list", "--db", w.db, "--json"); listAfter.stdout != listBefore.stdout {
				t.Fatalf("records changed:\n%s\n%s", listBefore.stdout, listAfter.stdout)
			}
		})
	}
	for _, c := range commands {
		if c.name != "generate-lambda" && !seen[c.name] {
			t.Errorf("command %s has no bad-input case", c.name)
		}
	}
}

// nonDebugLines drops the debug log lines (level=DEBUG) the tests turn on,
// and generate's notice of its request id, printed before any work starts.
func nonDebugLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if l != "" && !strings.Contains(l, "level=DEBUG") && !strings.HasPrefix(l, "request id ") {
			out = append(out, l)
		}
	}
	return out
}

// mnemonicArgs is a valid existing-mnemonic call with kv overriding or
// adding flags.
func mnemonicArgs(w *badInputWorld, kv ...string) []string {
	args := []string{"existing-mnemonic", "--mnemonic-file", w.mnemonicFile, "--count", "1", "--chain", "hoodi",
		"--keystore-password-file", w.pwFile, "--out", filepath.Join(w.dir, "em-out"), "--kdf", "pbkdf2"}
	for i := 0; i < len(kv); i += 2 {
		if j := slices.Index(args, kv[i]); j >= 0 {
			args[j+1] = kv[i+1]
		} else {
			args = append(args, kv[i], kv[i+1])
		}
	}
	return args
}

// flipSignature changes one hex digit in the middle of the first signature.
func flipSignature(file string) string {
	i := strings.Index(file, `"signature": "`)
	if i < 0 {
		return file
	}
	j := i + len(`"signature": "`) + 40
	c := byte('0')
	if file[j] == '0' {
		c = '1'
	}
	return file[:j] + string(c) + file[j+1:]
}
