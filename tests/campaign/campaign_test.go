// Package campaign attacks the seams between generate, export, decrypt and
// the store the way an operator's bad day would: signals at every moment,
// two commands at once, a full disk, a throttling DynamoDB. Every scenario
// ends by counting every pubkey in every deposit file ever written (a file
// written twice with the same bytes is one export written twice) and fails
// on any key in two different files, on any file whose bytes differ under
// one name, and on any stored validator that no file holds once the runs
// are completed.
//
// The CLI is built with -tags crashtest, so ETHKEYGEN_CRASH_AT=PHASE:N kills
// it at named points (adapters/ethkeygen/crashpoint_crashtest.go).
package campaign

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/store/dynamostore"
	"github.com/ethkeygen/ethkeygen/tests/clitest"
)

var binary string

func TestMain(m *testing.M) { os.Exit(clitest.Main(m, "campaign", &binary, "crashtest")) }

const operator = "0x0f51bb10119727a7e5eA3538074fb341F56B09Ad"

// backend is one store under attack.
type backend struct {
	name string
	env  []string
	// args are the backend flags of every command of one scenario.
	args func(t *testing.T) []string
}

func embedded(t *testing.T) backend {
	home := filepath.Join(t.TempDir(), "home")
	return backend{name: "embedded", env: []string{"ETHKEYGEN_HOME=" + home},
		args: func(t *testing.T) []string { return []string{"--db", filepath.Join(t.TempDir(), "ethkeygen.db")} }}
}

func dynamo(t *testing.T, endpoint string) backend {
	kmsEP := testenv.KMSEndpoint(t)
	ddbEP := testenv.DynamoDBEndpoint(t)
	if endpoint == "" {
		endpoint = ddbEP
	}
	keyARN := testenv.NewKMSKey(t, testenv.AWSConfig(t, kmsEP))
	home := filepath.Join(t.TempDir(), "home")
	ddb := dynamodb.NewFromConfig(testenv.AWSConfig(t, ddbEP))
	return backend{name: "dynamodb",
		env: []string{"ETHKEYGEN_HOME=" + home, "AWS_ENDPOINT_URL_KMS=" + kmsEP, "AWS_ENDPOINT_URL_DYNAMODB=" + endpoint,
			"AWS_ACCESS_KEY_ID=AKIDETHKEYGENTEST", "AWS_SECRET_ACCESS_KEY=ethkeygen-test-secret",
			"AWS_REGION=" + testenv.Region, "AWS_EC2_METADATA_DISABLED=true", "AWS_PROFILE=", "AWS_SESSION_TOKEN="},
		args: func(t *testing.T) []string {
			table := "campaign-" + clitest.RandomHex(t, 6)
			if err := dynamostore.CreateTable(t.Context(), ddb, table); err != nil {
				t.Fatal(err)
			}
			if err := dynamostore.CreateLedgerTable(t.Context(), ddb, table+"-ledger"); err != nil {
				t.Fatal(err)
			}
			return []string{"--dynamodb-table", table, "--kms-key-id", keyARN, "--region", testenv.Region}
		}}
}

type result struct {
	code           int
	signal         syscall.Signal
	stdout, stderr string
}

// run runs the CLI with extra environment and ETHKEYGEN_CRASH_AT=at.
func run(t *testing.T, b backend, at string, args ...string) result {
	t.Helper()
	cmd := command(t, b, at, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return wait(t, cmd, cmd.Run(), &stdout, &stderr)
}

func command(t *testing.T, b backend, at string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(os.Environ(), b.env...), "ETHKEYGEN_CRASH_AT="+at)
	return cmd
}

func wait(t *testing.T, cmd *exec.Cmd, err error, stdout, stderr *bytes.Buffer) result {
	t.Helper()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.signal = ws.Signal()
		}
	default:
		t.Fatalf("running %s: %v", binary, err)
	}
	return r
}

func mustRun(t *testing.T, b backend, args ...string) result {
	t.Helper()
	r := run(t, b, "", args...)
	if r.code != 0 {
		t.Fatalf("ethkeygen %s: exit %d: %s", strings.Join(args[:1], " "), r.code, r.stderr)
	}
	return r
}

func genArgs(reqID, out string, count int, backendArgs []string, extra ...string) []string {
	a := []string{"generate", "--json", "--count", fmt.Sprint(count), "--chain", "hoodi", "--out", out,
		"--request-id", reqID, "--secret-format", "raw", "--withdrawal-address", operator}
	return append(append(a, backendArgs...), extra...)
}

// storeArgs are the backend flags without the sealing key, for the
// commands that do not seal.
func storeArgs(backendArgs []string) []string {
	var out []string
	for i := 0; i < len(backendArgs); i++ {
		if backendArgs[i] == "--kms-key-id" {
			i++
			continue
		}
		out = append(out, backendArgs[i])
	}
	return out
}

// ---- counting -----------------------------------------------------------------

// census counts every pubkey in every deposit file under roots.
type census struct {
	files   int
	byKey   map[string]string // pubkey -> content hash of the file holding it
	content map[string]bool
}

func count(t *testing.T, roots ...string) *census {
	t.Helper()
	c := &census{byKey: map[string]string{}, content: map[string]bool{}}
	names := map[string]string{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasPrefix(d.Name(), "deposit_data-") || !strings.HasSuffix(d.Name(), ".json") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			c.files++
			h := fmt.Sprintf("%x", sha256.Sum256(b))
			if prev, ok := names[d.Name()]; ok && prev != h {
				t.Errorf("%s: two files of this name with different bytes", d.Name())
			}
			names[d.Name()] = h
			if c.content[h] {
				return nil // the same export written again
			}
			c.content[h] = true
			deps, errs := depositdata.VerifyFile(b, &depositdata.Hoodi)
			if len(errs) > 0 {
				t.Errorf("%s does not verify: %v", path, errs)
			}
			for _, dep := range deps {
				if other, dup := c.byKey[dep.Pubkey]; dup && other != h {
					t.Errorf("0x%s is handed out in two different deposit files (%s)", dep.Pubkey[:16], path)
				}
				c.byKey[dep.Pubkey] = h
			}
			return nil
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	return c
}

// listed returns the pubkeys and states of the store.
func listed(t *testing.T, b backend, backendArgs []string) map[string]string {
	t.Helper()
	r := mustRun(t, b, append([]string{"list", "--json"}, storeArgs(backendArgs)...)...)
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var e struct {
			Pubkey string `json:"pubkey"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("list --json: %v: %q", err, line)
		}
		out[e.Pubkey] = e.Status
	}
	return out
}

// complete finishes every open export and checks that every stored
// validator is in exactly one written file, no more, no less.
func complete(t *testing.T, b backend, backendArgs []string, out string, roots ...string) *census {
	t.Helper()
	r := mustRun(t, b, append([]string{"list", "--exports", "--json"}, storeArgs(backendArgs)...)...)
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var e struct {
			ID    string `json:"export_id"`
			State string `json:"state"`
			Kind  string `json:"kind"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == "top-up" {
			continue // signed with the keys: top-up writes it (topup_test.go counts those)
		}
		// Writing every export again (sealed or not) must reproduce, never add.
		rr := run(t, b, "", append([]string{"export-deposits", "--export-id", e.ID, "--out", out, "--withdrawal-address", operator}, storeArgs(backendArgs)...)...)
		if rr.code != 0 {
			t.Fatalf("export-deposits --export-id %s: %s", e.ID, rr.stderr)
		}
	}
	// Whatever no export holds yet goes out now, once.
	rr := run(t, b, "", append([]string{"export-deposits", "--all", "--out", out, "--withdrawal-address", operator}, storeArgs(backendArgs)...)...)
	if rr.code != 0 && !strings.Contains(rr.stderr, "no deposit to hand out") {
		t.Fatalf("export-deposits --all: %s", rr.stderr)
	}
	c := count(t, append(roots, out)...)
	states := listed(t, b, backendArgs)
	for pk, st := range states {
		if _, ok := c.byKey[pk]; !ok {
			t.Errorf("stored validator 0x%s (%s) is in no deposit file: lost", pk[:16], st)
		}
		if st == "generated" {
			t.Errorf("0x%s is still generated after completion", pk[:16])
		}
	}
	for pk := range c.byKey {
		if _, ok := states[pk]; !ok {
			t.Errorf("a deposit file holds 0x%s, which the store does not", pk[:16])
		}
	}
	return c
}

// ---- scenarios ----------------------------------------------------------------

// TestKillAtEveryPoint SIGKILLs generate and export-deposits at every point
// between storing a validator and writing its file, then completes the
// runs.
func TestKillAtEveryPoint(t *testing.T) {
	t.Parallel()
	points := [][]string{
		{"store:2"}, {"export:1"}, {"claim:1"}, {"freeze:1"}, {"claimed:1"}, {"written:1"},
		{"claim:1", "freeze:1", "claimed:1", "written:1"},
	}
	for _, mk := range []func(*testing.T) backend{embedded, func(t *testing.T) backend { return dynamo(t, "") }} {
		b := mk(t)
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for i, kills := range points {
				t.Run(strings.Join(kills, "+"), func(t *testing.T) {
					t.Parallel()
					ba := b.args(t)
					root := t.TempDir()
					req := fmt.Sprintf("k%d-%s", i, clitest.RandomHex(t, 3))
					for k, at := range kills {
						out := filepath.Join(root, fmt.Sprint("run", k))
						r := run(t, b, at, genArgs(req, out, 8, ba)...)
						if r.signal != syscall.SIGKILL || !strings.Contains(r.stderr, "crashpoint "+at) {
							t.Fatalf("%s: not killed there (exit %d): %s", at, r.code, r.stderr)
						}
					}
					final := filepath.Join(root, "final")
					mustRun(t, b, genArgs(req, final, 8, ba)...)
					c := complete(t, b, ba, filepath.Join(root, "complete"), root)
					if len(c.byKey) != 8 {
						t.Fatalf("%d validators handed out, want 8", len(c.byKey))
					}
				})
			}
			// export-deposits killed between its claim and its file.
			for _, at := range []string{"claim:1", "freeze:1", "claimed:1"} {
				t.Run("export-deposits-"+at, func(t *testing.T) {
					t.Parallel()
					ba := b.args(t)
					root := t.TempDir()
					req := "e-" + clitest.RandomHex(t, 3)
					// Stored but not exported: generate killed before its export.
					if r := run(t, b, "export:1", genArgs(req, filepath.Join(root, "g"), 6, ba)...); r.signal != syscall.SIGKILL {
						t.Fatalf("generate not killed: %s", r.stderr)
					}
					exp := append([]string{"export-deposits", "--all", "--out", filepath.Join(root, "x1"), "--withdrawal-address", operator}, storeArgs(ba)...)
					if r := run(t, b, at, exp...); r.signal != syscall.SIGKILL {
						t.Fatalf("export-deposits not killed at %s: %s", at, r.stderr)
					}
					// A new --all export refuses while the killed one is open,
					// and names it; finishing it writes its file.
					r := run(t, b, "", append([]string{"export-deposits", "--all", "--out", filepath.Join(root, "x2"), "--withdrawal-address", operator}, storeArgs(ba)...)...)
					if r.code != 1 || !strings.Contains(r.stderr, "--export-id") {
						t.Fatalf("export after an interrupted one: exit %d: %s", r.code, r.stderr)
					}
					c := complete(t, b, ba, filepath.Join(root, "complete"), root)
					if len(c.byKey) != 6 {
						t.Fatalf("%d validators handed out, want 6", len(c.byKey))
					}
				})
			}
		})
	}
}

// TestSignalsWhileWriting sends SIGINT or SIGTERM to generate at random
// moments around its export (the reproduction: as soon as the
// deposit file exists), then re-runs it.
func TestSignalsWhileWriting(t *testing.T) {
	t.Parallel()
	b := embedded(t)
	for i, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGINT, syscall.SIGTERM} {
		t.Run(fmt.Sprint(sig, "-", i), func(t *testing.T) {
			t.Parallel()
			ba := b.args(t)
			root := t.TempDir()
			req := "sig-" + clitest.RandomHex(t, 3)
			out := filepath.Join(root, "first")
			cmd := command(t, b, "", genArgs(req, out, 150, ba)...)
			var so, se syncBuffer
			cmd.Stdout, cmd.Stderr = &so, &se
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Odd trials: as soon as the file exists; even: at a moment
			// during the run.
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				if i%2 == 1 {
					if m, _ := filepath.Glob(filepath.Join(out, "deposit_data-*.json")); len(m) > 0 {
						break
					}
				} else if so.Len() > 0 || strings.Contains(se.String(), "request id") {
					time.Sleep(time.Duration(50+i*40) * time.Millisecond)
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			_ = cmd.Process.Signal(sig)
			werr := cmd.Wait()
			r := wait(t, cmd, werr, bytes.NewBufferString(so.String()), bytes.NewBufferString(se.String()))
			if r.code != 0 && r.code != 130 && r.code != 1 {
				t.Fatalf("interrupted run: exit %d (signal %v): %s", r.code, r.signal, r.stderr)
			}
			mustRun(t, b, genArgs(req, filepath.Join(root, "rerun"), 150, ba)...)
			c := complete(t, b, ba, filepath.Join(root, "complete"), root)
			if len(c.byKey) != 150 {
				t.Fatalf("%d validators handed out, want 150", len(c.byKey))
			}
		})
	}
}

// race runs fns at once.
func race(fns ...func()) {
	var wg sync.WaitGroup
	for _, f := range fns {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	wg.Wait()
}

// TestRacingCommands runs pairs of commands at once, repeatedly.
func TestRacingCommands(t *testing.T) {
	t.Parallel()
	for _, mk := range []func(*testing.T) backend{embedded, func(t *testing.T) backend { return dynamo(t, "") }} {
		b := mk(t)
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			t.Run("same request twice", func(t *testing.T) {
				t.Parallel()
				for trial := range 5 {
					ba := b.args(t)
					root := t.TempDir()
					req := fmt.Sprintf("same-%d-%s", trial, clitest.RandomHex(t, 3))
					var r1, r2 result
					race(func() { r1 = run(t, b, "", genArgs(req, filepath.Join(root, "a"), 20, ba)...) },
						func() { r2 = run(t, b, "", genArgs(req, filepath.Join(root, "b"), 20, ba)...) })
					for _, r := range []result{r1, r2} {
						if r.code != 0 && r.code != 1 {
							t.Fatalf("exit %d: %s", r.code, r.stderr)
						}
					}
					c := complete(t, b, ba, filepath.Join(root, "complete"), root)
					if len(c.byKey) != 20 {
						t.Fatalf("trial %d: %d validators handed out, want 20", trial, len(c.byKey))
					}
				}
			})
			t.Run("export during generate", func(t *testing.T) {
				t.Parallel()
				for trial := range 3 {
					ba := b.args(t)
					root := t.TempDir()
					req := fmt.Sprintf("eg-%d-%s", trial, clitest.RandomHex(t, 3))
					var done atomic.Bool
					race(func() {
						run(t, b, "", genArgs(req, filepath.Join(root, "g"), 120, ba)...)
						done.Store(true)
					}, func() {
						for n := 0; !done.Load() && n < 200; n++ {
							run(t, b, "", append([]string{"export-deposits", "--all", "--out", filepath.Join(root, fmt.Sprint("x", n)), "--withdrawal-address", operator}, storeArgs(ba)...)...)
						}
					})
					mustRun(t, b, genArgs(req, filepath.Join(root, "rerun"), 120, ba)...)
					c := complete(t, b, ba, filepath.Join(root, "complete"), root)
					if len(c.byKey) != 120 {
						t.Fatalf("trial %d: %d validators handed out, want 120", trial, len(c.byKey))
					}
				}
			})
			t.Run("decrypt during generate", func(t *testing.T) {
				t.Parallel()
				ba := b.args(t)
				root := t.TempDir()
				req := "dg-" + clitest.RandomHex(t, 3)
				var done atomic.Bool
				loaded := map[string]bool{}
				race(func() {
					run(t, b, "", genArgs(req, filepath.Join(root, "g"), 120, ba)...)
					done.Store(true)
				}, func() {
					for n := 0; !done.Load() && n < 100; n++ {
						dir := filepath.Join(root, fmt.Sprint("w3s", n))
						r := run(t, b, "", append([]string{"decrypt", "--all", "--raw-configs", "--web3signer-dir", dir, "--json"}, storeArgs(ba)...)...)
						if r.code == 0 {
							var out struct {
								Pubkeys []string `json:"pubkeys"`
							}
							if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
								t.Error(err)
							}
							for _, pk := range out.Pubkeys {
								if loaded[pk] {
									t.Errorf("0x%s loaded by two decrypt runs", pk[:16])
								}
								loaded[pk] = true
							}
						}
					}
				})
				mustRun(t, b, genArgs(req, filepath.Join(root, "rerun"), 120, ba)...)
				c := complete(t, b, ba, filepath.Join(root, "complete"), root)
				if len(c.byKey) != 120 {
					t.Fatalf("%d validators handed out, want 120", len(c.byKey))
				}
				for pk := range loaded {
					if _, ok := c.byKey[pk]; !ok {
						t.Errorf("0x%s was loaded but is in no deposit file", pk[:16])
					}
				}
			})
		})
	}
}

// TestThrottledDynamoDB puts a proxy in front of DynamoDB Local that
// answers a share of requests with ThrottlingException, as DynamoDB does
// under load; runs fail cleanly or succeed, and complete afterwards.
func TestThrottledDynamoDB(t *testing.T) {
	t.Parallel()
	target, err := url.Parse(testenv.DynamoDBEndpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	var throttle atomic.Bool
	throttle.Store(true)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if throttle.Load() && n.Add(1)%3 == 0 {
			_, _ = io.Copy(io.Discard, r.Body)
			body := `{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}`
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.Header().Set("x-amzn-ErrorType", "ThrottlingException")
			w.Header().Set("x-amz-crc32", fmt.Sprint(crc32.ChecksumIEEE([]byte(body)))) // as DynamoDB sends it
			w.WriteHeader(400)
			_, _ = io.WriteString(w, body)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	b := dynamo(t, "http://"+ln.Addr().String())
	ba := b.args(t)
	root := t.TempDir()
	req := "thr-" + clitest.RandomHex(t, 3)
	for k := range 3 {
		r := run(t, b, "", genArgs(req, filepath.Join(root, fmt.Sprint("t", k)), 40, ba)...)
		if r.code != 0 && r.code != 1 {
			t.Fatalf("throttled run: exit %d: %s", r.code, r.stderr)
		}
		if r.code == 1 && strings.Count(strings.TrimSpace(r.stderr), "\n") > 3 {
			t.Errorf("throttled run failed with a long error: %s", r.stderr)
		}
	}
	throttle.Store(false)
	mustRun(t, b, genArgs(req, filepath.Join(root, "final"), 40, ba)...)
	c := complete(t, b, ba, filepath.Join(root, "complete"), root)
	if len(c.byKey) != 40 {
		t.Fatalf("%d validators handed out, want 40", len(c.byKey))
	}
	if n.Load() == 0 {
		t.Fatal("the proxy saw no request")
	}
}

// syncBuffer is a bytes.Buffer a running process writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}
