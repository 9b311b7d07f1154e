// Package handler is the logic of the Lambda adapter: it reads the
// function's configuration from the environment, validates an event (a
// custody.Spec) against the function's limits, runs the pipeline and builds
// a response that holds public data only.
//
// It is a package of its own so that it can be tested without the Lambda
// runtime; adapters/lambda's main only wires it to aws-lambda-go.
//
// # Security
//
// The handler keeps nothing secret between invocations: each invocation
// calls custody.Generator.Generate, which draws fresh mnemonics and wipes
// them when the validators are sealed and stored. A Response carries the
// request id, slots, pubkeys and Launchpad deposit entries, never a sealed
// document or a secret. Errors are one line and never carry a secret; a
// panic is recovered and reported as an InternalError without its value.
package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
)

// Environment variables the function reads.
const (
	EnvKMSKeyID         = "ETHKEYGEN_KMS_KEY_ID"
	EnvTable            = "ETHKEYGEN_TABLE"
	EnvMnemonicKMSKeyID = "ETHKEYGEN_MNEMONIC_KMS_KEY_ID"
	EnvAllowedChains    = "ETHKEYGEN_ALLOWED_CHAINS"
	// EnvAllowedWithdrawals lists, comma-separated, the withdrawal addresses
	// (EIP-55 checksummed) a request may name, and "bls" to allow requests
	// without one (0x00 credentials, whose withdrawal key is derived from the
	// stored mnemonic). It is required: without it anyone allowed to invoke
	// the function could direct the deposits it makes to their own address.
	EnvAllowedWithdrawals = "ETHKEYGEN_ALLOWED_WITHDRAWAL_ADDRESSES"
	EnvMaxCount           = "ETHKEYGEN_MAX_COUNT"
	EnvMemorySize         = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
)

// Defaults.
const (
	DefaultAllowedChains = "mainnet,hoodi,sepolia,holesky"
	DefaultMaxCount      = 100
	// MaxCountLimit bounds ETHKEYGEN_MAX_COUNT: a synchronous Lambda
	// response holds at most 6 MB, and a deposit entry is about 750 bytes.
	MaxCountLimit = 5000
	// MemoryShare is the part of the function's memory given to the
	// pipeline (the rest is the runtime, the SDK and the response).
	MemoryShare = 0.8
)

// Config is the function's configuration.
type Config struct {
	KMSKeyID         string                // required: KMS key ARN that seals validator secrets
	Table            string                // required: DynamoDB table
	MnemonicKMSKeyID string                // optional: separate KMS key for mnemonics
	AllowedChains    []string              // networks the function serves
	AllowedAddresses []depositdata.Address // withdrawal addresses a request may name
	AllowBLS         bool                  // requests without a withdrawal address (0x00 credentials) are allowed
	MaxCount         int                   // validators per invocation
	MaxMemory        int64                 // bytes for the pipeline (0: custody's default)
}

// ConfigFromEnv reads Config through getenv (os.Getenv in production).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		KMSKeyID:         strings.TrimSpace(getenv(EnvKMSKeyID)),
		Table:            strings.TrimSpace(getenv(EnvTable)),
		MnemonicKMSKeyID: strings.TrimSpace(getenv(EnvMnemonicKMSKeyID)),
		MaxCount:         DefaultMaxCount,
	}
	if c.KMSKeyID == "" {
		return c, fmt.Errorf("%s is required", EnvKMSKeyID)
	}
	if c.Table == "" {
		return c, fmt.Errorf("%s is required", EnvTable)
	}
	chains := getenv(EnvAllowedChains)
	if strings.TrimSpace(chains) == "" {
		chains = DefaultAllowedChains
	}
	for _, name := range strings.Split(chains, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		if _, err := depositdata.NetworkByName(name); err != nil {
			return c, fmt.Errorf("%s: %w", EnvAllowedChains, err)
		}
		c.AllowedChains = append(c.AllowedChains, name)
	}
	if len(c.AllowedChains) == 0 {
		return c, fmt.Errorf("%s names no network", EnvAllowedChains)
	}
	if err := c.parseWithdrawals(getenv(EnvAllowedWithdrawals)); err != nil {
		return c, err
	}
	if s := strings.TrimSpace(getenv(EnvMaxCount)); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxCountLimit {
			return c, fmt.Errorf("%s=%q: want 1 to %d", EnvMaxCount, s, MaxCountLimit)
		}
		c.MaxCount = n
	}
	if s := strings.TrimSpace(getenv(EnvMemorySize)); s != "" {
		mib, err := strconv.ParseInt(s, 10, 64)
		if err != nil || mib < 128 {
			return c, fmt.Errorf("%s=%q: want a number of MiB, at least 128", EnvMemorySize, s)
		}
		c.MaxMemory = MaxMemory(mib)
	}
	return c, nil
}

// BLSWithdrawal is the entry of EnvAllowedWithdrawals that allows requests
// without a withdrawal address.
const BLSWithdrawal = "bls"

func (c *Config) parseWithdrawals(list string) error {
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			continue
		case strings.EqualFold(e, BLSWithdrawal):
			c.AllowBLS = true
			continue
		}
		a, err := depositdata.ParseAddress(e, false)
		if err != nil {
			return fmt.Errorf("%s: %q: %w", EnvAllowedWithdrawals, e, err)
		}
		if !slices.Contains(c.AllowedAddresses, a) {
			c.AllowedAddresses = append(c.AllowedAddresses, a)
		}
	}
	if len(c.AllowedAddresses) == 0 && !c.AllowBLS {
		return fmt.Errorf("%s is required: the withdrawal addresses (EIP-55) requests may name, and %q to allow BLS (0x00) credentials",
			EnvAllowedWithdrawals, BLSWithdrawal)
	}
	return nil
}

// MaxMemory is the pipeline's memory bound for a function of memoryMiB:
// MemoryShare of it, in bytes. custody.WithMaxMemory turns it into the
// number of workers (one scrypt worker needs custody.ScryptWorkerMemory).
func MaxMemory(memoryMiB int64) int64 {
	return int64(float64(memoryMiB<<20) * MemoryShare)
}

// Generator is what the handler needs of the pipeline;
// *custody.Generator satisfies it.
type Generator interface {
	Generate(ctx context.Context, req custody.Request, progress func(done, total int)) (*custody.Result, error)
}

var _ Generator = (*custody.Generator)(nil)

// Handler serves invocations. Its fields are configuration only: nothing
// secret is kept in it.
type Handler struct {
	Generator     Generator
	AllowedChains []string // networks served (lower case)
	// AllowedAddresses are the withdrawal addresses a request may name; a
	// request naming any other is refused. AllowBLS allows requests without
	// one. With neither, every request is refused.
	AllowedAddresses []depositdata.Address
	AllowBLS         bool
	MaxCount         int          // validators per invocation (0: DefaultMaxCount)
	Logger           *slog.Logger // optional: one line per invocation, no secrets
}

// Validator is the public part of one generated validator.
type Validator struct {
	Slot   int    `json:"slot"`
	Pubkey string `json:"pubkey"`
}

// Response is what an invocation returns: which key each slot holds, and
// no deposit. Deposits are handed out only through an export, which the
// operator makes from the store (ethkeygen generate --lambda does), so that
// each is checked as the generator's, paying the stated target, and handed
// out once.
type Response struct {
	RequestID  string      `json:"request_id"`
	Created    int         `json:"created"`
	Validators []Validator `json:"validators"`
}

// InvalidRequest is the error for an event the function refuses. Lambda
// reports it with errorType "InvalidRequest"; retrying the same event
// cannot succeed.
type InvalidRequest struct{ msg string }

func (e *InvalidRequest) Error() string { return e.msg }

// Is makes errors.Is(err, custody.ErrRequest) hold.
func (e *InvalidRequest) Is(target error) bool { return target == custody.ErrRequest }

// GenerationFailed is the error for an invocation that failed after its
// event was accepted (a store or KMS failure, a timeout). Repeating the same
// event completes it: request ids make generation idempotent.
type GenerationFailed struct{ msg string }

func (e *GenerationFailed) Error() string { return e.msg }

// InternalError reports a recovered panic. Its message says nothing of the
// panic's value.
type InternalError struct{ msg string }

func (e *InternalError) Error() string { return e.msg }

func invalidf(format string, args ...any) error {
	return &InvalidRequest{msg: oneLine(fmt.Sprintf(format, args...))}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// clean drops the Go package prefixes that mean nothing to a caller.
func clean(err error) string {
	s := oneLine(err.Error())
	for _, p := range []string{"custody: ", "depositdata: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return s
}

// Validate decodes and checks an event and returns the pipeline request.
func (h *Handler) Validate(event []byte) (custody.Request, error) {
	spec, err := custody.ParseSpec(event)
	if err != nil {
		return custody.Request{}, invalidf("%s", clean(err))
	}
	if spec.RequestID == "" {
		return custody.Request{}, invalidf("invalid request: request_id is required")
	}
	maxCount := h.MaxCount
	if maxCount <= 0 {
		maxCount = DefaultMaxCount
	}
	if spec.Count < 1 || spec.Count > maxCount {
		return custody.Request{}, invalidf("invalid request: count %d (this function makes 1 to %d validators per invocation)", spec.Count, maxCount)
	}
	network, err := spec.Network()
	if err != nil {
		return custody.Request{}, invalidf("invalid request: %s", clean(err))
	}
	if known, err := depositdata.NetworkByName(network.Name); err == nil && known.ForkVersion != network.ForkVersion {
		return custody.Request{}, invalidf("invalid request: fork_version %s does not match chain %s", spec.ForkVersion, known.Name)
	}
	if !slices.Contains(h.AllowedChains, strings.ToLower(network.Name)) {
		return custody.Request{}, invalidf("invalid request: chain %q is not allowed by this function (allowed: %s)", network.Name, strings.Join(h.AllowedChains, ", "))
	}
	req, err := spec.Request()
	if err != nil {
		return custody.Request{}, invalidf("invalid request: %s", strings.TrimPrefix(clean(err), "invalid request: "))
	}
	switch a := req.Withdrawal.Address; {
	case a == nil && !h.AllowBLS:
		return custody.Request{}, invalidf("invalid request: withdrawal_address is required (this function does not make BLS 0x00 credentials)")
	case a != nil && !slices.Contains(h.AllowedAddresses, *a):
		return custody.Request{}, invalidf("invalid request: withdrawal address %s is not allowed by this function", a)
	}
	return req, nil
}

// Handle serves one event. Input errors are *InvalidRequest; a failure after
// the event was accepted is *GenerationFailed; a panic is recovered into an
// *InternalError.
func (h *Handler) Handle(ctx context.Context, event json.RawMessage) (resp Response, err error) {
	start := time.Now()
	var reqID string
	var count int
	defer func() {
		if r := recover(); r != nil {
			resp, err = Response{}, &InternalError{msg: "internal error: the function panicked (see its log)"}
			h.log(ctx, slog.LevelError, "panic", slog.String("request_id", reqID), slog.String("panic_type", fmt.Sprintf("%T", r)))
			return
		}
		if err != nil {
			h.log(ctx, slog.LevelWarn, "refused", slog.String("request_id", reqID), slog.String("error_type", errorType(err)),
				slog.String("error", err.Error()), slog.Duration("duration", time.Since(start)))
			return
		}
		h.log(ctx, slog.LevelInfo, "generated", slog.String("request_id", reqID), slog.Int("count", count),
			slog.Int("created", resp.Created), slog.Duration("duration", time.Since(start)))
	}()
	if h.Generator == nil {
		panic("handler: no generator")
	}
	req, err := h.Validate(event)
	if err != nil {
		return Response{}, err
	}
	reqID, count = req.ID, req.Count
	res, err := h.Generator.Generate(ctx, req, nil)
	switch {
	case errors.Is(err, custody.ErrRequest), errors.Is(err, custody.ErrRequestReused):
		return Response{}, invalidf("%s", clean(err))
	case err != nil:
		return Response{}, &GenerationFailed{msg: "generation failed (repeat the same request to complete it): " + clean(err)}
	}
	return NewResponse(res), nil
}

// NewResponse keeps the public part of a pipeline result.
func NewResponse(res *custody.Result) Response {
	r := Response{RequestID: res.RequestID, Created: res.Created,
		Validators: make([]Validator, len(res.Validators))}
	for i, v := range res.Validators {
		r.Validators[i] = Validator{Slot: v.Slot, Pubkey: v.Pubkey}
	}
	return r
}

// Invoke implements aws-lambda-go's lambda.Handler: the payload is decoded
// here, so even malformed JSON comes back as an InvalidRequest.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	resp, err := h.Handle(ctx, payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}

func errorType(err error) string {
	switch err.(type) {
	case *InvalidRequest:
		return "InvalidRequest"
	case *GenerationFailed:
		return "GenerationFailed"
	case *InternalError:
		return "InternalError"
	}
	return fmt.Sprintf("%T", err)
}

func (h *Handler) log(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if h.Logger != nil {
		h.Logger.LogAttrs(ctx, level, msg, attrs...)
	}
}
