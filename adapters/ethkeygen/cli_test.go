package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	keystorev4 "github.com/wealdtech/go-eth2-wallet-encryptor-keystorev4"
)

const testMnemonic = "test test test test test test test test test test test waste"
const testAddress = "0x0f51bb10119727a7e5eA3538074fb341F56B09Ad"

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: os.Getenv}
	code := run(context.Background(), e, args)
	return result{code, out.String(), errb.String()}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExistingMnemonicMatchesPeerCLI: the deposit file for the lighthouse
// vector mnemonic equals ethstaker-deposit-cli 1.3.0's byte for byte, except
// deposit_cli_version, and every keystore decrypts with wealdtech's
// independent EIP-2335 implementation to the key of the deposit's pubkey.
func TestExistingMnemonicMatchesPeerCLI(t *testing.T) {
	for _, c := range []struct {
		peer, chain  string
		start, count string
		extra        []string
	}{
		{"mainnet_first_99_count_2_prefix_0x00_eth1_false.json", "mainnet", "99", "2", nil},
		{"hoodi_first_0_count_2_prefix_0x01_eth1_true.json", "hoodi", "0", "2", []string{"--withdrawal-address", testAddress}},
		{"hoodi_first_0_count_2_prefix_0x02_eth1_true.json", "hoodi", "0", "2", []string{"--withdrawal-address", testAddress, "--compounding"}},
	} {
		t.Run(c.peer, func(t *testing.T) {
			dir := t.TempDir()
			mn := writeFile(t, dir, "mnemonic.txt", testMnemonic+"\r\n")
			pw := writeFile(t, dir, "password.txt", "a long enough password\n")
			out := filepath.Join(dir, "out")
			args := append([]string{"existing-mnemonic", "--mnemonic-file", mn, "--start-index", c.start, "--count", c.count,
				"--chain", c.chain, "--keystore-password-file", pw, "--out", out, "--kdf", "pbkdf2", "--json"}, c.extra...)
			r := runCLI(t, args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var res struct {
				DepositData string `json:"deposit_data"`
				Validators  []struct {
					Pubkey   string `json:"pubkey"`
					Keystore string `json:"keystore"`
				} `json:"validators"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatal(err, r.stdout)
			}
			got, _ := os.ReadFile(res.DepositData)
			want, _ := os.ReadFile(filepath.Join("../../testdata/vectors/peer-cli-outputs/lighthouse_ethstaker_1.3.0", c.peer))
			strip := regexp.MustCompile(`"deposit_cli_version": "[^"]*"`)
			if !bytes.Equal(strip.ReplaceAll(got, nil), strip.ReplaceAll(want, nil)) {
				t.Fatalf("deposit file differs:\n got %s\nwant %s", got, want)
			}
			if !strings.Contains(string(got), `"deposit_cli_version": "1.0.0"`) {
				t.Fatal("deposit_cli_version must be a version the Launchpad accepts")
			}
			if !regexp.MustCompile(`^deposit_data-\d{10}\.json$`).MatchString(filepath.Base(res.DepositData)) {
				t.Fatal(res.DepositData)
			}
			for i, v := range res.Validators {
				if !regexp.MustCompile(`^keystore-m_12381_3600_\d+_0_0-\d{10}\.json$`).MatchString(filepath.Base(v.Keystore)) {
					t.Fatal(v.Keystore)
				}
				st, _ := os.Stat(v.Keystore)
				if st.Mode().Perm() != 0o600 {
					t.Fatalf("keystore mode %v", st.Mode())
				}
				raw, _ := os.ReadFile(v.Keystore)
				var doc struct {
					Crypto map[string]any `json:"crypto"`
					Pubkey string         `json:"pubkey"`
				}
				_ = json.Unmarshal(raw, &doc)
				sk, err := keystorev4.New().Decrypt(doc.Crypto, "a long enough password")
				if err != nil || len(sk) != 32 {
					t.Fatalf("keystorev4: %v", err)
				}
				if doc.Pubkey != v.Pubkey || !strings.Contains(string(want), v.Pubkey) {
					t.Fatalf("validator %d pubkey %s", i, v.Pubkey)
				}
			}
			if r := runCLI(t, "verify-deposits", res.DepositData, "--chain", c.chain); r.code != 0 {
				t.Fatal(r.stderr)
			}
			if r := runCLI(t, "verify-keystore", res.Validators[0].Keystore, "--password-file", pw); r.code != 0 || !strings.Contains(r.stdout, res.Validators[0].Pubkey) {
				t.Fatal(r.stderr)
			}
			if r := runCLI(t, "verify-deposits", res.DepositData, "--chain", "sepolia"); r.code != 1 || !strings.Contains(r.stderr, "fork_version") {
				t.Fatalf("wrong network accepted: %+v", r)
			}
		})
	}
}

func TestExistingMnemonicBadInput(t *testing.T) {
	dir := t.TempDir()
	mn := writeFile(t, dir, "mnemonic.txt", testMnemonic)
	pw := writeFile(t, dir, "password.txt", "a long enough password")
	short := writeFile(t, dir, "short.txt", "short")
	badWord := writeFile(t, dir, "badword.txt", strings.Replace(testMnemonic, "waste", "wxstex", 1))
	badSum := writeFile(t, dir, "badsum.txt", strings.Replace(testMnemonic, "waste", "test", 1))
	notDir := writeFile(t, dir, "file", "")
	base := func(out string) []string {
		return []string{"existing-mnemonic", "--mnemonic-file", mn, "--count", "2", "--chain", "hoodi", "--keystore-password-file", pw, "--out", out, "--kdf", "pbkdf2"}
	}
	with := func(out string, kv ...string) []string {
		args := base(out)
		for i := 0; i < len(kv); i += 2 {
			replaced := false
			for j := range args {
				if args[j] == kv[i] {
					args[j+1], replaced = kv[i+1], true
				}
			}
			if !replaced {
				args = append(args, kv[i], kv[i+1])
			}
		}
		return args
	}
	cases := []struct {
		name    string
		args    func(out string) []string
		mention string
	}{
		{"unknown word", func(o string) []string { return with(o, "--mnemonic-file", badWord) }, "word 12"},
		{"bad checksum", func(o string) []string { return with(o, "--mnemonic-file", badSum) }, "checksum"},
		{"unknown chain", func(o string) []string { return with(o, "--chain", "goerli") }, "unknown network"},
		{"malformed address", func(o string) []string { return with(o, "--withdrawal-address", "0x1234") }, "invalid execution address"},
		{"wrong checksum address", func(o string) []string {
			return with(o, "--withdrawal-address", strings.Replace(testAddress, "eA", "Ea", 1))
		}, "EIP-55"},
		{"lowercase address", func(o string) []string { return with(o, "--withdrawal-address", strings.ToLower(testAddress)) }, "checksum"},
		{"amount below 1 ETH", func(o string) []string { return with(o, "--amount-gwei", "999999999") }, "amount"},
		{"amount above 32 ETH", func(o string) []string { return with(o, "--amount-gwei", "32000000001") }, "amount"},
		{"compounding above 2048 ETH", func(o string) []string {
			return append(with(o, "--withdrawal-address", testAddress, "--amount-gwei", "2048000000001"), "--compounding")
		}, "amount"},
		{"compounding without address", func(o string) []string { return append(base(o), "--compounding") }, "withdrawal-address"},
		{"count 0", func(o string) []string { return with(o, "--count", "0") }, "--count"},
		{"count absurd", func(o string) []string { return with(o, "--count", "100000000") }, "--count"},
		{"start index too big", func(o string) []string { return with(o, "--start-index", "4294967296") }, "start-index"},
		{"unwritable out", func(o string) []string { return with(o, "--out", filepath.Join(notDir, "sub")) }, "output directory"},
		{"missing password file", func(o string) []string { return with(o, "--keystore-password-file", filepath.Join(dir, "nope")) }, "password file"},
		{"short password", func(o string) []string { return with(o, "--keystore-password-file", short) }, "at least 12"},
		{"bad kdf", func(o string) []string { return with(o, "--kdf", "argon2") }, "kdf"},
		{"no chain", func(o string) []string {
			return []string{"existing-mnemonic", "--mnemonic-file", mn, "--count", "2", "--keystore-password-file", pw, "--out", o}
		}, "--chain"},
		{"bad fork version", func(o string) []string { return append(base(o), "--fork-version", "0x1234") }, "fork version"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			r := runCLI(t, c.args(out)...)
			if r.code == 0 {
				t.Fatalf("succeeded: %s", r.stdout)
			}
			first := strings.SplitN(r.stderr, "\n", 2)[0]
			if !strings.Contains(first, c.mention) {
				t.Fatalf("error %q does not mention %q", first, c.mention)
			}
			for _, secret := range []string{"test test", "a long enough password"} {
				if strings.Contains(r.stderr+r.stdout, secret) {
					t.Fatalf("output leaks a secret: %s", r.stderr)
				}
			}
			if entries, err := os.ReadDir(out); err == nil && len(entries) != 0 {
				t.Fatalf("left files: %v", entries)
			}
		})
	}
}

func TestHelpEverywhere(t *testing.T) {
	for _, c := range commands {
		r := runCLI(t, c.name, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Usage: ethkeygen "+c.name) || !strings.Contains(r.stdout, "--") {
			t.Errorf("%s --help: %+v", c.name, r)
		}
	}
	if r := runCLI(t, "--help"); r.code != 0 || !strings.Contains(r.stdout, "existing-mnemonic") {
		t.Fatal(r)
	}
	if r := runCLI(t, "frobnicate"); r.code != 2 {
		t.Fatal(r)
	}
	if r := runCLI(t, "existing-mnemonic", "--no-such-flag"); r.code != 2 || strings.Count(r.stderr, "\n") > 2 {
		t.Fatal(r)
	}
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
