// Package concurrency holds the concurrency tests of the pipeline (issue 6,
// item 3): several `ethkeygen generate` processes on one embedded store
// file, and concurrent custody.Generate calls on DynamoDB Local with
// local-kms. Whatever the interleaving: the store file passes SQLite's
// integrity_check, no pubkey is stored twice and no slot of a request is
// held twice, every process exits 0 or fails with one clean error line, and
// once every request is complete (re-run if it failed) each holds exactly
// its count of validators, all of which open.
package concurrency

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

const (
	count     = 12 // validators per request
	processes = 3  // concurrent generators
)

var binary string

func TestMain(m *testing.M) { os.Exit(clitest.Main(m, "concurrency", &binary)) }

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Errorf("running ethkeygen: %v", err)
		r.code = -1
	}
	if ctx.Err() != nil {
		t.Errorf("ethkeygen %v did not finish in time: %s", args, r.stderr)
	}
	return r
}

// checkClean accepts a success, or a failure reported as exit 1 with one
// error line "ethkeygen generate: ..." and nothing that looks like a crash.
func checkClean(t *testing.T, r result) bool {
	t.Helper()
	if r.code == 0 {
		return true
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	var errLines int
	for _, l := range lines {
		if strings.HasPrefix(l, "ethkeygen ") {
			errLines++
		}
	}
	if r.code != 1 || errLines != 1 || !strings.HasPrefix(last, "ethkeygen generate: ") ||
		strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
		t.Errorf("unclean failure: exit %d, stderr:\n%s", r.code, r.stderr)
	} else {
		t.Logf("clean failure: %s", last)
	}
	return false
}

// concurrently runs fn(0..n-1) at once, released together.
func concurrently(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

// TestEmbeddedProcesses runs three generate processes at once on one store
// file that does not exist yet, with a local identity that does not exist
// yet either: first the same request id, then three different ids.
func TestEmbeddedProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	db := filepath.Join(dir, "ethkeygen.db")
	env := []string{"ETHKEYGEN_HOME=" + home}
	common := []string{"generate", "--json", "--count", fmt.Sprint(count), "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--secret-format", "raw"}

	t.Run("same request", func(t *testing.T) {
		out := filepath.Join(dir, "out-same")
		args := append(common, "--out", out, "--request-id", "same")
		results := make([]result, processes)
		concurrently(processes, func(i int) { results[i] = run(t, env, args...) })
		ok := 0
		for _, r := range results {
			if checkClean(t, r) {
				ok++
			}
		}
		if ok == 0 {
			// Every process may fail cleanly; the request must then
			// complete when run again.
			if r := run(t, env, args...); !checkClean(t, r) {
				t.Fatal("the request does not complete after the concurrent runs")
			}
		}
		clitest.IntegrityCheck(t, db)
		recs := checkStore(t, db, map[string]int{"same": count})
		for _, r := range results {
			if r.code == 0 {
				checkOutput(t, r.stdout, recs)
			}
		}
		checkDepositFiles(t, out, recs, "same")
	})

	t.Run("different requests", func(t *testing.T) {
		out := filepath.Join(dir, "out-diff")
		want := map[string]int{"same": count}
		results := make([]result, processes)
		id := func(i int) string { return fmt.Sprintf("diff-%d", i) }
		concurrently(processes, func(i int) {
			results[i] = run(t, env, append(common, "--out", out, "--request-id", id(i))...)
		})
		for i, r := range results {
			want[id(i)] = count
			if !checkClean(t, r) {
				if r := run(t, env, append(common, "--out", out, "--request-id", id(i))...); !checkClean(t, r) {
					t.Fatalf("request %s does not complete after the concurrent runs", id(i))
				}
			}
		}
		clitest.IntegrityCheck(t, db)
		recs := checkStore(t, db, want)
		for _, r := range results {
			if r.code == 0 {
				checkOutput(t, r.stdout, recs)
			}
		}
		checkDepositFiles(t, out, recs, id(0), id(1), id(2))
	})
}

// checkStore checks the store file: requests hold exactly want[id]
// records, one per slot, no pubkey twice in the whole store, and every
// record opens with the local identity.
func checkStore(t *testing.T, db string, want map[string]int) map[string]*store.Record {
	t.Helper()
	st, err := sqlitestore.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	op, err := (&backend.Config{KeyDir: filepath.Join(filepath.Dir(db), "home")}).Opener(t.Context(), false, "")
	if err != nil {
		t.Fatal(err)
	}
	return checkRecords(t, st, custody.NewOpener(st, op), want, true)
}

func checkRecords(t *testing.T, st store.Store, op *custody.Opener, want map[string]int, wholeStore bool) map[string]*store.Record {
	t.Helper()
	all := map[string]*store.Record{}
	for id, n := range want {
		slots := map[int]string{}
		for rec, err := range st.Query(t.Context(), store.Filter{RequestID: id}) {
			if err != nil {
				t.Fatalf("query %s: %v", id, err)
			}
			if other, dup := slots[rec.Slot]; dup {
				t.Fatalf("request %s: slot %d held by %s and %s", id, rec.Slot, other, rec.Pubkey)
			}
			if _, dup := all[rec.Pubkey]; dup {
				t.Fatalf("pubkey %s stored twice", rec.Pubkey)
			}
			if rec.Slot < 0 || rec.Slot >= n {
				t.Fatalf("request %s: slot %d out of range", id, rec.Slot)
			}
			slots[rec.Slot] = rec.Pubkey
			all[rec.Pubkey] = rec
			s, err := op.OpenRecord(t.Context(), rec)
			if err != nil {
				t.Fatalf("record %s does not open: %v", rec.Pubkey, err)
			}
			s.Destroy()
		}
		if len(slots) != n {
			t.Fatalf("request %s: %d records, want %d", id, len(slots), n)
		}
	}
	if wholeStore {
		seen := 0
		for _, err := range st.Query(t.Context(), store.Filter{}) {
			if err != nil {
				t.Fatal(err)
			}
			seen++
		}
		if seen != len(all) {
			t.Fatalf("the store holds %d records, the requests %d", seen, len(all))
		}
	}
	return all
}

// checkOutput: a successful run printed exactly stored validators.
func checkOutput(t *testing.T, stdout string, recs map[string]*store.Record) {
	t.Helper()
	var out struct {
		DepositData string `json:"deposit_data"`
		Validators  []struct {
			Slot   int    `json:"slot"`
			Pubkey string `json:"pubkey"`
		} `json:"validators"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("generate --json: %v: %q", err, stdout)
	}
	if len(out.Validators) != count {
		t.Fatalf("a run printed %d validators", len(out.Validators))
	}
	for _, v := range out.Validators {
		if rec := recs[v.Pubkey]; rec == nil || rec.Slot != v.Slot {
			t.Fatalf("a run printed %+v, which is not stored", v)
		}
	}
}

// checkDepositFiles: every deposit file verifies and names only stored
// validators with their stored deposit data, and together the files cover
// every stored validator. (A run writes only deposits not exported yet, so
// with several runs of one request each file may hold part of it.)
func checkDepositFiles(t *testing.T, dir string, recs map[string]*store.Record, requests ...string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "deposit_data-*.json"))
	if len(files) == 0 {
		t.Fatalf("no deposit file in %s", dir)
	}
	covered := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		deps, errs := depositdata.VerifyFile(b, &depositdata.Hoodi)
		if len(errs) != 0 || len(deps) == 0 {
			t.Fatalf("%s: %d entries, %v", filepath.Base(f), len(deps), errs)
		}
		for _, d := range deps {
			rec := recs[d.Pubkey]
			var stored depositdata.Deposit
			if rec == nil || json.Unmarshal(rec.DepositData, &stored) != nil || stored != *d {
				t.Fatalf("%s: entry for %s is not a stored validator", filepath.Base(f), d.Pubkey)
			}
			covered[d.Pubkey] = true
		}
	}
	for pk, rec := range recs {
		if slices.Contains(requests, rec.RequestID) && !covered[pk] {
			t.Fatalf("stored validator %s is in no deposit file", pk)
		}
	}
}

// TestDynamoDBGenerate runs custody.Generate six times at once on DynamoDB
// Local, sealing with local-kms: three calls share one request id (as a
// retried Lambda would) and three have their own.
func TestDynamoDBGenerate(t *testing.T) {
	t.Parallel()
	kmsCfg := testenv.AWSConfig(t, testenv.KMSEndpoint(t))
	keyARN := testenv.NewKMSKey(t, kmsCfg)
	ddb := dynamodb.NewFromConfig(testenv.AWSConfig(t, testenv.DynamoDBEndpoint(t)))
	table := "concurrency-" + clitest.RandomHex(t, 6)
	if err := dynamostore.CreateTable(t.Context(), ddb, table); err != nil {
		t.Fatal(err)
	}
	st, err := dynamostore.New(ddb, table)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sealer := envelope.NewKMSSealer(kms.NewFromConfig(kmsCfg), keyARN)

	ids := []string{"shared", "shared", "shared", "own-0", "own-1", "own-2"}
	req := func(id string) custody.Request {
		return custody.Request{ID: id, Count: count, Network: depositdata.Hoodi, Format: custody.FormatRaw}
	}
	generate := func(id string) (*custody.Result, error) {
		// One Generator per call, as separate processes or Lambdas have.
		g, err := custody.NewGenerator(st, sealer)
		if err != nil {
			return nil, err
		}
		return g.Generate(t.Context(), req(id), nil)
	}
	results := make([]*custody.Result, len(ids))
	errs := make([]error, len(ids))
	concurrently(len(ids), func(i int) { results[i], errs[i] = generate(ids[i]) })

	want := map[string]int{}
	for i, id := range ids {
		want[id] = count
		if errs[i] != nil {
			// A clean failure names the request and asks for a re-run;
			// the re-run must complete it.
			if strings.Contains(errs[i].Error(), "\n") {
				t.Errorf("generate %s: multi-line error %q", id, errs[i])
			}
			t.Logf("generate %s failed cleanly: %v", id, errs[i])
			if results[i], errs[i] = generate(id); errs[i] != nil {
				t.Fatalf("generate %s: re-run: %v", id, errs[i])
			}
		}
	}
	recs := checkRecords(t, st, custody.NewOpener(st, envelope.NewKMSOpener(kms.NewFromConfig(kmsCfg))), want, true)
	created := map[string]int{}
	for i, res := range results {
		if res.RequestID != ids[i] || len(res.Validators) != count {
			t.Fatalf("result %d: %s with %d validators", i, res.RequestID, len(res.Validators))
		}
		created[ids[i]] += res.Created
		for s, v := range res.Validators {
			if rec := recs[v.Pubkey]; rec == nil || rec.Slot != s || rec.RequestID != ids[i] {
				t.Fatalf("result %d slot %d: %s is not the stored validator", i, s, v.Pubkey)
			}
		}
	}
	for id, n := range created {
		if n != count {
			t.Errorf("request %s: the calls report %d created in total, want %d", id, n, count)
		}
	}
}
