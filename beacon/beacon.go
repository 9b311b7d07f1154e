package beacon

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ethkeygen/ethkeygen/ops"
)

// Errors.
var (
	// ErrResponse: the node answered something that is not the API's form.
	ErrResponse = errors.New("beacon: malformed response")
	// ErrNotFound: the node knows no such validator.
	ErrNotFound = errors.New("beacon: validator not found")
)

// APIError is an error response of the beacon API: its HTTP status, message
// and, for pool submissions, the failures by index of the submitted list.
type APIError struct {
	Status   int
	Code     int
	Message  string
	Failures []Failure
}

// Failure is one rejected entry of a pool submission.
type Failure struct {
	Index   int
	Message string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("beacon: node answered %d", e.Status)
	if e.Message != "" {
		s += ": " + e.Message
	}
	for _, f := range e.Failures {
		s += fmt.Sprintf("; entry %d: %s", f.Index, f.Message)
	}
	return s
}

// maxResponse bounds a response body (a validators reply for many keys
// stays far below it).
const maxResponse = 16 << 20

// maxIDsPerRequest bounds the ids of one validators query, to keep URLs
// within what nodes and proxies accept.
const maxIDsPerRequest = 64

// Client talks to one beacon node.
type Client struct {
	base *url.URL
	http *http.Client
}

// Option configures a Client.
type Option interface{ apply(*Client) error }

type optionFunc func(*Client) error

func (f optionFunc) apply(c *Client) error { return f(c) }

// WithHTTPClient uses hc (default: a client with a 30 s timeout).
func WithHTTPClient(hc *http.Client) Option {
	return optionFunc(func(c *Client) error {
		if hc == nil {
			return errors.New("beacon: nil HTTP client")
		}
		c.http = hc
		return nil
	})
}

// New is a client of the node at baseURL (http or https, e.g.
// http://127.0.0.1:5052).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("beacon: node URL %q: want http(s)://host[:port]", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &Client{base: u, http: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		if err := o.apply(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) endpoint(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	return u.String()
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path, q), rd)
	if err != nil {
		return nil, fmt.Errorf("beacon: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("beacon: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("beacon: reading the answer to %s %s: %w", method, path, err)
	}
	if len(b) > maxResponse {
		return nil, fmt.Errorf("%w: answer to %s %s is over %d bytes", ErrResponse, method, path, maxResponse)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, ParseError(resp.StatusCode, b)
	}
	return b, nil
}

// ParseError reads an error body ({"code":..,"message":..,"failures":[..]});
// a body that is not one still gives an APIError with the status.
func ParseError(status int, b []byte) *APIError {
	e := &APIError{Status: status}
	var j struct {
		Code     json.Number `json:"code"`
		Message  string      `json:"message"`
		Failures []struct {
			Index   json.Number `json:"index"`
			Message string      `json:"message"`
		} `json:"failures"`
	}
	if json.Unmarshal(b, &j) != nil {
		e.Message = printable(b)
		return e
	}
	if n, err := j.Code.Int64(); err == nil && n >= 0 && n < 1000 {
		e.Code = int(n)
	}
	e.Message = printable([]byte(j.Message))
	for _, f := range j.Failures {
		i, err := f.Index.Int64()
		if err != nil || i < 0 || i > 1<<20 {
			i = -1
		}
		e.Failures = append(e.Failures, Failure{int(i), printable([]byte(f.Message))})
	}
	return e
}

// printable keeps an error message one short line of printable text.
func printable(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return strings.TrimSpace(s)
}

// Validator is what the client reads of a validator.
type Validator struct {
	Index                 uint64
	Pubkey                [48]byte
	WithdrawalCredentials [32]byte
	Status                string // pending_initialized, active_ongoing, exited_unslashed, ...
	Balance               uint64 // gwei
	ExitEpoch             uint64
}

var statuses = map[string]bool{
	"pending_initialized": true, "pending_queued": true, "active_ongoing": true, "active_exiting": true,
	"active_slashed": true, "exited_unslashed": true, "exited_slashed": true, "withdrawal_possible": true,
	"withdrawal_done": true,
}

// ParseValidators reads the body of a GET .../validators reply.
func ParseValidators(b []byte) ([]Validator, error) {
	var j struct {
		Data *[]struct {
			Index     *string `json:"index"`
			Balance   *string `json:"balance"`
			Status    *string `json:"status"`
			Validator *struct {
				Pubkey                *string `json:"pubkey"`
				WithdrawalCredentials *string `json:"withdrawal_credentials"`
				ExitEpoch             *string `json:"exit_epoch"`
			} `json:"validator"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrResponse, err)
	}
	if j.Data == nil {
		return nil, fmt.Errorf("%w: no data", ErrResponse)
	}
	out := make([]Validator, 0, len(*j.Data))
	for i, d := range *j.Data {
		if d.Index == nil || d.Balance == nil || d.Status == nil || d.Validator == nil ||
			d.Validator.Pubkey == nil || d.Validator.WithdrawalCredentials == nil || d.Validator.ExitEpoch == nil {
			return nil, fmt.Errorf("%w: validator %d lacks a field", ErrResponse, i)
		}
		var v Validator
		var err error
		if v.Index, err = ops.ParseUint("index", *d.Index); err != nil {
			return nil, fmt.Errorf("%w: validator %d: %v", ErrResponse, i, err)
		}
		if v.Balance, err = ops.ParseUint("balance", *d.Balance); err != nil {
			return nil, fmt.Errorf("%w: validator %d: %v", ErrResponse, i, err)
		}
		if v.ExitEpoch, err = ops.ParseUint("exit_epoch", *d.Validator.ExitEpoch); err != nil {
			return nil, fmt.Errorf("%w: validator %d: %v", ErrResponse, i, err)
		}
		if !statuses[*d.Status] {
			return nil, fmt.Errorf("%w: validator %d: status %q", ErrResponse, i, printable([]byte(*d.Status)))
		}
		v.Status = *d.Status
		pk, err := parseHexAnyCase("pubkey", *d.Validator.Pubkey, 48)
		if err != nil {
			return nil, fmt.Errorf("%w: validator %d: %v", ErrResponse, i, err)
		}
		wc, err := parseHexAnyCase("withdrawal_credentials", *d.Validator.WithdrawalCredentials, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: validator %d: %v", ErrResponse, i, err)
		}
		v.Pubkey, v.WithdrawalCredentials = [48]byte(pk), [32]byte(wc)
		out = append(out, v)
	}
	return out, nil
}

func parseHexAnyCase(field, s string, n int) ([]byte, error) {
	return ops.ParseHex(field, strings.ToLower(s), n)
}

// Validators looks validators up in the head state by ids (0x pubkeys or
// decimal indices). Unknown ids are simply absent from the reply, as the
// API defines.
func (c *Client) Validators(ctx context.Context, ids []string) ([]Validator, error) {
	var out []Validator
	for start := 0; start < len(ids); start += maxIDsPerRequest {
		end := min(start+maxIDsPerRequest, len(ids))
		b, err := c.do(ctx, http.MethodGet, "/eth/v1/beacon/states/head/validators", url.Values{"id": {strings.Join(ids[start:end], ",")}}, nil)
		if err != nil {
			return nil, err
		}
		vs, err := ParseValidators(b)
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
	}
	return out, nil
}

// ValidatorsByPubkey looks up each pubkey and returns the validators in
// the same order; ErrNotFound names the first pubkey the node does not
// know, and a reply for a pubkey that was not asked for is ErrResponse.
func (c *Client) ValidatorsByPubkey(ctx context.Context, pubkeys [][48]byte) ([]Validator, error) {
	var ids []string
	want := map[[48]byte][]int{} // positions of each distinct pubkey
	for i, pk := range pubkeys {
		if want[pk] == nil {
			ids = append(ids, "0x"+hex.EncodeToString(pk[:]))
		}
		want[pk] = append(want[pk], i)
	}
	vs, err := c.Validators(ctx, ids)
	if err != nil {
		return nil, err
	}
	got := make([]*Validator, len(pubkeys))
	for i := range vs {
		js, ok := want[vs[i].Pubkey]
		if !ok {
			return nil, fmt.Errorf("%w: the node answered for pubkey 0x%x, which was not asked for", ErrResponse, vs[i].Pubkey)
		}
		for _, j := range js {
			if got[j] != nil && *got[j] != vs[i] {
				return nil, fmt.Errorf("%w: two different answers for pubkey 0x%x", ErrResponse, vs[i].Pubkey)
			}
			got[j] = &vs[i]
		}
	}
	out := make([]Validator, len(pubkeys))
	for i, g := range got {
		if g == nil {
			return nil, fmt.Errorf("%w: pubkey 0x%x", ErrNotFound, pubkeys[i])
		}
		out[i] = *g
	}
	return out, nil
}

// SubmitExit posts a signed exit to the node's voluntary exit pool.
func (c *Client) SubmitExit(ctx context.Context, e *ops.SignedVoluntaryExit) error {
	body, err := ops.MarshalExit(e)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPost, "/eth/v1/beacon/pool/voluntary_exits", nil, body)
	return err
}

// SubmitBLSChanges posts signed BLS changes to the node's pool; an
// APIError's Failures name the rejected entries.
func (c *Client) SubmitBLSChanges(ctx context.Context, cs []*ops.SignedBLSToExecutionChange) error {
	body, err := ops.MarshalBLSChanges(cs)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPost, "/eth/v1/beacon/pool/bls_to_execution_changes", nil, body)
	return err
}
