package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/internal/backend"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
)

// secretForms lists the ways a secret could show up in text.
func secretForms(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return []string{string(b), hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)}
}

// mnemonicForms: every run of three consecutive words.
func mnemonicForms(m []byte) []string {
	words := strings.Fields(string(m))
	var out []string
	for i := 0; i+3 <= len(words); i++ {
		out = append(out, strings.Join(words[i:i+3], " "))
	}
	return out
}

// TestNoSecretLeaks runs generate, export and decrypt at debug log level and
// scans every byte they print and every file they write outside sealed
// blobs (the whole store file included) for the run's secrets.
func TestNoSecretLeaks(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	t.Setenv("ETHKEYGEN_HOME", home)
	t.Setenv("ETHKEYGEN_LOG_LEVEL", "debug")
	db := filepath.Join(dir, "ethkeygen.db")
	var transcript strings.Builder
	record := func(r result) {
		transcript.WriteString(r.stdout)
		transcript.WriteString(r.stderr)
	}
	for _, format := range []string{"keystore", "raw"} {
		r := runCLI(t, "generate", "--count", "3", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir, "--secret-format", format,
			"--kdf", "pbkdf2", "--request-id", "hygiene-"+format, "--keys-per-mnemonic", "2")
		if r.code != 0 {
			t.Fatal(r.stderr)
		}
		record(r)
	}
	if !strings.Contains(transcript.String(), "level=DEBUG") {
		t.Fatal("debug logging is not on: the scan would prove little")
	}
	r := runCLI(t, "export-deposits", "--db", db, "--request-id", "hygiene-raw", "--bls-withdrawal", "--out", filepath.Join(dir, "export"))
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	record(r)
	r = runCLI(t, "list", "--db", db, "--json")
	record(r)
	w3s := filepath.Join(dir, "w3s")
	r = runCLI(t, "decrypt", "--all", "--db", db, "--web3signer-dir", w3s)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	record(r)
	// A failing run logs its error too.
	record(runCLI(t, "decrypt", "--all", "--db", db, "--web3signer-dir", w3s))

	// Collect the run's secrets by opening every record.
	st, err := sqlitestore.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	cfg := backend.Config{KeyDir: home}
	opener, err := cfg.Opener(context.Background(), false, "")
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := cfg.GeneratorVerifier(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for rec, err := range st.Query(context.Background(), store.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		s, err := custody.NewOpener(st, opener, verifier).OpenRecord(context.Background(), rec)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secretForms(s.SigningKey().UnsafeBytes())...)
		secrets = append(secrets, secretForms(s.UnsafePassword())...)
		secrets = append(secrets, mnemonicForms(s.UnsafeMnemonic())...)
		s.Destroy()
	}
	st.Close()
	id, _ := os.ReadFile(filepath.Join(home, "identity.txt"))
	for _, line := range strings.Split(string(id), "\n") {
		if strings.HasPrefix(line, "AGE-SECRET-KEY-") {
			secrets = append(secrets, line)
		}
	}
	// The generator's signing key never leaves its file either.
	gk, err := os.ReadFile(filepath.Join(home, "generator.key"))
	if err != nil || len(strings.TrimSpace(string(gk))) < 32 {
		t.Fatalf("generator.key: %v", err)
	}
	secrets = append(secrets, strings.TrimSpace(string(gk)))
	if len(secrets) < 6*5 {
		t.Fatalf("only %d secret forms collected", len(secrets))
	}

	haystacks := map[string]string{"stdout+stderr+logs": transcript.String()}
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		switch {
		case p == filepath.Join(home, "identity.txt"), p == filepath.Join(home, "generator.key"):
			return nil // the decryption key and the generator's key themselves, by design
		case filepath.Dir(p) == w3s && strings.HasSuffix(p, ".password"):
			return nil // Web3Signer password files, the output of decrypt by design
		}
		b, _ := os.ReadFile(p)
		haystacks[p] = string(b)
		return nil
	})
	for name, text := range haystacks {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s contains a secret (%d chars)", name, len(s))
			}
		}
	}
	if len(haystacks) < 6 {
		t.Fatalf("scanned only %v", len(haystacks))
	}
}
