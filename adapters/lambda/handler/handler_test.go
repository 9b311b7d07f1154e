//go:build !ethkeygen_fuzzonly

package handler_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/custody/custodytest"

	"github.com/ethkeygen/ethkeygen/adapters/lambda/handler"
	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigFromEnv(t *testing.T) {
	base := map[string]string{handler.EnvKMSKeyID: "arn:aws:kms:eu-west-1:111122223333:key/k", handler.EnvTable: "keys",
		handler.EnvAllowedWithdrawals: testAddress}
	c, err := handler.ConfigFromEnv(env(base))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.AllowedChains, []string{"mainnet", "hoodi", "sepolia", "holesky"}) || c.MaxCount != 100 || c.MaxMemory != 0 {
		t.Fatalf("defaults: %+v", c)
	}
	full := map[string]string{handler.EnvAllowedChains: " Hoodi, sepolia ,", handler.EnvMaxCount: "250",
		handler.EnvMemorySize: "1769", handler.EnvMnemonicKMSKeyID: "alias/mnemonics"}
	for k, v := range base {
		full[k] = v
	}
	c, err = handler.ConfigFromEnv(env(full))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.AllowedChains, []string{"hoodi", "sepolia"}) || c.MaxCount != 250 || c.MnemonicKMSKeyID != "alias/mnemonics" {
		t.Fatalf("%+v", c)
	}
	// 80% of 1769 MiB: five scrypt workers fit.
	if c.MaxMemory != handler.MaxMemory(1769) || custody.Workers(c.MaxMemory, custody.ScryptWorkerMemory) > 5 {
		t.Fatalf("max memory %d", c.MaxMemory)
	}
	if w := c.MaxMemory / custody.ScryptWorkerMemory; w != 5 {
		t.Fatalf("%d scrypt workers fit in %d bytes, want 5", w, c.MaxMemory)
	}
	for name, bad := range map[string]map[string]string{
		"no key":                   {handler.EnvTable: "t"},
		"no table":                 {handler.EnvKMSKeyID: "k"},
		"bad chain":                {handler.EnvAllowedChains: "mainnet,goerli"},
		"no chain":                 {handler.EnvAllowedChains: " , "},
		"count 0":                  {handler.EnvMaxCount: "0"},
		"count big":                {handler.EnvMaxCount: "5001"},
		"count word":               {handler.EnvMaxCount: "many"},
		"memory small":             {handler.EnvMemorySize: "64"},
		"memory word":              {handler.EnvMemorySize: "lots"},
		"no withdrawals":           {handler.EnvKMSKeyID: "k", handler.EnvTable: "t"},
		"empty withdrawals":        {handler.EnvAllowedWithdrawals: " , "},
		"unchecksummed withdrawal": {handler.EnvAllowedWithdrawals: strings.ToLower(testAddress)},
		"bad withdrawal":           {handler.EnvAllowedWithdrawals: testAddress + ",0x1234"},
	} {
		m := map[string]string{}
		if name != "no key" && name != "no table" && name != "no withdrawals" {
			for k, v := range base {
				m[k] = v
			}
		}
		for k, v := range bad {
			m[k] = v
		}
		if _, err := handler.ConfigFromEnv(env(m)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func newHandler(t *testing.T) *handler.Handler {
	h, _ := newHandlerOn(t)
	return h
}

func newHandlerOn(t *testing.T) (*handler.Handler, *custodytest.Embedded) {
	t.Helper()
	e := custodytest.NewEmbedded(t)
	return &handler.Handler{Generator: e.Generator, AllowedChains: []string{"hoodi"}, MaxCount: 5, Logger: slog.New(slog.DiscardHandler),
		AllowedAddresses: []depositdata.Address{mustAddress(t, testAddress)}, AllowBLS: true}, e
}

func TestHandle(t *testing.T) {
	h, e := newHandlerOn(t)
	event := `{"request_id":"r1","count":3,"chain":"hoodi","withdrawal_address":"0x0f51bb10119727a7e5eA3538074fb341F56B09Ad","secret_format":"raw"}`
	b, err := h.Invoke(t.Context(), []byte(event))
	if err != nil {
		t.Fatal(err)
	}
	var r handler.Response
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.RequestID != "r1" || r.Created != 3 || len(r.Validators) != 3 {
		t.Fatalf("%s", b)
	}
	// The response hands out no deposit: those go out only through an
	// export, from the store.
	if strings.Contains(string(b), "deposit") || strings.Contains(string(b), "signature") {
		t.Fatalf("the response carries deposit data: %s", b)
	}
	for i, v := range r.Validators {
		rec, err := e.Store.GetSlot(t.Context(), "r1", i)
		if v.Slot != i || err != nil || rec.Pubkey != v.Pubkey {
			t.Fatalf("validator %d is not the stored one: %v", i, err)
		}
		if _, err := e.Custodian.Check(rec); err != nil {
			t.Fatal(err)
		}
	}
	again, err := h.Handle(t.Context(), json.RawMessage(event))
	if err != nil || again.Created != 0 || !reflect.DeepEqual(again.Validators, r.Validators) {
		t.Fatalf("retry: %+v, %v", again, err)
	}
}

func TestHandleErrors(t *testing.T) {
	h := newHandler(t)
	for _, c := range []struct{ event, want string }{
		{`{"request_id":"r","count":6,"chain":"hoodi"}`, "count 6"},
		{`{"request_id":"r","count":1,"chain":"sepolia"}`, `chain "sepolia" is not allowed`},
		{`{"request_id":"r","count":1,"chain":"hoodi"} {}`, "trailing data"},
		{`{"request_id":"r","count":1,"chain":"hoodi"}`, "bls_withdrawal"},
		{``, "EOF"},
		{`null`, "request_id is required"},
		{strings.Repeat(" ", custody.MaxSpecSize+1), "larger than"},
	} {
		_, err := h.Handle(t.Context(), json.RawMessage(c.event))
		var ir *handler.InvalidRequest
		if !errors.As(err, &ir) || !errors.Is(err, custody.ErrRequest) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%.40q: %v, want InvalidRequest naming %q", c.event, err, c.want)
		}
	}
}

type panicking struct{}

func (panicking) Generate(context.Context, custody.Request, func(int, int)) (*custody.Result, error) {
	panic("secret-looking panic value")
}

type failing struct{}

func (failing) Generate(context.Context, custody.Request, func(int, int)) (*custody.Result, error) {
	return nil, errors.New("custody: storing: dynamodb unavailable\nsecond line")
}

func TestHandleRecoversAndClassifies(t *testing.T) {
	var logs strings.Builder
	h := &handler.Handler{Generator: panicking{}, AllowedChains: []string{"hoodi"}, AllowBLS: true, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	event := json.RawMessage(`{"request_id":"r","count":1,"chain":"hoodi","bls_withdrawal":true}`)
	_, err := h.Handle(t.Context(), event)
	var ie *handler.InternalError
	if !errors.As(err, &ie) || strings.Contains(err.Error(), "secret-looking") || strings.Contains(logs.String(), "secret-looking") {
		t.Fatalf("panic: %v; log %s", err, logs.String())
	}
	h.Generator = failing{}
	_, err = h.Handle(t.Context(), event)
	var gf *handler.GenerationFailed
	if !errors.As(err, &gf) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "repeat the same request") {
		t.Fatalf("failure: %q", err)
	}
	h.Generator = nil
	if _, err := h.Handle(t.Context(), event); !errors.As(err, &ie) {
		t.Fatalf("no generator: %v", err)
	}
}

// The Lambda errorType is the Go type name of the error.
func TestErrorTypeNames(t *testing.T) {
	for want, err := range map[string]error{"InvalidRequest": &handler.InvalidRequest{}, "GenerationFailed": &handler.GenerationFailed{}, "InternalError": &handler.InternalError{}} {
		if got := reflect.TypeOf(err).Elem().Name(); got != want {
			t.Errorf("%s: %s", want, got)
		}
	}
}

func TestResponseHasPublicFieldsOnly(t *testing.T) {
	var fields []string
	for f := range reflect.TypeFor[handler.Response]().Fields() {
		fields = append(fields, f.Tag.Get("json"))
	}
	if !reflect.DeepEqual(fields, []string{"request_id", "created", "validators"}) {
		t.Fatalf("response fields %v", fields)
	}
}
