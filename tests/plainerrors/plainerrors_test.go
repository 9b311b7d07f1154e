// Package plainerrors runs the built CLI into the file-system traps and
// damaged stores an attacker or an accident leaves (issue 12, items 4 and
// 8) and checks that each ends with exit status 1 and one plain line on
// stderr that names the thing to fix.
package plainerrors

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ethkeygen/ethkeygen/tests/clitest"
)

var binary string

func TestMain(m *testing.M) { os.Exit(clitest.Main(m, "plainerrors", &binary)) }

// A recipient for generate runs that must not touch a key directory (the
// example recipient of age's documentation).
const someRecipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

type result struct {
	stdout, stderr string
	code           int
}

// cli runs the binary in dir with exactly env (nothing inherited but PATH).
func cli(t *testing.T, dir string, env []string, cred *syscall.Credential, bin string, args ...string) result {
	t.Helper()
	if bin == "" {
		bin = binary
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// wantPlainFailure: exit 1 and exactly one line on stderr holding every
// one of words.
func wantPlainFailure(t *testing.T, r result, words ...string) {
	t.Helper()
	line := strings.TrimSuffix(r.stderr, "\n")
	if r.code != 1 || line == "" || strings.Contains(line, "\n") {
		t.Fatalf("exit %d, stderr %q: want exit 1 and one line", r.code, r.stderr)
	}
	for _, w := range words {
		if !strings.Contains(line, w) {
			t.Fatalf("stderr %q does not say %q", line, w)
		}
	}
	for _, bad := range []string{"(26)", "(1544)", "(14)", "panic", "goroutine"} {
		if strings.Contains(line, bad) {
			t.Fatalf("stderr %q shows %q: not a plain line", line, bad)
		}
	}
}

func home(dir string) []string { return []string{"HOME=" + dir} }

// generate makes a store of n raw-format validators in dir/s.db, sealed to
// the identity in keyDir.
func generate(t *testing.T, dir, keyDir, db string, n string) {
	t.Helper()
	r := cli(t, dir, home(dir), nil, "", "generate", "--count", n, "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "raw",
		"--out", filepath.Join(dir, "out-"+filepath.Base(db)), "--db", db, "--key-dir", keyDir)
	if r.code != 0 {
		t.Fatalf("generate: exit %d: %s", r.code, r.stderr)
	}
}

func recipientOf(t *testing.T, keyDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(keyDir, "recipient.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "age1") {
			return l
		}
	}
	t.Fatalf("no recipient in %s", b)
	return ""
}

// TestWrongIdentityNamesRecipients: decrypting records sealed to one
// identity with another says which recipient the records were sealed to
// and which one the identity has (read from the two recipient.txt files),
// not "message authentication failed".
func TestWrongIdentityNamesRecipients(t *testing.T) {
	dir := t.TempDir()
	generate(t, dir, filepath.Join(dir, "ka"), "s.db", "2")
	generate(t, dir, filepath.Join(dir, "kb"), "other.db", "1")
	sealedTo, have := recipientOf(t, filepath.Join(dir, "ka")), recipientOf(t, filepath.Join(dir, "kb"))
	// The store's own key directory (its generator.pub), another identity.
	for _, args := range [][]string{
		{"--key-dir", filepath.Join(dir, "ka"), "--identity-file", filepath.Join(dir, "kb", "identity.txt")},
	} {
		r := cli(t, dir, home(dir), nil, "", append([]string{"decrypt", "--all", "--db", "s.db", "--web3signer-dir", filepath.Join(dir, "w")}, args...)...)
		wantPlainFailure(t, r, "sealed to age recipient "+sealedTo, "this identity belongs to recipient "+have)
		if strings.Contains(r.stderr, "authentication") {
			t.Fatalf("stderr %q still speaks of authentication", r.stderr)
		}
	}
}

// TestCorruptStore: a store file that is not a SQLite database.
func TestCorruptStore(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "s.db"), bytes.Repeat([]byte("not a database "), 400), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"list", "--db", "s.db"},
		{"export-deposits", "--db", "s.db", "--all", "--bls-withdrawal", "--out", "out"},
		{"generate", "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--db", "s.db", "--recipient", someRecipient, "--out", "out"},
	} {
		t.Run(args[0], func(t *testing.T) {
			wantPlainFailure(t, cli(t, dir, home(dir), nil, "", args...), "s.db", "damaged or not an ethkeygen store", "backup")
		})
	}
}

// TestDeletedStore: commands that read records refuse a store file that is
// not there (it used to be created, empty, so list printed nothing and
// exited 0), and do not create one.
func TestDeletedStore(t *testing.T) {
	dir := t.TempDir()
	generate(t, dir, filepath.Join(dir, "k"), "s.db", "1")
	for _, p := range []string{"s.db", "s.db-wal", "s.db-shm"} {
		os.Remove(filepath.Join(dir, p))
	}
	for _, args := range [][]string{
		{"list", "--db", "s.db"},
		{"export-deposits", "--db", "s.db", "--all", "--bls-withdrawal", "--out", "out2"},
		{"decrypt", "--all", "--db", "s.db", "--key-dir", "k", "--web3signer-dir", "w"},
	} {
		t.Run(args[0], func(t *testing.T) {
			wantPlainFailure(t, cli(t, dir, home(dir), nil, "", args...), "no store at s.db", "--db")
			if _, err := os.Lstat(filepath.Join(dir, "s.db")); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("the command created a new store")
			}
		})
	}
}

// TestReadOnlyStoreDirectory: a store in a directory the CLI cannot write
// (SQLite keeps -wal and -shm beside the file). Root ignores directory
// permissions, so as root the CLI runs as nobody in a directory nobody
// owns with mode 0500; otherwise as the test's user.
func TestReadOnlyStoreDirectory(t *testing.T) {
	dir := t.TempDir()
	generate(t, dir, filepath.Join(dir, "k"), "s.db", "1")
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "s.db"), filepath.Join(ro, "s.db")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "o") // writable, so that only the store can fail
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	bin, cred := "", (*syscall.Credential)(nil)
	if os.Geteuid() == 0 {
		if err := os.Chown(out, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		// nobody must reach the binary and the directories.
		for _, d := range []string{filepath.Dir(dir), dir} {
			os.Chmod(d, 0o755)
		}
		bin = filepath.Join(dir, "ethkeygen")
		copyFile(t, binary, bin)
		if err := os.Chown(ro, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(ro, "s.db"), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cred = &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}
	}
	if err := os.Chmod(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o700) })
	for _, args := range [][]string{
		{"list", "--db", "s.db"},
		{"generate", "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "raw", "--db", "s.db", "--recipient", someRecipient, "--out", filepath.Join(dir, "o")},
		{"generate", "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "raw", "--db", "new.db", "--recipient", someRecipient, "--out", filepath.Join(dir, "o")},
	} {
		t.Run(strings.Join(args[:3], " "), func(t *testing.T) {
			r := cli(t, ro, home(ro), cred, bin, args...)
			wantPlainFailure(t, r, "its directory "+ro+" is read-only")
		})
	}
}

// TestNoHome: with HOME unset and no ETHKEYGEN_HOME or --key-dir, the CLI
// refuses instead of putting an identity in ./.ethkeygen.
func TestNoHome(t *testing.T) {
	dir := t.TempDir()
	gen := []string{"generate", "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "raw", "--db", "s.db", "--out", "o"}
	wantPlainFailure(t, cli(t, dir, nil, nil, "", gen...), "HOME", "--key-dir", "ETHKEYGEN_HOME")
	if _, err := os.Lstat(filepath.Join(dir, ".ethkeygen")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("created ./.ethkeygen (%v)", err)
	}
	if r := cli(t, dir, []string{"ETHKEYGEN_HOME=" + filepath.Join(dir, "h")}, nil, "", gen...); r.code != 0 {
		t.Fatalf("with ETHKEYGEN_HOME: exit %d: %s", r.code, r.stderr)
	}
	if r := cli(t, dir, nil, nil, "", "generate", "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "raw", "--db", "s2.db", "--out", "o2", "--key-dir", "kd"); r.code != 0 {
		t.Fatalf("with --key-dir: exit %d: %s", r.code, r.stderr)
	}
}

// TestFileTraps: a symlinked recipient.txt, identity.txt or store file, a
// group-writable key directory, a recipient.txt owned by nobody (as root;
// as another user a foreign file cannot be made, so then only the others
// run), and a non-UTF-8 --web3signer-dir, each refused in one line naming
// the path.
func TestFileTraps(t *testing.T) {
	setup := func(t *testing.T) (dir, kd string) {
		dir = t.TempDir()
		kd = filepath.Join(dir, "k")
		generate(t, dir, kd, "s.db", "1")
		return dir, kd
	}
	gen := func(kd string) []string {
		return []string{"generate", "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "raw", "--db", "s.db", "--key-dir", kd, "--out", "o2"}
	}
	swapForSymlink := func(t *testing.T, p string) {
		real := p + ".real"
		if err := os.Rename(p, real); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, p); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("symlinked recipient.txt", func(t *testing.T) {
		dir, kd := setup(t)
		p := filepath.Join(kd, "recipient.txt")
		swapForSymlink(t, p)
		wantPlainFailure(t, cli(t, dir, home(dir), nil, "", gen(kd)...), p+": is a symlink")
	})
	t.Run("symlinked identity.txt", func(t *testing.T) {
		dir, kd := setup(t)
		p := filepath.Join(kd, "identity.txt")
		swapForSymlink(t, p)
		wantPlainFailure(t, cli(t, dir, home(dir), nil, "", "decrypt", "--all", "--db", "s.db", "--key-dir", kd, "--web3signer-dir", "w"), p+": is a symlink")
	})
	t.Run("symlinked store", func(t *testing.T) {
		dir, kd := setup(t)
		swapForSymlink(t, filepath.Join(dir, "s.db"))
		wantPlainFailure(t, cli(t, dir, home(dir), nil, "", gen(kd)...), "s.db: is a symlink")
	})
	t.Run("group-writable key directory", func(t *testing.T) {
		dir, kd := setup(t)
		os.Chmod(kd, 0o770)
		wantPlainFailure(t, cli(t, dir, home(dir), nil, "", gen(kd)...), kd+": directory has mode 0770")
	})
	t.Run("recipient.txt of another user", func(t *testing.T) {
		dir, kd := setup(t)
		p := filepath.Join(kd, "recipient.txt")
		if os.Geteuid() != 0 {
			// Not root: make the key directory writable by others instead,
			// the other way another user gets to replace the file.
			os.Chmod(kd, 0o707)
			wantPlainFailure(t, cli(t, dir, home(dir), nil, "", gen(kd)...), kd+": directory has mode 0707")
			return
		}
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		wantPlainFailure(t, cli(t, dir, home(dir), nil, "", gen(kd)...), p+": file is owned by uid 65534")
	})
	t.Run("non-UTF-8 web3signer dir", func(t *testing.T) {
		dir, kd := setup(t)
		wantPlainFailure(t, cli(t, dir, home(dir), nil, "", "decrypt", "--all", "--db", "s.db", "--key-dir", kd, "--web3signer-dir", "keys-\xff"), "not valid UTF-8")
		if entries, _ := filepath.Glob(filepath.Join(dir, "keys-*")); len(entries) != 0 {
			t.Fatalf("created %v", entries)
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
