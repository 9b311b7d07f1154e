package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ethkeygen/ethkeygen/custody/custodytest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/ethkeygen/ethkeygen/adapters/lambda/handler"
	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/fanout"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
)

// foFunction stands in for the Lambda Invoke API: it runs the real handler
// in-process over an embedded store and a local age sealer. Batches named
// in broken fail every time; batches in throttleOnce are throttled once.
type foFunction struct {
	h      *handler.Handler
	store  *sqlitestore.Store
	dbPath string
	keyDir string

	mu           sync.Mutex
	broken       map[string]bool
	throttleOnce map[string]bool
	calls        int
}

func newFoFunction(t *testing.T) *foFunction {
	t.Helper()
	e := custodytest.NewEmbedded(t)
	st, gen := e.Store, e.Generator
	a, _ := depositdata.ParseAddress(testAddress, false)
	return &foFunction{h: &handler.Handler{Generator: gen, AllowedChains: []string{"hoodi"}, MaxCount: 10,
		AllowedAddresses: []depositdata.Address{a}, AllowBLS: true}, store: st, dbPath: e.DBPath, keyDir: e.KeyDir,
		broken: map[string]bool{}, throttleOnce: map[string]bool{}}
}

func (f *foFunction) Invoke(ctx context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	var s custody.Spec
	_ = json.Unmarshal(in.Payload, &s)
	f.mu.Lock()
	f.calls++
	broken, throttled := f.broken[s.RequestID], f.throttleOnce[s.RequestID]
	delete(f.throttleOnce, s.RequestID)
	f.mu.Unlock()
	if throttled {
		return nil, &types.TooManyRequestsException{Message: aws.String("Rate exceeded")}
	}
	if broken {
		return &lambda.InvokeOutput{StatusCode: 200, FunctionError: aws.String("Unhandled"),
			Payload: []byte(`{"errorMessage":"Task timed out after 900.00 seconds","errorType":"Sandbox.Timedout"}`)}, nil
	}
	payload, err := f.h.Invoke(ctx, in.Payload)
	if err != nil {
		typ := fmt.Sprintf("%T", err)
		b, _ := json.Marshal(map[string]string{"errorMessage": err.Error(), "errorType": typ[strings.LastIndex(typ, ".")+1:]})
		return &lambda.InvokeOutput{StatusCode: 200, FunctionError: aws.String("Unhandled"), Payload: b}, nil
	}
	return &lambda.InvokeOutput{StatusCode: 200, Payload: payload}, nil
}

func (f *foFunction) records(t *testing.T) int {
	t.Helper()
	n := 0
	for _, err := range f.store.Query(t.Context(), store.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// withInvoker makes generate-lambda use inv for the length of the test.
func withInvoker(t *testing.T, inv fanout.Invoker) {
	t.Helper()
	old := newLambdaInvoker
	newLambdaInvoker = func(context.Context, string) (fanout.Invoker, error) { return inv, nil }
	t.Cleanup(func() { newLambdaInvoker = old })
}

func depositFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "deposit_data-*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestGenerateLambdaFanOut(t *testing.T) {
	f := newFoFunction(t)
	withInvoker(t, f)
	out := t.TempDir()
	f.throttleOnce["cli-run/b00001"] = true
	r := runCLI(t, "generate", "--lambda", "ethkeygen", "--count", "23", "--batch-size", "5", "--concurrency", "3",
		"--chain", "hoodi", "--withdrawal-address", testAddress, "--compounding", "--amount-gwei", "64000000000",
		"--secret-format", "raw", "--request-id", "cli-run", "--out", out, "--json", "--db", f.dbPath, "--key-dir", f.keyDir)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got struct {
		RequestID   string `json:"request_id"`
		Validators  int    `json:"validators"`
		Created     int    `json:"created"`
		Batches     int    `json:"batches"`
		Retried     int    `json:"retried"`
		DepositData string `json:"deposit_data"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if got.RequestID != "cli-run" || got.Validators != 23 || got.Created != 23 || got.Batches != 5 || got.Retried != 1 {
		t.Fatalf("%+v", got)
	}
	files := depositFiles(t, out)
	if len(files) != 1 || files[0] != got.DepositData {
		t.Fatalf("deposit files %v, reported %s", files, got.DepositData)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	deposits, errs := depositdata.VerifyFile(b, &depositdata.Hoodi)
	if len(errs) != 0 || len(deposits) != 23 {
		t.Fatalf("%d deposits, errors %v", len(deposits), errs)
	}
	for _, d := range deposits {
		if d.Amount != 64_000_000_000 || !strings.HasPrefix(d.WithdrawalCredentials, "02") {
			t.Fatalf("deposit %s: amount %d credentials %s", d.Pubkey, d.Amount, d.WithdrawalCredentials)
		}
	}
	if n := f.records(t); n != 23 {
		t.Fatalf("function store holds %d records", n)
	}
}

func TestGenerateLambdaFailsThenResumes(t *testing.T) {
	f := newFoFunction(t)
	withInvoker(t, f)
	out := t.TempDir()
	f.broken["resume/b00002"] = true
	args := []string{"generate-lambda", "--lambda", "ethkeygen", "--count", "12", "--batch-size", "3", "--concurrency", "2",
		"--retries", "1", "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "raw", "--request-id", "resume", "--out", out, "--db", f.dbPath, "--key-dir", f.keyDir}
	r := runCLI(t, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "resume/b00002") || !strings.Contains(r.stderr, "--request-id resume") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if files := depositFiles(t, out); len(files) != 0 {
		t.Fatalf("a failed run wrote %v", files)
	}
	delete(f.broken, "resume/b00002")
	r = runCLI(t, args...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	files := depositFiles(t, out)
	if len(files) != 1 {
		t.Fatalf("deposit files %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if deposits, errs := depositdata.VerifyFile(b, &depositdata.Hoodi); len(errs) != 0 || len(deposits) != 12 {
		t.Fatalf("%d deposits, errors %v", len(deposits), errs)
	}
	if n := f.records(t); n != 12 {
		t.Fatalf("function store holds %d records after the resumed run, want 12", n)
	}
	if lines := strings.Fields(r.stdout); len(lines) != 12 {
		t.Fatalf("stdout %q", r.stdout)
	}
}

func TestGenerateLambdaBadInput(t *testing.T) {
	f := newFoFunction(t)
	withInvoker(t, f)
	out := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--count", "3", "--chain", "hoodi"}, 2, "--lambda is required"},
		{[]string{"--lambda", "f", "--chain", "hoodi"}, 2, "--count is required"},
		{[]string{"--lambda", "f", "--count", "3"}, 2, "--chain or --fork-version"},
		{[]string{"--lambda", "f", "--count", "3", "--chain", "hoodi", "--bls-withdrawal", "--batch-size", "0"}, 2, "--batch-size"},
		{[]string{"--lambda", "f", "--count", "3", "--chain", "nope"}, 2, "unknown network"},
		{[]string{"--lambda", "f", "--count", "3", "--chain", "mainnet", "--bls-withdrawal"}, 1, "not allowed"},
		{[]string{"--lambda", "f", "--count", "3", "--chain", "hoodi"}, 2, "--withdrawal-address 0x.. or --bls-withdrawal is required"},
		{[]string{"--lambda", "f", "--count", "11", "--batch-size", "11", "--chain", "hoodi", "--bls-withdrawal", "--secret-format", "raw"}, 1, "count 11"},
	} {
		r := runCLI(t, append(append([]string{"generate-lambda"}, c.args...), "--out", out, "--db", f.dbPath, "--key-dir", f.keyDir)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d naming %q", c.args, r.code, r.stderr, c.code, c.want)
		}
	}
	if files := depositFiles(t, out); len(files) != 0 {
		t.Fatalf("refused runs wrote %v", files)
	}
}

// TestGenerateLambdaMarksExported: the fan-out hands the run's deposits
// out through its export in the function's store, and a repeat of the run
// re-writes that export instead of handing any deposit out again.
func TestGenerateLambdaMarksExported(t *testing.T) {
	f := newFoFunction(t)
	withInvoker(t, f)
	out := t.TempDir()
	args := []string{"generate", "--lambda", "ethkeygen", "--count", "6", "--batch-size", "4", "--chain", "hoodi", "--bls-withdrawal",
		"--secret-format", "raw", "--request-id", "mark-run", "--out", out, "--db", f.dbPath, "--key-dir", f.keyDir, "--json"}
	r := runCLI(t, args...)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	if l := runCLI(t, "list", "--db", f.dbPath, "--key-dir", f.keyDir, "--status", "exported", "--json"); strings.Count(l.stdout, "\n") != 6 {
		t.Fatalf("exported after the run: %q", l.stdout)
	}
	files := depositFiles(t, out)
	first, _ := os.ReadFile(files[0])
	// A repeat of the run re-writes its export: the same file, the same bytes.
	r = runCLI(t, args...)
	if r.code != 0 || len(depositFiles(t, out)) != 1 {
		t.Fatalf("repeat: %+v, files %v", r, depositFiles(t, out))
	}
	if again, _ := os.ReadFile(files[0]); string(again) != string(first) {
		t.Fatal("the repeat changed the run's deposit file")
	}
	// Without the store, nothing can be handed out: refused before any invocation.
	calls := f.calls
	noStore := []string{"generate", "--lambda", "ethkeygen", "--count", "2", "--chain", "hoodi", "--bls-withdrawal", "--request-id", "x", "--out", out}
	if r := runCLI(t, noStore...); r.code != 2 || !strings.Contains(r.stderr, "--dynamodb-table") || f.calls != calls {
		t.Fatalf("without a store: %+v", r)
	}
}
