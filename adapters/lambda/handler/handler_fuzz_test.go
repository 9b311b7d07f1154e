package handler_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/adapters/lambda/handler"
	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
)

// refusingGenerator counts the requests that reached the pipeline and
// fails them, so the fuzzer exercises the handler alone.
type refusingGenerator struct{ calls int }

var errFuzzStop = errors.New("fuzz: generation not run")

func (g *refusingGenerator) Generate(context.Context, custody.Request, func(int, int)) (*custody.Result, error) {
	g.calls++
	return nil, errFuzzStop
}

// FuzzInvoke: any Lambda event payload. Validate never panics; a refused
// event is an InvalidRequest (errors.Is custody.ErrRequest) with a one-line
// message, and never reaches the pipeline; an accepted event is within the
// function's limits (count, allowed networks); Invoke never reports an
// InternalError (a recovered panic).
func FuzzInvoke(f *testing.F) {
	for _, s := range []string{
		`{"request_id":"r1","count":3,"chain":"hoodi","withdrawal_address":"0x0f51bb10119727a7e5eA3538074fb341F56B09Ad","compounding":true,"amount_gwei":64000000000}`,
		`{"request_id":"r2","count":1,"chain":"mainnet","secret_format":"raw"}`,
		`{"request_id":"r3","count":1,"chain":"hoodi","fork_version":"0x00000000"}`,
		`{"request_id":"r4","count":1,"chain":"devnet","fork_version":"0x10000910"}`,
		`{"request_id":"r5","count":11,"chain":"hoodi"}`,
		`{"request_id":"","count":1,"chain":"hoodi"}`,
		`{"count":1,"chain":"sepolia"}`,
		`"just a string"`, `null`, `{}`, ``, `{"request_id":"r","count":1,"chain":"hoodi"}{}`,
	} {
		f.Add([]byte(s))
	}
	allowed := []string{"mainnet", "hoodi"}
	addr := mustAddress(f, testAddress)
	f.Fuzz(func(t *testing.T, event []byte) {
		g := &refusingGenerator{}
		h := &handler.Handler{Generator: g, AllowedChains: allowed, MaxCount: 10, AllowedAddresses: []depositdata.Address{addr}, AllowBLS: true}
		req, err := h.Validate(event)
		if err != nil {
			var ir *handler.InvalidRequest
			if !errors.As(err, &ir) || !errors.Is(err, custody.ErrRequest) {
				t.Fatalf("Validate error %T %q is not an InvalidRequest", err, err)
			}
			if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error %q is not one line", msg)
			}
		} else {
			if req.Withdrawal.Address != nil && *req.Withdrawal.Address != addr {
				t.Fatalf("withdrawal address %s accepted", req.Withdrawal.Address)
			}
			if req.Count < 1 || req.Count > 10 {
				t.Fatalf("count %d accepted", req.Count)
			}
			if !slices.Contains(allowed, strings.ToLower(req.Network.Name)) {
				t.Fatalf("network %q accepted", req.Network.Name)
			}
		}
		out, ierr := h.Invoke(context.Background(), event)
		var internal *handler.InternalError
		switch {
		case errors.As(ierr, &internal):
			t.Fatalf("Invoke panicked on %q", event)
		case err != nil && (g.calls != 0 || ierr == nil || ierr.Error() != err.Error()):
			t.Fatalf("refused event: %d pipeline calls, Invoke error %v", g.calls, ierr)
		case err == nil && (g.calls != 1 || out != nil):
			t.Fatalf("accepted event: %d pipeline calls, output %q", g.calls, out)
		}
	})
}
