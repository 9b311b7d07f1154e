// Package fanout spreads one large key-generation run over many concurrent
// invocations of the ethkeygen Lambda function.
//
// A run of Total validators with run id ID is split into batches of at most
// BatchSize, each a custody.Spec with the derived request id
// "ID/bNNNNN" (NNNNN the batch's index). The ids are a pure function of the
// run id, Total and BatchSize, so running the same plan again resumes it:
// batches that were stored return the same validators and create none
// twice. Batches run Concurrency at a time; a batch whose invocation failed
// in a way that may pass on a second try (throttling, a network error, a
// function error other than InvalidRequest) is retried with exponential
// backoff.
//
// The function returns which key each slot holds, never a deposit: pubkeys
// must be unique across the whole run, and Result.Pubkeys is in batch, then
// slot order. The run's deposits are handed out only through an export
// (custody.Custodian.Export with RunExportID), which reads each record from
// the store and checks it is the generator's and pays the stated target.
//
// # Security
//
// The function returns public data only, and so does this package: it never
// sees a secret.
package fanout

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
)

// Invoker is what Run needs of the Lambda API.
type Invoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

var _ Invoker = (*lambda.Client)(nil)

// Defaults and bounds.
const (
	DefaultBatchSize   = 50
	DefaultConcurrency = 10
	DefaultRetries     = 4
	DefaultBackoff     = 500 * time.Millisecond
	maxBackoff         = 30 * time.Second
	// MaxRunIDLength leaves room for the batch suffix within the
	// pipeline's 200-character request ids.
	MaxRunIDLength = 200 - len("/b00000")
	// MaxBatches is the number of batches the five-digit suffix allows.
	MaxBatches = 100_000
)

// Errors.
var (
	// ErrPlan reports an invalid plan.
	ErrPlan = errors.New("fanout: invalid plan")
	// ErrRejected reports a batch the function refused as an invalid
	// request: retrying cannot help.
	ErrRejected = errors.New("fanout: the function rejected the request")
	// ErrBatch reports a batch that still failed after its retries.
	ErrBatch = errors.New("fanout: batch failed")
	// ErrResponse reports a response that does not hold what was asked
	// (a deposit that does not verify, a repeated pubkey, a wrong count).
	ErrResponse = errors.New("fanout: invalid response")
)

// Plan describes a run.
type Plan struct {
	Function    string       // function name or ARN (required)
	Qualifier   string       // version or alias (optional)
	Spec        custody.Spec // the batch template; Spec.RequestID is the run id (required); Count is ignored
	Total       int          // validators in the run (required)
	BatchSize   int          // validators per invocation (default DefaultBatchSize)
	Concurrency int          // invocations at once (default DefaultConcurrency)
	Retries     int          // further tries per batch (default DefaultRetries; negative: none)
	Backoff     time.Duration
	// Progress, when set, is called after each batch with the number of
	// validators done and the total. Calls are serialized.
	Progress func(done, total int)
}

// Batch is the spec of batch i of the plan.
func (p *Plan) Batch(i int) custody.Spec {
	s := p.Spec
	s.RequestID = BatchID(p.Spec.RequestID, i)
	s.Count = min(p.batchSize(), p.Total-i*p.batchSize())
	return s
}

// Batches is how many batches the plan has.
func (p *Plan) Batches() int {
	b := p.batchSize()
	return (p.Total + b - 1) / b
}

func (p *Plan) batchSize() int {
	if p.BatchSize <= 0 {
		return DefaultBatchSize
	}
	return p.BatchSize
}

// BatchID is the request id of batch i of run runID.
func BatchID(runID string, i int) string { return fmt.Sprintf("%s/b%05d", runID, i) }

// BatchResult is the outcome of one batch.
type BatchResult struct {
	Index     int
	RequestID string
	Created   int // validators created by the invocation that succeeded
	Attempts  int
	Pubkeys   []string // in slot order
}

// Result is the outcome of a run.
type Result struct {
	RunID   string
	Network depositdata.Network
	Batches []BatchResult // in batch order
	Pubkeys []string      // in batch, then slot order
	Created int           // validators created by this run (the rest existed)
	Retried int           // invocations that were tried again
}

// response is the function's answer (adapters/lambda/handler.Response).
type response struct {
	RequestID  string `json:"request_id"`
	Created    int    `json:"created"`
	Validators []struct {
		Slot   int    `json:"slot"`
		Pubkey string `json:"pubkey"`
	} `json:"validators"`
}

// functionError is Lambda's error payload.
type functionError struct {
	Message string `json:"errorMessage"`
	Type    string `json:"errorType"`
}

func (p *Plan) check() (expect, error) {
	var x expect
	switch {
	case p.Function == "":
		return x, fmt.Errorf("%w: no function", ErrPlan)
	case p.Spec.RequestID == "" || len(p.Spec.RequestID) > MaxRunIDLength:
		return x, fmt.Errorf("%w: run id must be 1 to %d characters", ErrPlan, MaxRunIDLength)
	case p.Total < 1 || p.Total > custody.MaxCount*10:
		return x, fmt.Errorf("%w: total %d (want 1 to %d)", ErrPlan, p.Total, custody.MaxCount*10)
	case p.BatchSize < 0 || p.Concurrency < 0:
		return x, fmt.Errorf("%w: negative batch size or concurrency", ErrPlan)
	case p.Batches() > MaxBatches:
		return x, fmt.Errorf("%w: %d batches (at most %d): raise the batch size", ErrPlan, p.Batches(), MaxBatches)
	}
	// Check the spec as the function will, so a bad plan fails before any
	// invocation.
	spec := p.Batch(0)
	spec.Count = 1
	req, err := spec.Request()
	if err != nil {
		return x, fmt.Errorf("%w: %w", ErrPlan, err)
	}
	x.network = req.Network
	x.amount = req.Amount
	if a := req.Withdrawal.Address; a != nil {
		c := depositdata.ExecutionCredentials(*a, req.Withdrawal.Compounding)
		x.credentials = hex.EncodeToString(c[:])
	} else {
		x.credentials = "00"
	}
	return x, nil
}

// expect is what every deposit of the run must say.
type expect struct {
	network     depositdata.Network
	amount      uint64
	credentials string // full hex, or the "00" prefix for BLS credentials
}

// Run carries out the plan. It returns an error if any batch failed after
// its retries, was rejected, or returned something that does not verify;
// the batches that were stored stay stored, and running the same plan
// again completes the run without duplicates.
func Run(ctx context.Context, inv Invoker, p Plan) (*Result, error) {
	x, err := p.check()
	if err != nil {
		return nil, err
	}
	n := p.Batches()
	conc := p.Concurrency
	if conc == 0 {
		conc = DefaultConcurrency
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	results := make([]BatchResult, n)
	var (
		mu    sync.Mutex
		done  int
		retry int
		wg    sync.WaitGroup
	)
	next := make(chan int)
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				br, retried, err := p.runBatch(ctx, inv, i, x)
				mu.Lock()
				retry += retried
				if err != nil {
					mu.Unlock()
					cancel(err)
					continue
				}
				results[i] = br
				done += len(br.Pubkeys)
				if p.Progress != nil {
					p.Progress(done, p.Total)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}

	res := &Result{RunID: p.Spec.RequestID, Network: x.network, Batches: results, Retried: retry}
	seen := make(map[string]string, p.Total)
	for _, b := range results {
		for _, pk := range b.Pubkeys {
			if other, dup := seen[pk]; dup {
				return nil, fmt.Errorf("%w: pubkey %s returned by batches %s and %s", ErrResponse, short(pk), other, b.RequestID)
			}
			seen[pk] = b.RequestID
			res.Pubkeys = append(res.Pubkeys, pk)
		}
		res.Created += b.Created
	}
	return res, nil
}

// runBatch invokes batch i until it succeeds, is rejected, or runs out of
// retries.
func (p *Plan) runBatch(ctx context.Context, inv Invoker, i int, x expect) (BatchResult, int, error) {
	spec := p.Batch(i)
	payload, err := json.Marshal(spec)
	if err != nil {
		return BatchResult{}, 0, err
	}
	retries := p.Retries
	if retries == 0 {
		retries = DefaultRetries
	}
	retries = max(retries, 0)
	backoff := p.Backoff
	if backoff <= 0 {
		backoff = DefaultBackoff
	}
	in := &lambda.InvokeInput{FunctionName: aws.String(p.Function), Payload: payload, InvocationType: types.InvocationTypeRequestResponse}
	if p.Qualifier != "" {
		in.Qualifier = aws.String(p.Qualifier)
	}
	var lastErr error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			d := min(backoff<<(attempt-1), maxBackoff)
			d = d/2 + rand.N(d/2+1) // jitter
			select {
			case <-ctx.Done():
				return BatchResult{}, attempt - 1, fmt.Errorf("%w: %s: %w (last error: %v)", ErrBatch, spec.RequestID, context.Cause(ctx), lastErr)
			case <-time.After(d):
			}
		}
		out, err := inv.Invoke(ctx, in)
		if err != nil {
			if ctx.Err() != nil {
				return BatchResult{}, attempt, context.Cause(ctx)
			}
			if !retryable(err) {
				return BatchResult{}, attempt, fmt.Errorf("%w: %s: %w", ErrBatch, spec.RequestID, err)
			}
			lastErr = err
			continue
		}
		if out.FunctionError != nil || isErrorPayload(out.Payload) {
			var fe functionError
			_ = json.Unmarshal(out.Payload, &fe)
			msg := oneLine(fe.Message)
			if msg == "" {
				msg = oneLine(aws.ToString(out.FunctionError))
			}
			if fe.Type == "InvalidRequest" {
				return BatchResult{}, attempt, fmt.Errorf("%w: %s: %s", ErrRejected, spec.RequestID, msg)
			}
			lastErr = fmt.Errorf("function error %s: %s", fe.Type, msg)
			continue
		}
		br, err := checkResponse(out.Payload, spec, i, x)
		if err != nil {
			return BatchResult{}, attempt, err
		}
		br.Attempts = attempt + 1
		return br, attempt, nil
	}
	return BatchResult{}, retries, fmt.Errorf("%w: %s after %d attempts: %v", ErrBatch, spec.RequestID, retries+1, lastErr)
}

// isErrorPayload recognizes an error payload whose FunctionError header was
// lost (the Runtime Interface Emulator sends none).
func isErrorPayload(b []byte) bool {
	if !bytes.Contains(b, []byte(`"errorType"`)) {
		return false
	}
	var fe functionError
	return json.Unmarshal(b, &fe) == nil && fe.Type != "" && !bytes.Contains(b, []byte(`"validators"`))
}

func checkResponse(payload []byte, spec custody.Spec, i int, x expect) (BatchResult, error) {
	bad := func(format string, args ...any) (BatchResult, error) {
		return BatchResult{}, fmt.Errorf("%w: %s: %s", ErrResponse, spec.RequestID, fmt.Sprintf(format, args...))
	}
	var r response
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&r); err != nil {
		return bad("not a response: %v", err)
	}
	if r.RequestID != spec.RequestID {
		return bad("answers request %q", r.RequestID)
	}
	if len(r.Validators) != spec.Count {
		return bad("%d validators, want %d", len(r.Validators), spec.Count)
	}
	if r.Created < 0 || r.Created > spec.Count {
		return bad("created %d", r.Created)
	}
	pks := make([]string, len(r.Validators))
	for s, v := range r.Validators {
		if v.Slot != s || !validPubkey(v.Pubkey) {
			return bad("slot %d: malformed entry", s)
		}
		pks[s] = v.Pubkey
	}
	return BatchResult{Index: i, RequestID: spec.RequestID, Created: r.Created, Pubkeys: pks}, nil
}

// RunExportID is the export id of a fan-out run's deposits: running the
// same plan again re-writes the same file.
func RunExportID(runID string) string { return custody.RequestExportID(runID) }

func validPubkey(s string) bool {
	if len(s) != 96 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// retryable reports an Invoke error that may pass on another try.
func retryable(err error) bool {
	var (
		tooMany  *types.TooManyRequestsException
		service  *types.ServiceException
		notReady *types.ResourceNotReadyException
		conflict *types.ResourceConflictException
		netErr   net.Error
	)
	switch {
	case errors.As(err, &tooMany), errors.As(err, &service), errors.As(err, &notReady),
		errors.As(err, &conflict), errors.As(err, &netErr):
		return true
	}
	return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func short(pubkey string) string {
	if len(pubkey) > 16 {
		return "0x" + pubkey[:16] + "…"
	}
	return "0x" + pubkey
}
