// Package cli tests the built ethkeygen binary as a user meets it (issue 13):
// every case runs the binary and asserts its stdout, its stderr and its exit
// status (0 success, 1 failure, 2 bad usage, 130 interrupted).
package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/tests/clitest"
)

var binary string

func TestMain(m *testing.M) { os.Exit(clitest.Main(m, "cli", &binary)) }

const (
	testMnemonic = "test test test test test test test test test test test waste"
	testAddress  = "0x0f51bb10119727a7e5eA3538074fb341F56B09Ad"
	peerDir      = "../../testdata/vectors/peer-cli-outputs/lighthouse_ethstaker_1.3.0"
)

type result struct {
	code           int
	stdout, stderr string
}

// home is a fresh ETHKEYGEN_HOME (key directory) for one test.
func home(t *testing.T) []string {
	return []string{"ETHKEYGEN_HOME=" + filepath.Join(t.TempDir(), "home")}
}

func command(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(os.Environ(), "ETHKEYGEN_LOG_LEVEL="), env...)
	cmd.Stdin = strings.NewReader("")
	return cmd
}

func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := command(env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
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

// wantUsage: exit 2, nothing on stdout, one line on stderr naming want.
func wantUsage(t *testing.T, r result, want string) {
	t.Helper()
	if r.code != 2 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, want) {
		t.Fatalf("want exit 2, no stdout, one stderr line naming %q; got exit %d\nstdout %q\nstderr %q", want, r.code, r.stdout, r.stderr)
	}
	noDeveloperTalk(t, r.stderr)
}

// noDeveloperTalk: no package prefixes, no Go type names.
var developerTalk = regexp.MustCompile(`(^|: )(custody|depositdata|keygen|keystore|store|envelope|json): |Go struct|Go value|uint64|\*errors\.|%!`)

func noDeveloperTalk(t *testing.T, s string) {
	t.Helper()
	if m := developerTalk.FindString(s); m != "" {
		t.Fatalf("message speaks Go (%q): %q", m, s)
	}
}

func commands(t *testing.T) []string {
	r := run(t, nil, "--help")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("--help: %+v", r)
	}
	var names []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "  ") && len(strings.Fields(l)) > 1 {
			names = append(names, strings.Fields(l)[0])
		}
	}
	if len(names) < 8 {
		t.Fatalf("commands in --help: %v", names)
	}
	return names
}

// Items 5 and 6: --help prints the usage once, on stdout, with the exit
// statuses; exit 0 and nothing on stderr.
func TestHelpOnce(t *testing.T) {
	main := run(t, nil, "--help")
	if !strings.Contains(main.stdout, "130 interrupted") {
		t.Fatalf("main --help lacks the exit statuses: %s", main.stdout)
	}
	for _, c := range commands(t) {
		t.Run(c, func(t *testing.T) {
			r := run(t, nil, c, "--help")
			if r.code != 0 || r.stderr != "" || strings.Count(r.stdout, "Usage: ethkeygen "+c+" ") != 1 ||
				strings.Count(r.stdout, "Exit status: 0 success, 1 failed, 2 bad usage") != 1 {
				t.Fatalf("exit %d\nstdout %s\nstderr %q", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// Item 6: every flag error is one line on stderr, named with two dashes,
// nothing on stdout, exit 2; ethstaker habits get a hint naming our flag.
func TestFlagErrors(t *testing.T) {
	for _, c := range commands(t) {
		t.Run(c, func(t *testing.T) {
			r := run(t, nil, c, "--cout", "1")
			want := "ethkeygen " + c + ": unknown flag --cout (see --help)\n"
			if r.code != 2 || r.stdout != "" || r.stderr != want {
				t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant   %q", r.code, r.stdout, r.stderr, want)
			}
		})
	}
	for _, c := range []struct{ args []string }{
		{[]string{"generate", "--count", "x"}},
		{[]string{"generate", "--count"}},
		{[]string{"list", "--json=maybe"}},
	} {
		r := run(t, nil, c.args...)
		wantUsage(t, r, "--")
	}
	for habit, ours := range map[string]string{
		"--num_validators":     "--count",
		"--withdrawal_address": "--withdrawal-address",
		"--execution_address":  "--withdrawal-address",
		"--folder":             "--out",
		"--keystore_password":  "--keystore-password-file",
		"--mnemonic_language":  "--mnemonic-language",
		"--chain=mainnet_x":    "",
	} {
		if ours == "" {
			continue
		}
		r := run(t, nil, "existing-mnemonic", habit, "1")
		wantUsage(t, r, "unknown flag "+strings.SplitN(habit, "=", 2)[0]+": use "+ours)
	}
}

// Items 1, 3 and 6: bad usage exits 2 with one line in the user's terms;
// nothing is created.
func TestBadUsage(t *testing.T) {
	env := home(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "ethkeygen.db")
	out := filepath.Join(dir, "out")
	gen := func(extra ...string) []string {
		return append([]string{"generate", "--count", "1", "--db", db, "--out", out, "--secret-format", "raw"}, extra...)
	}
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"no withdrawal choice":  {gen("--chain", "hoodi"), "--withdrawal-address 0x.. or --bls-withdrawal is required"},
		"both choices":          {gen("--chain", "hoodi", "--bls-withdrawal", "--withdrawal-address", testAddress), "exclude each other"},
		"unknown chain":         {gen("--chain", "hodi", "--bls-withdrawal"), `unknown network "hodi"`},
		"bad secret format":     {gen("--chain", "hoodi", "--bls-withdrawal", "--secret-format", "rwa"), `secret format "rwa"`},
		"bad address":           {gen("--chain", "hoodi", "--withdrawal-address", "0x1234"), `invalid execution address "0x1234"`},
		"bad checksum":          {gen("--chain", "hoodi", "--withdrawal-address", strings.Replace(testAddress, "f51", "F51", 1)), "checksum"},
		"amount over range":     {gen("--chain", "hoodi", "--bls-withdrawal", "--amount-gwei", "33000000000"), "amount"},
		"0x01 under 32 ETH":     {gen("--chain", "hoodi", "--withdrawal-address", testAddress, "--amount-gwei", "1000000000"), "never activates"},
		"0x00 under 32 ETH":     {gen("--chain", "hoodi", "--bls-withdrawal", "--amount-gwei", "31000000000"), "need compounding"},
		"explicit zero amount":  {gen("--chain", "hoodi", "--bls-withdrawal", "--amount-gwei", "0"), "--amount-gwei 0"},
		"explicit zero per key": {gen("--chain", "hoodi", "--bls-withdrawal", "--keys-per-mnemonic", "0"), "--keys-per-mnemonic 0"},
		"zero count":            {[]string{"generate", "--count", "0", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", out}, "--count 0"},
		"lambda no choice":      {[]string{"generate-lambda", "--lambda", "f", "--count", "2", "--chain", "hoodi", "--out", out}, "--bls-withdrawal is required"},
		"lambda bad amount":     {[]string{"generate-lambda", "--lambda", "f", "--count", "2", "--chain", "hoodi", "--withdrawal-address", testAddress, "--amount-gwei", "2000000000", "--out", out}, "never activates"},
		"bad max-memory":        {gen("--chain", "hoodi", "--bls-withdrawal", "--max-memory", "lots"), "--max-memory"},
	} {
		t.Run(name, func(t *testing.T) {
			r := run(t, env, c.args...)
			wantUsage(t, r, c.want)
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("an output directory was created")
			}
		})
	}
	// existing-mnemonic: the 32 ETH rule, and no directory left behind by a
	// check that fails after the files were read (item 15).
	mn := writeFile(t, dir, "mnemonic.txt", testMnemonic+"\n")
	pw := writeFile(t, dir, "password.txt", "a long enough password\n")
	r := run(t, env, "existing-mnemonic", "--mnemonic-file", mn, "--keystore-password-file", pw, "--count", "1", "--chain", "hoodi",
		"--withdrawal-address", testAddress, "--amount-gwei", "16000000000", "--out", filepath.Join(out, "nested"))
	wantUsage(t, r, "0x00 and 0x01 validators take exactly 32 ETH")
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("existing-mnemonic left an output directory behind")
	}
}

// Item 3: the zero address is accepted with a warning.
func TestZeroAddressWarns(t *testing.T) {
	dir := t.TempDir()
	r := run(t, home(t), "generate", "--count", "1", "--chain", "hoodi", "--withdrawal-address", "0x0000000000000000000000000000000000000000",
		"--db", filepath.Join(dir, "e.db"), "--out", dir, "--secret-format", "raw")
	if r.code != 0 || !strings.Contains(r.stderr, "warning: the withdrawal address is the zero address") ||
		!regexp.MustCompile(`^0x[0-9a-f]{96}\n$`).MatchString(r.stdout) {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	// Item 15: "1 validator", not "1 validators".
	if !strings.Contains(r.stderr, "1 validator (1 new) on hoodi") {
		t.Fatalf("summary: %q", r.stderr)
	}
}

// Item 10: a JSON file that does not parse is reported without its bytes,
// and type errors without Go type names (item 7).
func TestJSONErrorsEchoNothing(t *testing.T) {
	dir := t.TempDir()
	pwLike := writeFile(t, dir, "password.txt", "correct horse battery staple\n")
	pw := writeFile(t, dir, "pw.txt", "a long enough password\n")
	for _, args := range [][]string{
		{"verify-deposits", pwLike},
		{"verify-keystore", pwLike, "--password-file", pw},
	} {
		r := run(t, nil, args...)
		if r.code != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || strings.Contains(r.stderr, "'c'") ||
			strings.Contains(r.stderr, "correct") || !strings.Contains(r.stderr, "not valid JSON") {
			t.Fatalf("%v: exit %d\nstdout %q\nstderr %q", args, r.code, r.stdout, r.stderr)
		}
		noDeveloperTalk(t, r.stderr)
	}
	good, _ := os.ReadFile(filepath.Join(peerDir, "hoodi_first_0_count_1_prefix_0x00_eth1_false.json"))
	typed := writeFile(t, dir, "typed.json", strings.Replace(string(good), `"amount": 32000000000`, `"amount": "32000000000"`, 1))
	r := run(t, nil, "verify-deposits", typed)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, `"amount"`) || !strings.HasPrefix(r.stderr, "ethkeygen verify-deposits: ") {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	noDeveloperTalk(t, r.stderr)
}

// Item 11: without --chain a file mixing networks is refused, and an
// unknown network name is refused unless --fork-version is given.
func TestVerifyDepositsNetworks(t *testing.T) {
	dir := t.TempDir()
	mainnet, _ := os.ReadFile(filepath.Join(peerDir, "mainnet_first_0_count_1_prefix_0x00_eth1_false.json"))
	hoodi, _ := os.ReadFile(filepath.Join(peerDir, "hoodi_first_0_count_1_prefix_0x00_eth1_false.json"))
	m, _ := depositdata.ParseFile(mainnet)
	h, _ := depositdata.ParseFile(hoodi)
	mixed, _ := depositdata.MarshalFile([]*depositdata.Deposit{m[0], h[0]})
	mixedFile := writeFile(t, dir, "mixed.json", string(mixed))
	r := run(t, nil, "verify-deposits", mixedFile)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "ethkeygen verify-deposits: "+mixedFile+": ") ||
		!strings.Contains(r.stderr, "a deposit file is for one network") {
		t.Fatalf("mixed: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	noDeveloperTalk(t, r.stderr)

	renamed := writeFile(t, dir, "devnet.json", strings.ReplaceAll(string(mainnet), `"network_name": "mainnet"`, `"network_name": "mydevnet"`))
	r = run(t, nil, "verify-deposits", renamed)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, `unknown network "mydevnet"`) {
		t.Fatalf("unknown name: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, nil, "verify-deposits", renamed, "--chain", "mydevnet", "--fork-version", "0x00000000")
	if r.code != 0 || r.stderr != "" || r.stdout != renamed+": 1 deposit valid\n" {
		t.Fatalf("with --fork-version: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
}

// Items 9, 13, 15: existing-mnemonic prints rows on stdout and talk on
// stderr; its pbkdf2 keystores list kdf params as the reference does.
func TestExistingMnemonicStreams(t *testing.T) {
	dir := t.TempDir()
	mn := writeFile(t, dir, "mnemonic.txt", testMnemonic+"\n")
	pw := writeFile(t, dir, "password.txt", "a long enough password\n")
	out := filepath.Join(dir, "keys")
	r := run(t, nil, "existing-mnemonic", "--mnemonic-file", mn, "--keystore-password-file", pw, "--count", "2", "--chain", "hoodi",
		"--kdf", "pbkdf2", "--out", out, "--max-memory", "4GB")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	row := regexp.MustCompile(`^[01]\t0x[0-9a-f]{96}\t` + regexp.QuoteMeta(out) + `/keystore-m_12381_3600_[01]_0_0-\d+\.json$`)
	if len(lines) != 3 || !row.MatchString(lines[0]) || !row.MatchString(lines[1]) ||
		!regexp.MustCompile(`^`+regexp.QuoteMeta(out)+`/deposit_data-\d+\.json$`).MatchString(lines[2]) {
		t.Fatalf("stdout %q", r.stdout)
	}
	if !regexp.MustCompile(`^deposit data: \S+ \(2 validators, hoodi\)\n$`).MatchString(r.stderr) {
		t.Fatalf("stderr %q", r.stderr)
	}
	ks, _ := os.ReadFile(strings.Split(lines[0], "\t")[2])
	if !strings.Contains(string(ks), `"kdf": {"function": "pbkdf2", "params": {"c": 262144, "dklen": 32, "prf": "hmac-sha256", "salt": "`) {
		t.Fatalf("pbkdf2 params order: %s", ks)
	}
}

// Item 15: --max-memory shows a human size and takes 4GB and 2GiB.
func TestMaxMemorySizes(t *testing.T) {
	r := run(t, nil, "generate", "--help")
	if !strings.Contains(r.stdout, "(default 2176MiB)") {
		t.Fatalf("--max-memory default not shown as a size: %s", r.stdout)
	}
	for _, size := range []string{"4GB", "2GiB", "512MiB", "1073741824"} {
		r := run(t, nil, "generate", "--max-memory", size, "--count", "1")
		wantUsage(t, r, "--chain or --fork-version is required") // the size parsed; the next check speaks
	}
}

// Items 14 and 15 on a store: raw secrets decrypt into keystores with their
// path; export-deposits names an unknown chain.
func TestDecryptRawPathAndExportChain(t *testing.T) {
	env := home(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "e.db")
	r := run(t, env, "generate", "--count", "2", "--keys-per-mnemonic", "2", "--chain", "hoodi", "--bls-withdrawal", "--db", db,
		"--out", dir, "--secret-format", "raw")
	if r.code != 0 {
		t.Fatalf("generate: %s", r.stderr)
	}
	w3s := filepath.Join(dir, "w3s")
	r = run(t, env, "decrypt", "--all", "--db", db, "--web3signer-dir", w3s)
	if r.code != 0 || strings.Count(r.stdout, "\n") != 2 {
		t.Fatalf("decrypt: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	paths := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(w3s, "0x*.json")) // the keystores; the interchange sits beside them
	for _, f := range files {
		b, _ := os.ReadFile(f)
		var ks struct {
			Path string `json:"path"`
		}
		if err := json.Unmarshal(b, &ks); err != nil {
			t.Fatal(err)
		}
		paths[ks.Path] = true
	}
	if len(files) != 2 || !paths["m/12381/3600/0/0/0"] || !paths["m/12381/3600/1/0/0"] {
		t.Fatalf("keystore paths %v of %v", paths, files)
	}
	r = run(t, env, "export-deposits", "--db", db, "--all", "--bls-withdrawal", "--chain", "hodi", "--out", filepath.Join(dir, "x"))
	wantUsage(t, r, `--chain "hodi": unknown network`)
}

// Item 8: Ctrl-C stops within a second with exit 130 and says how to
// finish; the re-run finishes the request; a re-run with other parameters
// is refused without a resume hint.
func TestInterruptAndResume(t *testing.T) {
	env := home(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "e.db")
	args := []string{"generate", "--count", "40", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir,
		"--kdf", "pbkdf2", "--max-memory", "64MiB", "--request-id", "ctrl-c"}
	cmd := command(env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	err := cmd.Wait()
	took := time.Since(sent)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || took > 1200*time.Millisecond {
		t.Fatalf("exit %v after %v; stderr %q", err, took, errb.String())
	}
	m := regexp.MustCompile(`(?m)^ethkeygen generate: interrupted; (\d+) of 40 stored; re-run with --request-id ctrl-c to finish\n\z`).FindStringSubmatch(errb.String())
	if m == nil || strings.Contains(errb.String(), "context canceled") {
		t.Fatalf("stderr %q", errb.String())
	}
	if out.String() != "" {
		t.Fatalf("stdout %q", out.String())
	}
	r := run(t, env, append(args, "--json")...)
	var res struct {
		Created    int `json:"created"`
		Validators []struct {
			Pubkey string `json:"pubkey"`
		} `json:"validators"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || len(res.Validators) != 40 || res.Created == 40 {
		t.Fatalf("resume: exit %d created %d of %d\nstdout %q\nstderr %q", r.code, res.Created, len(res.Validators), r.stdout, r.stderr)
	}
	changed := append([]string{}, args...)
	changed[2] = "41"
	r = run(t, env, changed...)
	wantUsage(t, r, "different parameters")
	if strings.Contains(r.stderr, "re-run") || strings.Contains(r.stderr, "resume") {
		t.Fatalf("refusal carries a resume hint: %q", r.stderr)
	}
}

// Item 12: words abbreviated to four letters and the Portuguese list are
// read as ethstaker-deposit-cli reads them: the abbreviated test mnemonic
// gives the reference's validators, a Portuguese mnemonic (a BIP-39 vector)
// works and its abbreviation gives the same validators.
func TestMnemonicAbbreviationsAndPortuguese(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "password.txt", "a long enough password\n")
	pubkeys := func(mnemonic, sub string) []string {
		mn := writeFile(t, dir, sub+".txt", mnemonic+"\n")
		r := run(t, nil, "existing-mnemonic", "--mnemonic-file", mn, "--keystore-password-file", pw, "--count", "2", "--chain", "mainnet",
			"--kdf", "pbkdf2", "--out", filepath.Join(dir, sub), "--json")
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", sub, r.code, r.stderr)
		}
		var res struct {
			Validators []struct {
				Pubkey string `json:"pubkey"`
			} `json:"validators"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatal(err)
		}
		var pks []string
		for _, v := range res.Validators {
			pks = append(pks, v.Pubkey)
		}
		return pks
	}
	peer, _ := os.ReadFile(filepath.Join(peerDir, "mainnet_first_0_count_2_prefix_0x00_eth1_false.json"))
	want, _ := depositdata.ParseFile(peer)
	got := pubkeys(strings.ReplaceAll(testMnemonic, "waste", "wast"), "abbrev")
	if len(got) != 2 || got[0] != want[0].Pubkey || got[1] != want[1].Pubkey {
		t.Fatalf("abbreviated mnemonic: %v, reference %s %s", got, want[0].Pubkey, want[1].Pubkey)
	}
	var vectors struct {
		Vectors map[string][][]string `json:"vectors"`
	}
	b, _ := os.ReadFile("../../testdata/vectors/bip39_trezor.json")
	if err := json.Unmarshal(b, &vectors); err != nil {
		t.Fatal(err)
	}
	pt := vectors.Vectors["portuguese"][len(vectors.Vectors["portuguese"])-1][1]
	full := pubkeys(pt, "pt")
	var short []string
	for _, w := range strings.Fields(pt) {
		if len(w) > 4 {
			w = w[:4]
		}
		short = append(short, w)
	}
	if abbr := pubkeys(strings.Join(short, " "), "pt-abbrev"); len(full) != 2 || strings.Join(abbr, ",") != strings.Join(full, ",") {
		t.Fatalf("Portuguese %v, abbreviated %v", full, abbr)
	}
}

// shellQuote quotes s for sh -c.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Item 16: new-mnemonic on a real terminal (a pty made by util-linux
// script): the mnemonic is shown once, a wrong confirmation is refused, the
// right one writes the keystores and deposit file, and the mnemonic is in no
// file it wrote.
func TestNewMnemonicOnTerminal(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "password.txt", "a long enough password\n")
	out := filepath.Join(dir, "keys")
	args := []string{binary, "new-mnemonic", "--count", "2", "--chain", "hoodi", "--withdrawal-address", testAddress,
		"--keystore-password-file", pw, "--out", out, "--kdf", "pbkdf2"}
	var quoted []string
	for _, a := range args {
		quoted = append(quoted, shellQuote(a))
	}
	cmd := exec.Command("script", "-q", "-e", "-f", "-c", strings.Join(quoted, " "), "/dev/null")
	cmd.Env = append(os.Environ(), "ETHKEYGEN_LOG_LEVEL=debug", "TERM=dumb")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var screen lockedBuffer
	cmd.Stdout, cmd.Stderr = &screen, &screen
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor := func(s string) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if got := screen.String(); strings.Contains(got, s) {
				return got
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no %q on the terminal; it shows %q", s, screen.String())
		return ""
	}
	shown := waitFor("Press Enter when you have written it down.")
	words := regexp.MustCompile(`(?m)(\d+)\. ([a-z]+)`).FindAllStringSubmatch(shown, -1)
	if len(words) != 24 {
		t.Fatalf("want 24 numbered words, got %d: %q", len(words), shown)
	}
	var mnemonic []string
	for _, w := range words {
		mnemonic = append(mnemonic, w[2])
	}
	phrase := strings.Join(mnemonic, " ")
	if strings.Count(shown, mnemonic[0]+" ") < 1 || strings.Count(shown, "Press Enter") != 1 {
		t.Fatalf("screen %q", shown)
	}
	stdin.Write([]byte("\n"))
	waitFor("Type your mnemonic to confirm")
	stdin.Write([]byte(strings.Join(append(append([]string{}, mnemonic[1:]...), mnemonic[0]), " ") + "\n"))
	waitFor("That is not the mnemonic shown")
	stdin.Write([]byte(phrase + "\n"))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit %v; terminal %q", err, screen.String())
	}
	final := screen.String()
	if !strings.Contains(final, "mnemonic confirmed") || !strings.Contains(final, "deposit data: ") || !strings.Contains(final, "(2 validators, hoodi)") {
		t.Fatalf("terminal %q", final)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 3 {
		t.Fatalf("out holds %v", entries)
	}
	for _, en := range entries {
		b, _ := os.ReadFile(filepath.Join(out, en.Name()))
		if strings.Contains(string(b), mnemonic[0]+" "+mnemonic[1]) {
			t.Fatalf("%s holds the mnemonic", en.Name())
		}
		if strings.HasPrefix(en.Name(), "deposit_data-") {
			if _, errs := depositdata.VerifyFile(b, &depositdata.Hoodi); len(errs) != 0 {
				t.Fatal(errs)
			}
		}
	}
	// The keys are the mnemonic's: existing-mnemonic derives the same.
	mn := writeFile(t, dir, "mnemonic.txt", phrase+"\n")
	r := run(t, nil, "existing-mnemonic", "--mnemonic-file", mn, "--keystore-password-file", pw, "--count", "2", "--chain", "hoodi",
		"--withdrawal-address", testAddress, "--kdf", "pbkdf2", "--out", filepath.Join(dir, "again"))
	if r.code != 0 {
		t.Fatalf("existing-mnemonic: %s", r.stderr)
	}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n")[:2] {
		if pk := strings.Split(l, "\t")[1]; !strings.Contains(final, pk) {
			t.Fatalf("new-mnemonic did not make %s", pk)
		}
	}
}

// Item 16 without a terminal: --non-interactive needs --mnemonic-out, which
// gets the mnemonic (0600); nothing else shows it; without a terminal and
// without --non-interactive the command refuses before making a mnemonic.
func TestNewMnemonicNonInteractive(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "password.txt", "a long enough password\n")
	out := filepath.Join(dir, "keys")
	base := []string{"new-mnemonic", "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--keystore-password-file", pw, "--out", out, "--kdf", "pbkdf2"}
	wantUsage(t, run(t, nil, append(base, "--non-interactive")...), "--non-interactive needs --mnemonic-out")
	wantUsage(t, run(t, nil, base...), "run it in one, or use --non-interactive --mnemonic-out F")
	wantUsage(t, run(t, nil, append(base, "--mnemonic-language", "klingon")...), `--mnemonic-language "klingon"`)
	wantUsage(t, run(t, nil, "new-mnemonic", "--num_validators", "1"), "unknown flag --num_validators: use --count N")
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("refused runs created the output directory")
	}
	mout := filepath.Join(dir, "mnemonic.txt")
	r := run(t, []string{"ETHKEYGEN_LOG_LEVEL=debug"}, append(base, "--non-interactive", "--mnemonic-out", mout, "--mnemonic-language", "portuguese")...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	st, err := os.Stat(mout)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mnemonic file: %v %v", st, err)
	}
	b, _ := os.ReadFile(mout)
	words := strings.Fields(string(b))
	if len(words) != 24 || strings.Contains(r.stdout+r.stderr, words[0]+" "+words[1]) {
		t.Fatalf("mnemonic file %d words; shown elsewhere: %v", len(words), strings.Contains(r.stdout+r.stderr, words[0]+" "+words[1]))
	}
	// The file is never replaced.
	r = run(t, nil, append(base[:len(base)-4], "--out", filepath.Join(dir, "k2"), "--non-interactive", "--mnemonic-out", mout)...)
	if r.code != 1 || !strings.Contains(r.stderr, "mnemonic file") {
		t.Fatalf("second run: exit %d %q", r.code, r.stderr)
	}
	if b2, _ := os.ReadFile(mout); string(b2) != string(b) {
		t.Fatal("the mnemonic file was replaced")
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Item 4: the commands that use what a store holds refuse a store that does
// not exist, and create none.
func TestMissingStoreRefused(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "nope.db")
	env := home(t)
	other := t.TempDir() // a store elsewhere makes decrypt's identity
	if r := run(t, env, "generate", "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "raw",
		"--db", filepath.Join(other, "e.db"), "--out", other); r.code != 0 {
		t.Fatal(r.stderr)
	}
	for _, args := range [][]string{
		{"list", "--db", db},
		{"export-deposits", "--db", db, "--all", "--bls-withdrawal", "--out", filepath.Join(dir, "d")},
		{"decrypt", "--all", "--db", db, "--web3signer-dir", filepath.Join(dir, "w3s")},
	} {
		r := run(t, env, args...)
		want := "ethkeygen " + args[0] + ": no store at " + db + ": generate creates one; name it with --db (or --dynamodb-table)\n"
		if r.code != 1 || r.stdout != "" || r.stderr != want {
			t.Fatalf("%v: exit %d\nstdout %q\nstderr %q\nwant   %q", args, r.code, r.stdout, r.stderr, want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("%v left %v", args, entries)
		}
	}
}

// Item 2: backup copies the store consistently while another process
// writes to it, copies the ledger file when there is one, and checks that
// the identity opens the copy; a wrong identity fails the backup and leaves
// no copy.
func TestBackupWhileInUse(t *testing.T) {
	env := home(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "e.db")
	if r := run(t, env, "generate", "--count", "3", "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "raw", "--db", db, "--out", dir); r.code != 0 {
		t.Fatal(r.stderr)
	}
	// A writer keeps the store busy during the backup.
	writer := command(env, "generate", "--count", "200", "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "raw", "--db", db,
		"--out", dir, "--request-id", "busy")
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	defer writer.Wait()
	out := filepath.Join(dir, "backups")
	r := run(t, env, "backup", "--db", db, "--out", out, "--check-all")
	if r.code != 0 || !regexp.MustCompile(`^`+regexp.QuoteMeta(out)+`/e-\d+\.db\n(`+regexp.QuoteMeta(out)+`/e-\d+\.db\.ledger\n)?$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`^backup of \S+: \d+ records, \d+ opened with the identity; keep the identity apart from the copies\n$`).MatchString(r.stderr) {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	copyPath := strings.Split(strings.TrimSpace(r.stdout), "\n")[0]
	clitest.IntegrityCheck(t, copyPath)
	if st, _ := os.Stat(copyPath); st.Mode().Perm() != 0o600 {
		t.Fatalf("copy mode %v", st.Mode())
	}
	l := run(t, env, "list", "--db", copyPath)
	if l.code != 0 || strings.Count(l.stdout, "\n") < 3 {
		t.Fatalf("list of the copy: %+v", l)
	}
	if err := writer.Wait(); err != nil {
		t.Fatalf("the writer failed during the backup: %v", err)
	}

	// The ledger file, when present, is copied too.
	if err := os.WriteFile(db+".ledger", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, env, "backup", "--db", db, "--out", out)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != 0 || len(lines) != 2 || !strings.HasSuffix(lines[1], ".db.ledger") {
		t.Fatalf("with a ledger: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}

	// Another identity does not open the store: the backup fails, no copy stays.
	other := home(t)
	run(t, other, "generate", "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "raw", "--db", filepath.Join(dir, "o.db"), "--out", dir)
	bad := filepath.Join(dir, "bad-backups")
	r = run(t, other, "backup", "--db", db, "--out", bad)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "the identity does not open it") {
		t.Fatalf("wrong identity: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a failed backup left its directory")
	}
	noDeveloperTalk(t, r.stderr)
}

// Item 4: the commands that write no record open the store read-only: a
// store in a directory nobody may write (a read-only mount, a restored
// backup; chmod, or as root, whom modes do not stop, the immutable
// attribute) still serves list, export-deposits and decrypt, with the
// ledger elsewhere; and list also reads a ledger nobody may write. SQLite
// cannot make its -shm file beside such a store, so a writing open fails.
func TestReadOnlyStoreServes(t *testing.T) {
	env := home(t)
	dir, ledgerDir, out := t.TempDir(), t.TempDir(), t.TempDir()
	db := filepath.Join(dir, "e.db")
	ledger := filepath.Join(ledgerDir, "e.ledger")
	if r := run(t, env, "generate", "--count", "2", "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "raw",
		"--request-id", "ro-1", "--db", db, "--ledger", ledger, "--out", out); r.code != 0 {
		t.Fatal(r.stderr)
	}
	protect := func(paths ...string) {
		t.Helper()
		for _, path := range paths {
			if os.Geteuid() != 0 {
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, fi.Mode().Perm()&^0o222); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(path, fi.Mode().Perm()) })
				continue
			}
			if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
				t.Fatalf("chattr +i %s (needed to make a file read-only for root): %v %s", path, err, out)
			}
			t.Cleanup(func() { exec.Command("chattr", "-i", path).Run() })
		}
	}
	protect(db, dir)
	if f, err := os.Create(filepath.Join(dir, "probe")); err == nil {
		f.Close()
		t.Fatal("the store's directory is still writable: the test proves nothing")
	}
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, env, "export-deposits", "--db", db, "--ledger", ledger, "--request-id", "ro-1", "--bls-withdrawal", "--out", filepath.Join(out, "again"))
	if r.code != 0 {
		t.Fatalf("export-deposits on a read-only store: exit %d: %s", r.code, r.stderr)
	}
	if r = run(t, env, "decrypt", "--all", "--db", db, "--ledger", ledger, "--web3signer-dir", filepath.Join(out, "w3s")); r.code != 0 {
		t.Fatalf("decrypt on a read-only store: exit %d: %s", r.code, r.stderr)
	}
	protect(ledger, ledgerDir)
	r = run(t, env, "list", "--db", db, "--ledger", ledger)
	if r.code != 0 || strings.Count(r.stdout, "\n") != 2 || strings.Count(r.stdout, "deposited") != 2 {
		t.Fatalf("list on a read-only store and ledger: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	after, err := os.ReadFile(db)
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("the store file changed (%v)", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("the store's directory holds %v", entries)
	}
}
