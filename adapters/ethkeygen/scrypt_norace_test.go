//go:build !race

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	keystorev4 "github.com/wealdtech/go-eth2-wallet-encryptor-keystorev4"
)

// The tests here run real scrypt (n = 2^18) many times and check what the
// outputs hold, not how goroutines meet: under the race detector scrypt is
// about six times slower, so scripts/test.sh runs them in its pass without
// -race (the same worker pool runs under -race in
// TestExistingMnemonicMatchesPeerCLI).

// TestExistingMnemonicEightScrypt is the acceptance run: 8
// validators with the default scrypt KDF; every deposit verifies, the
// keystores carry the right paths and pubkeys, and an independent EIP-2335
// implementation opens them.
func TestExistingMnemonicEightScrypt(t *testing.T) {
	dir := t.TempDir()
	mn := writeFile(t, dir, "mnemonic.txt", testMnemonic+"\n")
	pw := writeFile(t, dir, "password.txt", "a long enough password\n")
	out := filepath.Join(dir, "validator_keys")
	r := runCLI(t, "existing-mnemonic", "--mnemonic-file", mn, "--start-index", "0", "--count", "8", "--chain", "mainnet",
		"--keystore-password-file", pw, "--out", out, "--json")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	var res struct {
		DepositData string `json:"deposit_data"`
		Validators  []struct {
			Index    int    `json:"index"`
			Pubkey   string `json:"pubkey"`
			Keystore string `json:"keystore"`
		} `json:"validators"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "verify-deposits", res.DepositData, "--chain", "mainnet"); r.code != 0 || !strings.Contains(r.stdout, "8 deposits valid") {
		t.Fatalf("%+v", r)
	}
	// The first two equal ethstaker-deposit-cli's validators 0 and 1.
	peer, _ := os.ReadFile("../../testdata/vectors/peer-cli-outputs/lighthouse_ethstaker_1.3.0/mainnet_first_0_count_2_prefix_0x00_eth1_false.json")
	for i, v := range res.Validators {
		if v.Index != i || !strings.Contains(filepath.Base(v.Keystore), "keystore-m_12381_3600_"+strconv.Itoa(i)+"_0_0-") {
			t.Fatalf("validator %d: %+v", i, v)
		}
		if i < 2 && !strings.Contains(string(peer), v.Pubkey) {
			t.Fatalf("validator %d differs from the peer CLI's", i)
		}
		if i%4 != 0 {
			continue // keystorev4 runs scrypt too: check two of the eight
		}
		raw, _ := os.ReadFile(v.Keystore)
		var doc struct {
			Crypto map[string]any `json:"crypto"`
		}
		_ = json.Unmarshal(raw, &doc)
		if !strings.Contains(string(raw), `"function": "scrypt", "params": {"dklen": 32, "n": 262144, "r": 8, "p": 1`) {
			t.Fatal("not the default scrypt parameters")
		}
		if _, err := keystorev4.New().Decrypt(doc.Crypto, "a long enough password"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestProgressOnTerminalOnly: a run longer than a second shows
// "validators N/N" on a terminal's stderr, and nothing when stderr is not a
// terminal (scripts read clean output).
func TestProgressOnTerminalOnly(t *testing.T) {
	dir := t.TempDir()
	mn := writeFile(t, dir, "mnemonic.txt", testMnemonic)
	pw := writeFile(t, dir, "password.txt", "a long enough password")
	for _, terminal := range []bool{true, false} {
		var out, errb bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: os.Getenv, isTerminal: terminal}
		code := run(context.Background(), e, []string{"existing-mnemonic", "--mnemonic-file", mn, "--count", "4", "--chain", "hoodi",
			"--keystore-password-file", pw, "--out", filepath.Join(dir, "out", map[bool]string{true: "tty", false: "pipe"}[terminal]),
			"--max-memory", "300MiB"})
		if code != 0 {
			t.Fatal(errb.String())
		}
		shown := strings.Contains(errb.String(), "validators 4/4")
		if shown != terminal {
			t.Fatalf("terminal=%v: progress shown=%v: %q", terminal, shown, errb.String())
		}
	}
}
