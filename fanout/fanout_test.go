package fanout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

const testAddress = "0x0f51bb10119727a7e5eA3538074fb341F56B09Ad"

// Failure modes the fake function can be told to show.
type failure int

const (
	throttle     failure = iota + 1 // Invoke returns TooManyRequestsException
	crash                           // the function fails before generating
	lostResponse                    // the function generates, then the response is lost
	tamper                          // the function returns a malformed pubkey
)

// function runs the real handler in-process over an embedded store and a
// local age sealer, and injects failures per request id.
type function struct {
	h     *handler.Handler
	store *sqlitestore.Store
	cust  *custody.Custodian

	mu       sync.Mutex
	failures map[string][]failure
	always   map[string]failure
	calls    map[string]int
}

func newFunction(t *testing.T, allowed ...string) *function {
	t.Helper()
	e := custodytest.NewEmbedded(t)
	st, gen := e.Store, e.Generator
	if len(allowed) == 0 {
		allowed = []string{"hoodi"}
	}
	a, _ := depositdata.ParseAddress(testAddress, false)
	return &function{h: &handler.Handler{Generator: gen, AllowedChains: allowed, MaxCount: 20,
		AllowedAddresses: []depositdata.Address{a}, AllowBLS: true}, store: st, cust: e.Custodian,
		failures: map[string][]failure{}, always: map[string]failure{}, calls: map[string]int{}}
}

func (f *function) failOnce(id string, fs ...failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[id] = append(f.failures[id], fs...)
}

func (f *function) failAlways(id string, fl failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl == 0 {
		delete(f.always, id)
	} else {
		f.always[id] = fl
	}
}

func (f *function) Invoke(ctx context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	var spec struct {
		RequestID string `json:"request_id"`
	}
	_ = json.Unmarshal(in.Payload, &spec)
	f.mu.Lock()
	f.calls[spec.RequestID]++
	fl := f.always[spec.RequestID]
	if q := f.failures[spec.RequestID]; fl == 0 && len(q) > 0 {
		fl, f.failures[spec.RequestID] = q[0], q[1:]
	}
	f.mu.Unlock()

	switch fl {
	case throttle:
		return nil, &types.TooManyRequestsException{Message: aws.String("Rate exceeded"), Reason: types.ThrottleReasonConcurrentInvocationLimitExceeded}
	case crash:
		return errorOutput(&handler.GenerationFailed{}), nil
	}
	payload, err := f.h.Invoke(ctx, in.Payload)
	if err != nil {
		return errorOutput(err), nil
	}
	switch fl {
	case lostResponse:
		return nil, &types.ServiceException{Message: aws.String("connection reset after the function ran")}
	case tamper:
		var r map[string]any
		_ = json.Unmarshal(payload, &r)
		v := r["validators"].([]any)[0].(map[string]any)
		v["pubkey"] = strings.ToUpper(v["pubkey"].(string))
		payload, _ = json.Marshal(r)
	}
	return &lambda.InvokeOutput{StatusCode: 200, Payload: payload, ExecutedVersion: aws.String("$LATEST")}, nil
}

// errorOutput is what Lambda returns for a function error.
func errorOutput(err error) *lambda.InvokeOutput {
	typ := fmt.Sprintf("%T", err)
	typ = typ[strings.LastIndex(typ, ".")+1:]
	b, _ := json.Marshal(map[string]string{"errorMessage": err.Error(), "errorType": typ})
	return &lambda.InvokeOutput{StatusCode: 200, FunctionError: aws.String("Unhandled"), Payload: b}
}

func (f *function) callsOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func (f *function) records(t *testing.T) int {
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

func plan(runID string, total, batch int) fanout.Plan {
	return fanout.Plan{
		Function: "ethkeygen", Total: total, BatchSize: batch, Concurrency: 3, Backoff: time.Millisecond,
		Spec: custody.Spec{RequestID: runID, Chain: "hoodi", WithdrawalAddress: testAddress, SecretFormat: "raw"},
	}
}

// checkRun checks a run's result and hands its deposits out through the
// run's export, as generate --lambda does; it returns the file.
func checkRun(t *testing.T, f *function, res *fanout.Result, p fanout.Plan) []byte {
	t.Helper()
	if len(res.Pubkeys) != p.Total || len(res.Batches) != p.Batches() {
		t.Fatalf("%d validators in %d batches, want %d in %d", len(res.Pubkeys), len(res.Batches), p.Total, p.Batches())
	}
	seen := map[string]bool{}
	k := 0
	for i, b := range res.Batches {
		if b.Index != i || b.RequestID != fanout.BatchID(p.Spec.RequestID, i) || len(b.Pubkeys) != p.Batch(i).Count {
			t.Fatalf("batch %d: %+v", i, b)
		}
		for _, pk := range b.Pubkeys {
			if res.Pubkeys[k] != pk {
				t.Fatalf("validator %d out of batch order", k)
			}
			k++
		}
	}
	for _, pk := range res.Pubkeys {
		if seen[pk] {
			t.Fatalf("pubkey %s twice", pk)
		}
		seen[pk] = true
	}
	// The whole run makes one valid Launchpad file, through its export.
	a, _ := depositdata.ParseAddress(testAddress, false)
	exp, err := f.cust.Export(t.Context(), custody.ExportRequest{ID: fanout.RunExportID(p.Spec.RequestID), Pubkeys: res.Pubkeys,
		SkipExported: true, Withdrawal: custody.Withdrawal{Address: &a}})
	if err != nil {
		t.Fatal(err)
	}
	deps, errs := depositdata.VerifyFile(exp.File, &depositdata.Hoodi)
	if len(errs) != 0 || len(deps) != p.Total {
		t.Fatalf("%d deposits, %v", len(deps), errs)
	}
	for i, d := range deps {
		if d.Pubkey != res.Pubkeys[i] {
			t.Fatalf("deposit %d is not the run's validator %d", i, i)
		}
	}
	return exp.File
}

func TestBatchIDsAreDeterministic(t *testing.T) {
	p := plan("run", 23, 5)
	if p.Batches() != 5 {
		t.Fatalf("%d batches", p.Batches())
	}
	for i, want := range []struct {
		id    string
		count int
	}{{"run/b00000", 5}, {"run/b00001", 5}, {"run/b00002", 5}, {"run/b00003", 5}, {"run/b00004", 3}} {
		if s := p.Batch(i); s.RequestID != want.id || s.Count != want.count || s.Chain != "hoodi" {
			t.Fatalf("batch %d: %+v", i, s)
		}
	}
}

func TestRunRetriesFailedBatches(t *testing.T) {
	f := newFunction(t)
	p := plan("retry-run", 23, 5)
	f.failOnce("retry-run/b00001", throttle, crash)
	f.failOnce("retry-run/b00003", lostResponse)
	f.failOnce("retry-run/b00004", crash)
	var mu sync.Mutex
	var seen []int
	p.Progress = func(done, total int) {
		mu.Lock()
		defer mu.Unlock()
		if total != 23 || (len(seen) > 0 && done <= seen[len(seen)-1]) {
			t.Errorf("progress %d/%d after %v", done, total, seen)
		}
		seen = append(seen, done)
	}
	res, err := fanout.Run(t.Context(), f, p)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, f, res, p)
	if seen[len(seen)-1] != 23 || len(seen) != 5 {
		t.Fatalf("progress %v", seen)
	}
	if res.Retried != 4 || f.callsOf("retry-run/b00001") != 3 || f.callsOf("retry-run/b00003") != 2 {
		t.Fatalf("retried %d, calls %v", res.Retried, f.calls)
	}
	// The lost response's validators were stored once: its retry found them.
	if res.Batches[3].Created != 0 || res.Created != 23-5 {
		t.Fatalf("created %d (batch 3: %d)", res.Created, res.Batches[3].Created)
	}
	if n := f.records(t); n != 23 {
		t.Fatalf("store holds %d records, want 23", n)
	}
}

func TestRunFailsThenResumes(t *testing.T) {
	f := newFunction(t)
	p := plan("resume-run", 20, 4)
	p.Retries = 2
	f.failAlways("resume-run/b00002", crash)
	res, err := fanout.Run(t.Context(), f, p)
	if !errors.Is(err, fanout.ErrBatch) || res != nil {
		t.Fatalf("got %v, %v; want ErrBatch", res, err)
	}
	if !strings.Contains(err.Error(), "resume-run/b00002") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q", err)
	}
	if c := f.callsOf("resume-run/b00002"); c != 3 {
		t.Fatalf("failing batch invoked %d times, want 3", c)
	}
	before := f.records(t)

	// The same run id resumes: stored batches return their validators,
	// the rest are made, nothing twice.
	f.failAlways("resume-run/b00002", 0)
	res, err = fanout.Run(t.Context(), f, p)
	if err != nil {
		t.Fatal(err)
	}
	file := checkRun(t, f, res, p)
	if n := f.records(t); n != 20 || res.Created != 20-before {
		t.Fatalf("store holds %d records, run created %d after %d; want 20 in all", n, res.Created, before)
	}
	// A third run is a no-op returning the same deposits.
	again, err := fanout.Run(t.Context(), f, p)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created != 0 {
		t.Fatalf("third run created %d", again.Created)
	}
	if !slices.Equal(again.Pubkeys, res.Pubkeys) {
		t.Fatal("the validators changed between runs")
	}
	if again := checkRun(t, f, again, p); !bytes.Equal(again, file) {
		t.Fatal("the run's export wrote another file the second time")
	}
}

func TestRunRejectedIsNotRetried(t *testing.T) {
	f := newFunction(t, "sepolia")
	p := plan("rejected", 6, 3)
	p.Concurrency = 1
	_, err := fanout.Run(t.Context(), f, p)
	if !errors.Is(err, fanout.ErrRejected) || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("got %v, want ErrRejected naming the chain", err)
	}
	if c := f.callsOf("rejected/b00000"); c != 1 {
		t.Fatalf("rejected batch invoked %d times", c)
	}
	// Over the function's per-invocation limit: rejected too.
	f = newFunction(t)
	p = plan("too-big", 21, 21)
	if _, err := fanout.Run(t.Context(), f, p); !errors.Is(err, fanout.ErrRejected) || !strings.Contains(err.Error(), "count 21") {
		t.Fatalf("got %v", err)
	}
}

func TestRunRefusesBadDeposits(t *testing.T) {
	f := newFunction(t)
	p := plan("tampered", 4, 2)
	f.failOnce("tampered/b00001", tamper)
	if _, err := fanout.Run(t.Context(), f, p); !errors.Is(err, fanout.ErrResponse) {
		t.Fatalf("got %v, want ErrResponse", err)
	}
}

func TestRunRefusesForeignBatches(t *testing.T) {
	// A function that answers every batch with batch 0's validators.
	f := newFunction(t)
	p := plan("dup", 4, 2)
	inv := invokerFunc(func(ctx context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
		var s custody.Spec
		_ = json.Unmarshal(in.Payload, &s)
		out, err := f.Invoke(ctx, in)
		if err != nil || s.RequestID == "dup/b00000" {
			return out, err
		}
		first, _ := json.Marshal(custody.Spec{RequestID: "dup/b00000", Count: 2, Chain: "hoodi", WithdrawalAddress: testAddress, SecretFormat: "raw"})
		out, err = f.Invoke(ctx, &lambda.InvokeInput{Payload: first})
		var r map[string]any
		_ = json.Unmarshal(out.Payload, &r)
		r["request_id"] = s.RequestID
		out.Payload, _ = json.Marshal(r)
		return out, err
	})
	p.Concurrency = 1
	if _, err := fanout.Run(t.Context(), inv, p); !errors.Is(err, fanout.ErrResponse) || !strings.Contains(err.Error(), "returned by batches") {
		t.Fatalf("got %v, want ErrResponse for a repeated pubkey", err)
	}
}

type invokerFunc func(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)

func (f invokerFunc) Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	return f(ctx, in, optFns...)
}

func TestPlanChecks(t *testing.T) {
	for name, mod := range map[string]func(*fanout.Plan){
		"no function":  func(p *fanout.Plan) { p.Function = "" },
		"no run id":    func(p *fanout.Plan) { p.Spec.RequestID = "" },
		"long run id":  func(p *fanout.Plan) { p.Spec.RequestID = strings.Repeat("x", 194) },
		"zero total":   func(p *fanout.Plan) { p.Total = 0 },
		"bad chain":    func(p *fanout.Plan) { p.Spec.Chain = "nope" },
		"bad address":  func(p *fanout.Plan) { p.Spec.WithdrawalAddress = strings.ToLower(testAddress[:20]) },
		"bad amount":   func(p *fanout.Plan) { p.Spec.AmountGwei = 1 },
		"many batches": func(p *fanout.Plan) { p.Total, p.BatchSize = 200_001, 1 },
	} {
		t.Run(name, func(t *testing.T) {
			p := plan("checks", 4, 2)
			mod(&p)
			called := false
			inv := invokerFunc(func(context.Context, *lambda.InvokeInput, ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
				called = true
				return nil, errors.New("unreachable")
			})
			if _, err := fanout.Run(t.Context(), inv, p); !errors.Is(err, fanout.ErrPlan) || called {
				t.Fatalf("got %v (invoked: %v), want ErrPlan", err, called)
			}
		})
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	inv := invokerFunc(func(ctx context.Context, _ *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
		cancel()
		<-ctx.Done()
		return nil, ctx.Err()
	})
	p := plan("cancel", 10, 1)
	if _, err := fanout.Run(ctx, inv, p); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}
