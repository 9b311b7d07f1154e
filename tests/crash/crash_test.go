// Package crash holds the crash-consistency tests of `ethkeygen generate`
// (issue 6, item 2). They build the CLI with -tags crashtest, whose
// ETHKEYGEN_CRASH_AT=PHASE:N makes the process SIGKILL itself at the N-th
// occurrence of a phase (derive, seal, store, export; see
// adapters/ethkeygen/crashpoint_crashtest.go), kill runs at many points,
// re-run the same request id and check what the pipeline promises:
//
//   - after every kill the store is readable (SQLite integrity_check is ok,
//     DynamoDB queries work) and holds no more than the request's count, one
//     record per slot;
//   - the re-run completes: exactly count records, no duplicate pubkey;
//   - every deposit entry ever written out (every deposit_data-*.json left
//     by the killed runs and the final one) belongs to a stored record whose
//     sealed secret opens to the entry's key;
//   - the final deposit file verifies.
//
// Each backend runs 24 kills: 12 single kills spread over the phases and 4
// chains that kill successive re-runs of one request.
package crash

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/internal/backend"
	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/dynamostore"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
	"github.com/ethkeygen/ethkeygen/tests/clitest"
)

// count is the size of every request: small enough for a trial of about a
// second, large enough for several store writes in flight at once.
const count = 12

// binary is the crashtest build of the CLI, made once by TestMain.
var binary string

func TestMain(m *testing.M) { os.Exit(clitest.Main(m, "crash", &binary, "crashtest")) }

// trial is a request killed once per entry of kills (in successive runs
// of the same request id), then run to completion.
type trial struct {
	name  string
	kills []string
}

var trials = []trial{
	{"derive-first", []string{"derive:1"}},
	{"derive-4", []string{"derive:4"}},
	{"derive-9", []string{"derive:9"}},
	{"derive-last", []string{"derive:12"}},
	{"seal-first", []string{"seal:1"}},
	{"seal-5", []string{"seal:5"}},
	{"seal-11", []string{"seal:11"}},
	{"store-first", []string{"store:1"}},
	{"store-3", []string{"store:3"}},
	{"store-6", []string{"store:6"}},
	{"store-last", []string{"store:12"}},
	{"export", []string{"export:1"}},
	{"chain-all-phases", []string{"derive:2", "seal:2", "store:2", "export:1"}},
	// store:1 each time: with 4 writers in flight a run may store up to 4
	// before it dies, and every run of the chain must still have work left.
	{"chain-store-1x3", []string{"store:1", "store:1", "store:1"}},
	{"chain-seal-derive-export", []string{"seal:3", "derive:3", "export:1"}},
	{"chain-export-twice", []string{"export:1", "export:1"}},
}

func totalKills() (n int) {
	for _, tr := range trials {
		n += len(tr.kills)
	}
	return n
}

// harness is one backend under test.
type harness struct {
	env    []string // extra environment of the CLI
	opener envelope.Opener
	// trial prepares one trial in dir: the backend flags for generate,
	// the store to inspect, and the check run right after each kill.
	trial func(t *testing.T, dir string) (args []string, st store.Store, readable func(t *testing.T))
}

// parallelTrials bounds the trials in flight: a trial mostly waits for
// fsync or the servers, so a few at once keep the package fast on 2 cores.
const parallelTrials = 4

func TestCrashEmbedded(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "home")
	cfg := &backend.Config{KeyDir: home}
	// Create the local identity before the parallel trials need it.
	if _, _, err := cfg.Sealers(t.Context()); err != nil {
		t.Fatal(err)
	}
	op, err := cfg.Opener(t.Context(), false, "")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{env: []string{"ETHKEYGEN_HOME=" + home}, opener: op}
	h.trial = func(t *testing.T, dir string) ([]string, store.Store, func(*testing.T)) {
		db := filepath.Join(dir, "ethkeygen.db")
		st := &lazyStore{path: db}
		t.Cleanup(st.close)
		return []string{"--db", db}, st, func(t *testing.T) {
			t.Helper()
			clitest.IntegrityCheck(t, db)
			if err := st.open(t); err != nil {
				t.Fatalf("store unreadable after a kill: %v", err)
			}
		}
	}
	runTrials(t, h)
}

// lazyStore opens the store file on the first check, after the first kill.
type lazyStore struct {
	path string
	*sqlitestore.Store
}

func (l *lazyStore) open(t *testing.T) error {
	if l.Store != nil {
		return nil
	}
	st, err := sqlitestore.Open(t.Context(), l.path)
	l.Store = st
	return err
}

func (l *lazyStore) close() {
	if l.Store != nil {
		l.Store.Close()
	}
}

func TestCrashAWS(t *testing.T) {
	t.Parallel()
	kmsEP := testenv.KMSEndpoint(t)
	ddbEP := testenv.DynamoDBEndpoint(t)
	kmsCfg := testenv.AWSConfig(t, kmsEP)
	keyARN := testenv.NewKMSKey(t, kmsCfg)
	table := "crash-" + clitest.RandomHex(t, 6)
	ddb := dynamodb.NewFromConfig(testenv.AWSConfig(t, ddbEP))
	if err := dynamostore.CreateTable(t.Context(), ddb, table); err != nil {
		t.Fatal(err)
	}
	st, err := dynamostore.New(ddb, table)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	args := []string{"--dynamodb-table", table, "--kms-key-id", keyARN, "--region", testenv.Region}
	h := &harness{
		env: []string{"AWS_ENDPOINT_URL_KMS=" + kmsEP, "AWS_ENDPOINT_URL_DYNAMODB=" + ddbEP,
			"AWS_ACCESS_KEY_ID=AKIDETHKEYGENTEST", "AWS_SECRET_ACCESS_KEY=ethkeygen-test-secret",
			"AWS_REGION=" + testenv.Region, "AWS_EC2_METADATA_DISABLED=true", "AWS_PROFILE=", "AWS_SESSION_TOKEN="},
		opener: envelope.NewKMSOpener(kms.NewFromConfig(kmsCfg)),
		trial: func(*testing.T, string) ([]string, store.Store, func(*testing.T)) {
			return args, st, func(t *testing.T) {
				t.Helper()
				// DynamoDB has no file to corrupt: the table must answer
				// queries (here by status, the GSI) after the kill.
				for _, err := range st.Query(t.Context(), store.Filter{Status: store.StatusGenerated}) {
					if err != nil {
						t.Fatalf("table unreadable after a kill: %v", err)
					}
				}
			}
		},
	}
	runTrials(t, h)
}

func runTrials(t *testing.T, h *harness) {
	start := time.Now()
	var kills atomic.Int64
	sem := make(chan struct{}, parallelTrials)
	var wg sync.WaitGroup
	for i, tr := range trials {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			t.Run(tr.name, func(t *testing.T) {
				dir := t.TempDir()
				out := filepath.Join(dir, "out")
				backendArgs, st, readable := h.trial(t, dir)
				reqID := fmt.Sprintf("crash-%d-%s", i, clitest.RandomHex(t, 4))
				args := append([]string{"generate", "--json", "--count", fmt.Sprint(count), "--chain", "hoodi", "--bls-withdrawal",
					"--out", out, "--request-id", reqID, "--secret-format", "raw"}, backendArgs...)
				for _, at := range tr.kills {
					res := run(t, h.env, at, args)
					if !res.killed {
						t.Fatalf("ETHKEYGEN_CRASH_AT=%s: the run was not killed (exit %d): %s", at, res.code, res.stderr)
					}
					if !strings.Contains(res.stderr, "crashpoint "+at) {
						t.Fatalf("killed, but not at %s: %s", at, res.stderr)
					}
					kills.Add(1)
					readable(t)
					checkPartial(t, st, reqID)
				}
				res := run(t, h.env, "", args)
				if res.code != 0 {
					t.Fatalf("re-run of %s: exit %d: %s", reqID, res.code, res.stderr)
				}
				readable(t)
				checkComplete(t, st, custody.NewOpener(st, h.opener), reqID, out, res.stdout)
			})
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if n := kills.Load(); n != int64(totalKills()) {
		t.Fatalf("%d kills, want %d", n, totalKills())
	}
	t.Logf("%d kills across derive/seal/store/export survived in %d trials (%.1fs)", kills.Load(), len(trials), time.Since(start).Seconds())
}

type result struct {
	code           int
	killed         bool
	stdout, stderr string
}

// run runs the CLI with ETHKEYGEN_CRASH_AT=at (none when empty).
func run(t *testing.T, env []string, at string, args []string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "ETHKEYGEN_CRASH_AT="+at)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			r.killed = true
		}
	default:
		t.Fatalf("running %s: %v", binary, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("ethkeygen %s did not finish in time: %s", at, r.stderr)
	}
	return r
}

// records reads a request's records, failing on a slot held twice, a
// pubkey seen twice or a malformed record.
func records(t *testing.T, st store.Store, reqID string) map[string]*store.Record {
	t.Helper()
	byPubkey := map[string]*store.Record{}
	bySlot := map[int]string{}
	for rec, err := range st.Query(t.Context(), store.Filter{RequestID: reqID}) {
		if err != nil {
			t.Fatalf("query %s: %v", reqID, err)
		}
		if _, err := custody.ValidatorOf(rec); err != nil {
			t.Fatal(err)
		}
		if _, dup := byPubkey[rec.Pubkey]; dup {
			t.Fatalf("pubkey %s stored twice", rec.Pubkey)
		}
		if other, dup := bySlot[rec.Slot]; dup {
			t.Fatalf("slot %d held by %s and %s", rec.Slot, other, rec.Pubkey)
		}
		if rec.Slot < 0 || rec.Slot >= count {
			t.Fatalf("slot %d outside the request", rec.Slot)
		}
		if len(rec.Sealed) == 0 {
			t.Fatalf("record %s has no sealed secret", rec.Pubkey)
		}
		byPubkey[rec.Pubkey], bySlot[rec.Slot] = rec, rec.Pubkey
	}
	return byPubkey
}

func checkPartial(t *testing.T, st store.Store, reqID string) {
	t.Helper()
	if n := len(records(t, st, reqID)); n > count {
		t.Fatalf("%d records after a kill, the request has %d", n, count)
	}
}

func checkComplete(t *testing.T, st store.Store, op *custody.Opener, reqID, out, stdout string) {
	t.Helper()
	recs := records(t, st, reqID)
	if len(recs) != count {
		t.Fatalf("request %s: %d records, want %d", reqID, len(recs), count)
	}
	for _, rec := range recs {
		s, err := op.OpenRecord(t.Context(), rec)
		if err != nil {
			t.Fatalf("stored secret of %s does not open: %v", rec.Pubkey, err)
		}
		s.Destroy()
		if rec.Status != store.StatusExported {
			t.Errorf("record %s: status %s after the completed run, want exported", rec.Pubkey, rec.Status)
		}
	}

	// Every deposit entry ever written out has its sealed secret stored.
	files, err := filepath.Glob(filepath.Join(out, "deposit_data-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no deposit files in %s (%v)", out, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		deps, errs := depositdata.VerifyFile(b, &depositdata.Hoodi)
		if len(errs) != 0 {
			t.Fatalf("%s: %v", filepath.Base(f), errs)
		}
		for _, d := range deps {
			rec, ok := recs[d.Pubkey]
			if !ok {
				t.Fatalf("%s: deposit for %s, which has no stored record", filepath.Base(f), d.Pubkey)
			}
			var stored depositdata.Deposit
			if err := json.Unmarshal(rec.DepositData, &stored); err != nil || stored != *d {
				t.Fatalf("%s: entry for %s differs from the stored deposit data", filepath.Base(f), d.Pubkey)
			}
		}
		if len(deps) != count {
			t.Errorf("%s: %d entries, want %d", filepath.Base(f), len(deps), count)
		}
	}

	// The final run's file lists exactly the request's validators.
	var final struct {
		DepositData string `json:"deposit_data"`
		Validators  []struct {
			Slot   int    `json:"slot"`
			Pubkey string `json:"pubkey"`
		} `json:"validators"`
	}
	if err := json.Unmarshal([]byte(stdout), &final); err != nil {
		t.Fatalf("generate --json: %v: %q", err, stdout)
	}
	if len(final.Validators) != count {
		t.Fatalf("final run printed %d validators", len(final.Validators))
	}
	for i, v := range final.Validators {
		if v.Slot != i || recs[v.Pubkey] == nil || recs[v.Pubkey].Slot != i {
			t.Fatalf("final run: validator %d is %+v, not the stored one", i, v)
		}
	}
	b, err := os.ReadFile(final.DepositData)
	if err != nil {
		t.Fatal(err)
	}
	if deps, errs := depositdata.VerifyFile(b, &depositdata.Hoodi); len(errs) != 0 || len(deps) != count {
		t.Fatalf("final deposit file: %d entries, %v", len(deps), errs)
	}
}
