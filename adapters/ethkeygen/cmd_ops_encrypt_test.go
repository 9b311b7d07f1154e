package main

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/opscheck"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/ops"
)

// TestExitEncryptPasswordFile: --encrypt-password-file on the offline
// exit (the oracle's vector) and on the sealed exit: each file keeps its
// name, decrypts (ops) to the exit signed without encryption, is refused
// with a wrong password, and the Node checker decrypts it with
// @chainsafe/bls-keystore as Lido's ejector does, with the password file's
// newline, and verifies it. A short password and a missing file are
// refused with one line and no file; the password never reaches stdout or
// stderr.
func TestExitEncryptPasswordFile(t *testing.T) {
	dir := t.TempDir()
	const pw = "ejector messages password"
	pwFile := writeFile(t, dir, "ejector-password.txt", pw+"\n")
	mf := writeFile(t, dir, "mnemonic.txt", sisterMnemonic+"\n")
	v := readOpsVector(t, "oracle_sister_hoodi_exit.json")
	out := filepath.Join(dir, "exits")
	r := mustRun(t, "exit-transaction-mnemonic", "--mnemonic-file", mf, "--chain", "hoodi", "--start-index", "0",
		"--validator-indices", "1", "--epoch", "1234", "--out", out, "--encrypt-password-file", pwFile)
	for _, s := range []string{r.stdout, r.stderr} {
		if strings.Contains(s, pw) {
			t.Fatal("the password was printed")
		}
	}
	_, b := onlyFile(t, out, `^signed_exit_transaction-1-\d+\.json$`)
	e, err := ops.DecryptExitFile(b, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	if plain, _ := ops.MarshalExitFile(e); string(plain) != v.EthstakerFile {
		t.Fatalf("decrypted exit\n got %s\nwant %s", plain, v.EthstakerFile)
	}
	if _, err := ops.DecryptExitFile(b, []byte("another password!")); !errors.Is(err, keystore.ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	pub, _ := hex.DecodeString(v.SigningPubkey[2:])
	items := []opscheck.Item{opscheck.EncryptedExit(b, pw+"\n", pub, depositdata.Hoodi)}

	// The sealed exit: a generated, exported key.
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	g := generateJSON(t, "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir,
		"--secret-format", "raw", "--request-id", "enc")
	mustRun(t, "export-deposits", "--request-id", "enc", "--bls-withdrawal", "--db", db, "--out", filepath.Join(dir, "exp"))
	pk := pubkeysOf(g)[0]
	sout := filepath.Join(dir, "sealed-exits")
	mustRun(t, "exit", "--pubkey", pk, "--validator-index", "77", "--out", sout, "--db", db, "--encrypt-password-file", pwFile)
	_, sb := onlyFile(t, sout, `^signed_exit_transaction-77-\d+\.json$`)
	se, err := ops.DecryptExitFile(sb, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	spub, _ := hex.DecodeString(pk)
	if err := ops.VerifyExit(se, spub, depositdata.Hoodi); err != nil || se.Message.ValidatorIndex != 77 {
		t.Fatalf("sealed encrypted exit: %v %+v", err, se.Message)
	}
	if st := listJSON(t, "--db", db); st[pk].Status != "exit-signed" {
		t.Fatalf("0x%s is %s after its encrypted exit", pk, st[pk].Status)
	}
	items = append(items, opscheck.EncryptedExit(sb, pw+"\n", spub, depositdata.Hoodi))
	opscheck.RequireValid(t, items)

	short := writeFile(t, dir, "short.txt", "too short\n")
	bad := filepath.Join(dir, "refused")
	refused(t, bad, 1, "at least 12", "exit-transaction-mnemonic", "--mnemonic-file", mf, "--chain", "hoodi", "--start-index", "0",
		"--validator-indices", "1", "--out", bad, "--encrypt-password-file", short)
	refused(t, bad, 1, "password file", "exit", "--pubkey", pk, "--validator-index", "77", "--out", bad, "--db", db,
		"--encrypt-password-file", filepath.Join(dir, "missing.txt"))
	if _, err := os.Stat(bad); err == nil {
		if entries, _ := os.ReadDir(bad); len(entries) != 0 {
			t.Fatalf("refusals left %v", entries)
		}
	}
}
