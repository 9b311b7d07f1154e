package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/opscheck"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
)

// The mnemonic of the consensus-specs / ethstaker-deposit-cli BLS change
// test, which the ops vectors (ops/testdata) are made from.
const sisterMnemonic = "sister protect peanut hill ready work profit fit wish want small inflict flip member tail between sick setup bright duck morning sell paper worry"

type opsVector struct {
	Network            string `json:"network"`
	ToExecutionAddress string `json:"to_execution_address"`
	ValidatorIndex     uint64 `json:"validator_index"`
	Epoch              uint64 `json:"epoch"`
	SigningPubkey      string `json:"signing_pubkey"`
	Entries            []struct {
		BLSWithdrawalCredentials string `json:"bls_withdrawal_credentials"`
		ValidatorIndex           uint64 `json:"validator_index"`
	} `json:"entries"`
	EthstakerFile string `json:"ethstaker_file"`
}

func readOpsVector(t *testing.T, name string) opsVector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "ops", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var v opsVector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// onlyFile is the one file in dir, which must match pattern.
func onlyFile(t *testing.T, dir, pattern string) (string, []byte) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !regexp.MustCompile(pattern).MatchString(entries[0].Name()) {
		t.Fatalf("files in %s: %v, want one matching %s", dir, entries, pattern)
	}
	b, err := os.ReadFile(filepath.Join(dir, entries[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	return entries[0].Name(), b
}

func mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := runCLI(t, args...)
	if r.code != 0 {
		t.Fatalf("ethkeygen %s: exit %d: %s", args[0], r.code, r.stderr)
	}
	return r
}

// cliExits and cliBLSChanges gather the files the CLI tests write, for
// TestOpsFilesIndependentCheck.
type cliOutputs struct {
	items []opscheck.Item
}

func (o *cliOutputs) exit(t *testing.T, file []byte, n depositdata.Network, pubkey string) {
	o.items = append(o.items, opscheck.Raw(t, "exit", file, n, pubkey))
}

func (o *cliOutputs) blsChanges(t *testing.T, file []byte, n depositdata.Network) {
	var entries []json.RawMessage
	if err := json.Unmarshal(file, &entries); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		o.items = append(o.items, opscheck.Raw(t, "bls_change", e, n, ""))
	}
}

func network(t *testing.T, name string) depositdata.Network {
	n, err := depositdata.NetworkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// testExitMnemonic: exit-transaction-mnemonic writes exactly the bytes
// ethstaker-deposit-cli writes (the oracle's ethstaker_file), under its name.
func testExitMnemonic(t *testing.T, o *cliOutputs) {
	dir := t.TempDir()
	mf := writeFile(t, dir, "mnemonic.txt", sisterMnemonic+"\n")
	for _, f := range []string{"oracle_sister_mainnet_exit.json", "oracle_sister_hoodi_exit.json"} {
		t.Run(f, func(t *testing.T) {
			v := readOpsVector(t, f)
			out := filepath.Join(t.TempDir(), "exits")
			mustRun(t, "exit-transaction-mnemonic", "--mnemonic-file", mf, "--chain", v.Network, "--start-index", "0",
				"--validator-indices", "1", "--epoch", "1234", "--out", out)
			_, b := onlyFile(t, out, `^signed_exit_transaction-1-\d+\.json$`)
			if string(b) != v.EthstakerFile {
				t.Fatalf("exit file\n got %s\nwant %s", b, v.EthstakerFile)
			}
			o.exit(t, b, network(t, v.Network), v.SigningPubkey)
		})
	}
	// Several validators; key start+k signs for the k-th index.
	out := filepath.Join(t.TempDir(), "exits")
	r := mustRun(t, "exit-transaction-mnemonic", "--mnemonic-file", mf, "--chain", "hoodi", "--start-index", "3",
		"--validator-indices", "10, 20 30", "--out", out, "--json")
	var res struct {
		Exits []struct {
			ValidatorIndex uint64 `json:"validator_index"`
			Pubkey, File   string
		} `json:"exits"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res.Exits) != 3 {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	m, _ := keygen.ParseMnemonic(sisterMnemonic)
	seed := m.Seed("")
	for k, x := range res.Exits {
		key, err := keygen.DeriveKey(seed, keygen.SigningPath(uint32(3+k)))
		if err != nil {
			t.Fatal(err)
		}
		if want := "0x" + hexOf(key.PublicKey()); x.Pubkey != want || x.ValidatorIndex != uint64(10*(k+1)) {
			t.Errorf("exit %d: %+v, want pubkey %s", k, x, want)
		}
		b, err := os.ReadFile(x.File)
		if err != nil {
			t.Fatal(err)
		}
		o.exit(t, b, depositdata.Hoodi, x.Pubkey)
	}
}

// testExitKeystore: exit-transaction-keystore with a keystore of the
// oracle's key writes the oracle's file.
func testExitKeystore(t *testing.T, o *cliOutputs) {
	v := readOpsVector(t, "oracle_sister_mainnet_exit.json")
	m, _ := keygen.ParseMnemonic(sisterMnemonic)
	key, err := keygen.DeriveKey(m.Seed(""), keygen.SigningPath(0))
	if err != nil {
		t.Fatal(err)
	}
	const pw = "an exit keystore password"
	ks, err := keystore.Encrypt(rand.Reader, key.UnsafeBytes(), []byte(pw), keystore.WithKDF(keystore.PBKDF2),
		keystore.WithInsecureCost(t, 16), keystore.WithPubkey(key.PublicKey()), keystore.WithPath(keygen.SigningPath(0)))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := ks.Marshal()
	dir := t.TempDir()
	ksFile := writeFile(t, dir, "keystore.json", string(raw))
	pwFile := writeFile(t, dir, "pw.txt", pw+"\n")
	out := filepath.Join(dir, "out")
	mustRun(t, "exit-transaction-keystore", "--keystore", ksFile, "--keystore-password-file", pwFile, "--chain", "mainnet",
		"--validator-index", "1", "--epoch", "1234", "--out", out)
	_, b := onlyFile(t, out, `^signed_exit_transaction-1-\d+\.json$`)
	if string(b) != v.EthstakerFile {
		t.Fatalf("exit file\n got %s\nwant %s", b, v.EthstakerFile)
	}
	o.exit(t, b, depositdata.Mainnet, v.SigningPubkey)
}

// testBLSChange: generate-bls-to-execution-change writes ethstaker-deposit-cli's
// file byte for byte, except deposit_cli_version (the tool's own version).
func testBLSChange(t *testing.T, o *cliOutputs) {
	dir := t.TempDir()
	mf := writeFile(t, dir, "mnemonic.txt", sisterMnemonic+"\n")
	for _, f := range []string{"oracle_sister_mainnet_bls_change.json", "oracle_sister_hoodi_bls_change.json"} {
		t.Run(f, func(t *testing.T) {
			v := readOpsVector(t, f)
			var idx, creds []string
			for _, e := range v.Entries {
				idx = append(idx, opscheck.Itoa(e.ValidatorIndex))
				creds = append(creds, e.BLSWithdrawalCredentials)
			}
			out := filepath.Join(t.TempDir(), "bls")
			mustRun(t, "generate-bls-to-execution-change", "--mnemonic-file", mf, "--chain", v.Network, "--start-index", "0",
				"--validator-indices", strings.Join(idx, ","), "--bls-withdrawal-credentials-list", strings.Join(creds, ","),
				"--withdrawal-address", v.ToExecutionAddress, "--out", out)
			_, b := onlyFile(t, out, `^bls_to_execution_change-\d+\.json$`)
			want := strings.ReplaceAll(v.EthstakerFile, `"deposit_cli_version": "1.2.2"`, `"deposit_cli_version": "`+depositdata.DepositCLIVersion+`"`)
			if string(b) != want {
				t.Fatalf("BLS change file\n got %s\nwant %s", b, want)
			}
			o.blsChanges(t, b, network(t, v.Network))
		})
	}
}

// testDevnet: a devnet given by its three constants.
func testDevnet(t *testing.T, o *cliOutputs) {
	dir := t.TempDir()
	mf := writeFile(t, dir, "mnemonic.txt", sisterMnemonic)
	dev, _ := depositdata.CustomNetwork("mydevnet", "0x10000038")
	dev, err := dev.WithChainRoots("0x40000038", "0x270d43e74ce340de4bca2b1936beca0f4f5408d9e78aec4850920baf659d5b69")
	if err != nil {
		t.Fatal(err)
	}
	devFlags := []string{"--chain", "mydevnet", "--genesis-fork-version", "0x10000038", "--capella-fork-version", "0x40000038",
		"--genesis-validators-root", "0x270d43e74ce340de4bca2b1936beca0f4f5408d9e78aec4850920baf659d5b69"}
	out := filepath.Join(dir, "exits")
	r := mustRun(t, append([]string{"exit-transaction-mnemonic", "--mnemonic-file", mf, "--validator-indices", "5", "--epoch", "7", "--out", out, "--json"}, devFlags...)...)
	var res struct {
		Exits []struct{ Pubkey, File string } `json:"exits"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res.Exits) != 1 {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	b, _ := os.ReadFile(res.Exits[0].File)
	o.exit(t, b, dev, res.Exits[0].Pubkey)

	m, _ := keygen.ParseMnemonic(sisterMnemonic)
	wk, _ := keygen.DeriveKey(m.Seed(""), keygen.WithdrawalPath(0))
	creds := depositdata.BLSCredentials(wk.PublicKey())
	out = filepath.Join(dir, "bls")
	mustRun(t, append([]string{"generate-bls-to-execution-change", "--mnemonic-file", mf, "--validator-indices", "5",
		"--bls-withdrawal-credentials-list", "0x" + hexOf(creds[:]), "--withdrawal-address", testAddress, "--out", out}, devFlags...)...)
	_, b = onlyFile(t, out, `^bls_to_execution_change-\d+\.json$`)
	o.blsChanges(t, b, dev)
}

// TestOpsCommands runs the offline exit and BLS change commands against the
// vectors, then has the independent checker (internal/opscheck: Node,
// @chainsafe/ssz + @noble/curves) verify every file they wrote, and refuse
// each under the wrong domain (an exit under the genesis fork version).
func TestOpsCommands(t *testing.T) {
	var o cliOutputs
	t.Run("exit-transaction-mnemonic", func(t *testing.T) { testExitMnemonic(t, &o) })
	t.Run("exit-transaction-keystore", func(t *testing.T) { testExitKeystore(t, &o) })
	t.Run("generate-bls-to-execution-change", func(t *testing.T) { testBLSChange(t, &o) })
	t.Run("devnet", func(t *testing.T) { testDevnet(t, &o) })
	if t.Failed() {
		return
	}
	if len(o.items) != 12 {
		t.Fatalf("%d messages written, want 12", len(o.items))
	}
	opscheck.RequireValid(t, o.items)
}

// opsBadInputCases are the cases of TestBadInputPerCommand for the offline
// exit and BLS change commands: each is refused with one line, a non-zero
// exit and no file.
func opsBadInputCases(t *testing.T, w *badInputWorld) []struct {
	name    string
	args    []string
	mention string
} {
	d := w.dir
	m, _ := keygen.ParseMnemonic(testMnemonic)
	seed := m.Seed("")
	wk0, _ := keygen.DeriveKey(seed, keygen.WithdrawalPath(0))
	wk1, _ := keygen.DeriveKey(seed, keygen.WithdrawalPath(1))
	c0, c1 := depositdata.BLSCredentials(wk0.PublicKey()), depositdata.BLSCredentials(wk1.PublicKey())
	cred0, cred1 := "0x"+hexOf(c0[:]), "0x"+hexOf(c1[:])
	addr, _ := depositdata.ParseAddress(testAddress, false)
	c01 := depositdata.ExecutionCredentials(addr, false)
	c02 := depositdata.ExecutionCredentials(addr, true)
	out := filepath.Join(d, "ops-out")
	exitArgs := func(kv ...string) []string {
		return withFlags([]string{"exit-transaction-mnemonic", "--mnemonic-file", w.mnemonicFile, "--chain", "hoodi",
			"--start-index", "0", "--validator-indices", "1", "--out", out}, kv...)
	}
	blsArgs := func(kv ...string) []string {
		return withFlags([]string{"generate-bls-to-execution-change", "--mnemonic-file", w.mnemonicFile, "--chain", "hoodi",
			"--start-index", "0", "--validator-indices", "1", "--bls-withdrawal-credentials-list", cred0,
			"--withdrawal-address", testAddress, "--out", out}, kv...)
	}
	ksArgs := func(kv ...string) []string {
		return withFlags([]string{"exit-transaction-keystore", "--keystore", w.keystoreFile, "--keystore-password-file", w.pwFile,
			"--chain", "hoodi", "--validator-index", "1", "--out", out}, kv...)
	}
	return []struct {
		name    string
		args    []string
		mention string
	}{
		{"exit-transaction-mnemonic/negative epoch", exitArgs("--epoch", "-1"), "--epoch"},
		{"exit-transaction-mnemonic/absurd epoch", exitArgs("--epoch", "18446744073709551615"), "epoch"},
		{"exit-transaction-mnemonic/epoch not a number", exitArgs("--epoch", "soon"), "--epoch"},
		{"exit-transaction-mnemonic/unknown network", exitArgs("--chain", "goerli"), "unknown network"},
		{"exit-transaction-mnemonic/devnet without roots", exitArgs("--chain", "dev", "--genesis-fork-version", "0x10000038"), "--capella-fork-version"},
		{"exit-transaction-mnemonic/bad genesis validators root", exitArgs("--chain", "dev", "--genesis-fork-version", "0x10000038",
			"--capella-fork-version", "0x40000038", "--genesis-validators-root", "0x1234"), "genesis validators root"},
		{"exit-transaction-mnemonic/wrong roots for a known network", exitArgs("--chain", "mainnet", "--genesis-fork-version", "0x00000000",
			"--capella-fork-version", "0x40000038", "--genesis-validators-root", "0x"+strings.Repeat("11", 32)), "mainnet has Capella fork version"},
		{"exit-transaction-mnemonic/no chain", withoutFlag(exitArgs(), "--chain"), "--chain"},
		{"exit-transaction-mnemonic/bad index", exitArgs("--validator-indices", "1,x"), "entry 2"},
		{"exit-transaction-mnemonic/index past the registry", exitArgs("--validator-indices", "1099511627776"), "validator index"},
		{"exit-transaction-mnemonic/repeated index", exitArgs("--validator-indices", "1,1"), "twice"},
		{"exit-transaction-mnemonic/empty index entry", exitArgs("--validator-indices", "1,,2"), "entry 2 is empty"},
		{"exit-transaction-mnemonic/no indices", withoutFlag(exitArgs(), "--validator-indices"), "--validator-indices"},
		{"exit-transaction-mnemonic/start index too far", exitArgs("--start-index", "4294967295", "--validator-indices", "1,2"), "--start-index"},
		{"exit-transaction-mnemonic/missing mnemonic file", exitArgs("--mnemonic-file", filepath.Join(d, "none")), "mnemonic file"},
		{"exit-transaction-mnemonic/out is a file", exitArgs("--out", w.pwFile), "output directory"},

		{"exit-transaction-keystore/wrong password", ksArgs("--keystore-password-file", w.mnemonicFile), "wrong password"},
		{"exit-transaction-keystore/two indices", ksArgs("--validator-index", "1,2"), "one index"},
		{"exit-transaction-keystore/no index", withoutFlag(ksArgs(), "--validator-index"), "--validator-index"},
		{"exit-transaction-keystore/negative epoch", ksArgs("--epoch", "-5"), "--epoch"},
		{"exit-transaction-keystore/missing keystore", ksArgs("--keystore", filepath.Join(d, "none")), "keystore"},

		{"generate-bls-to-execution-change/0x01 credentials", blsArgs("--bls-withdrawal-credentials-list", "0x"+hexOf(c01[:])), "only 0x00"},
		{"generate-bls-to-execution-change/0x02 credentials", blsArgs("--bls-withdrawal-credentials-list", "0x"+hexOf(c02[:])), "only 0x00"},
		{"generate-bls-to-execution-change/credentials of another key", blsArgs("--bls-withdrawal-credentials-list", cred1), "not those of withdrawal key"},
		{"generate-bls-to-execution-change/second credentials wrong", blsArgs("--validator-indices", "1,2", "--bls-withdrawal-credentials-list", cred0+","+cred0), "validator 2"},
		{"generate-bls-to-execution-change/more indices than credentials", blsArgs("--validator-indices", "1,2"), "has 2 entries but"},
		{"generate-bls-to-execution-change/more credentials than indices", blsArgs("--bls-withdrawal-credentials-list", cred0+","+cred1), "has 1 entries but"},
		{"generate-bls-to-execution-change/credentials not hex", blsArgs("--bls-withdrawal-credentials-list", "0x00zz"), "32 bytes of hex"},
		{"generate-bls-to-execution-change/bad checksum", blsArgs("--withdrawal-address", strings.Replace(testAddress, "eA", "ea", 1)), "EIP-55"},
		{"generate-bls-to-execution-change/lowercase address", blsArgs("--withdrawal-address", strings.ToLower(testAddress)), "no EIP-55 checksum"},
		{"generate-bls-to-execution-change/no address", withoutFlag(blsArgs(), "--withdrawal-address"), "--withdrawal-address"},
		{"generate-bls-to-execution-change/unknown network", blsArgs("--chain", "prater"), "unknown network"},
		{"generate-bls-to-execution-change/devnet without roots", blsArgs("--chain", "dev", "--genesis-fork-version", "0x10000038", "--capella-fork-version", "0x40000038"), "--genesis-validators-root"},
	}
}

// withFlags sets or adds flags (flag, value pairs) in args.
func withFlags(args []string, kv ...string) []string {
	args = append([]string(nil), args...)
	for i := 0; i < len(kv); i += 2 {
		found := false
		for j := 0; j+1 < len(args); j++ {
			if args[j] == kv[i] {
				args[j+1], found = kv[i+1], true
				break
			}
		}
		if !found {
			args = append(args, kv[i], kv[i+1])
		}
	}
	return args
}

// withoutFlag drops a flag and its value.
func withoutFlag(args []string, flag string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == flag {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// TestOpsExitCodes: bad usage exits 2, a refused key or credential 1.
func TestOpsExitCodes(t *testing.T) {
	dir := t.TempDir()
	mf := writeFile(t, dir, "mnemonic.txt", testMnemonic)
	addr, _ := depositdata.ParseAddress(testAddress, false)
	c01 := depositdata.ExecutionCredentials(addr, false)
	base := []string{"generate-bls-to-execution-change", "--mnemonic-file", mf, "--chain", "hoodi", "--validator-indices", "1",
		"--withdrawal-address", testAddress, "--out", filepath.Join(dir, "out")}
	for _, c := range []struct {
		args []string
		code int
	}{
		{withFlags(base, "--bls-withdrawal-credentials-list", "0x"+hexOf(c01[:])), 1},
		{withFlags(base, "--bls-withdrawal-credentials-list", "0x00"+strings.Repeat("ab", 31)), 1},
		{withFlags(base, "--bls-withdrawal-credentials-list", "0x00"+strings.Repeat("ab", 31), "--validator-indices", "1,2"), 2},
		{[]string{"exit-transaction-mnemonic", "--mnemonic-file", mf, "--chain", "hoodi", "--validator-indices", "1", "--epoch", "-1", "--out", dir}, 2},
		{[]string{"exit-transaction-mnemonic", "--mnemonic-file", mf, "--chain", "nosuchnet", "--validator-indices", "1", "--out", dir}, 2},
	} {
		if r := runCLI(t, c.args...); r.code != c.code {
			t.Errorf("%v: exit %d, want %d (%s)", c.args, r.code, c.code, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("refused runs made the output directory: %v", err)
	}
}
