package keymanager

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Errors. Test for them with errors.Is.
var (
	// ErrUnavailable: the server could not be reached or did not answer
	// within the timeout.
	ErrUnavailable = errors.New("keymanager: server unavailable")
	// ErrUnauthorized: the server answered 401 (missing or wrong token).
	ErrUnauthorized = errors.New("keymanager: unauthorized (401): the token was refused")
	// ErrForbidden: the server answered 403.
	ErrForbidden = errors.New("keymanager: forbidden (403)")
	// ErrServer: the server answered another non-2xx status.
	ErrServer = errors.New("keymanager: server error")
	// ErrMalformed: a 2xx answer that is not what the API specifies.
	ErrMalformed = errors.New("keymanager: malformed answer")
	// ErrConfig: the client was given something it cannot use.
	ErrConfig = errors.New("keymanager: invalid configuration")
	// ErrRequest: a request the client refuses to send.
	ErrRequest = errors.New("keymanager: invalid request")
	// ErrNotSent (with ErrUnavailable): the request failed before its body
	// was all handed to the connection, so the server cannot have acted on
	// it (it declares its length; a server never holds the whole request).
	// Without it, a request that failed had an unknown outcome.
	ErrNotSent = errors.New("keymanager: the request was not sent whole")
)

// Path of the keystore endpoints.
const KeystoresPath = "/eth/v1/keystores"

// DefaultTimeout bounds one request, answer included. A server decrypts
// every keystore it imports: with scrypt keystores that is about a second
// per key (Lodestar v1.5.1 took 11 s): give WithTimeout for large imports
// of those, or hand keys over as web3signer.HandoffKeystore makes them
// (pbkdf2, c=1: milliseconds).
const DefaultTimeout = 2 * time.Minute

// ImportBatch is a sensible number of keys per Import: servers bound a
// request's body (Lodestar v1.5.1's Keymanager API: 20 MB), and a
// hand-off keystore with its password and history takes about 1 KB.
const ImportBatch = 1000

// MaxResponseSize bounds an answer (an interchange for many keys with
// history can be large).
const MaxResponseSize = 256 << 20

// Token is a Keymanager API bearer token. It redacts itself when formatted
// or logged; call Destroy when done.
type Token struct{ b []byte }

const redacted = "[REDACTED]"

// String redacts.
func (Token) String() string { return redacted }

// GoString redacts.
func (Token) GoString() string { return redacted }

// Format redacts.
func (Token) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON redacts.
func (Token) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText redacts.
func (Token) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue redacts.
func (Token) LogValue() slog.Value { return slog.StringValue(redacted) }

// Destroy clears the token.
func (t *Token) Destroy() {
	if t != nil {
		clear(t.b)
		t.b = nil
	}
}

// NewToken makes a Token of s (surrounding whitespace removed). It refuses
// an empty token and one holding bytes that cannot go into an HTTP header.
func NewToken(s []byte) (*Token, error) {
	s = bytes.TrimSpace(s)
	if len(s) == 0 {
		return nil, fmt.Errorf("%w: empty token", ErrConfig)
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e {
			return nil, fmt.Errorf("%w: the token holds a character that cannot go into a header", ErrConfig)
		}
	}
	return &Token{b: bytes.Clone(s)}, nil
}

// ReadTokenFile reads a token file (Web3Signer and validator clients write
// one token on one line; surrounding whitespace is not part of it).
func ReadTokenFile(path string) (*Token, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: reading the token file: %w", ErrConfig, errors.Unwrap(err))
	}
	defer clear(b)
	t, err := NewToken(b)
	if err != nil {
		return nil, fmt.Errorf("%w (token file %s)", err, path)
	}
	return t, nil
}

// Option configures New.
type Option interface{ apply(*options) error }

type options struct {
	caFile  string
	timeout time.Duration
}

type optionFunc func(*options) error

func (f optionFunc) apply(o *options) error { return f(o) }

// WithCAFile pins the CA that must have signed the server's certificate
// (PEM; one or more certificates). The system roots are not trusted then.
func WithCAFile(path string) Option {
	return optionFunc(func(o *options) error {
		if o.caFile != "" {
			return fmt.Errorf("%w: WithCAFile given twice", ErrConfig)
		}
		o.caFile = path
		return nil
	})
}

// WithTimeout bounds each request, answer included (DefaultTimeout
// otherwise).
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v", ErrConfig, d)
		}
		o.timeout = d
		return nil
	})
}

// Client talks to one Keymanager API server.
type Client struct {
	base    *url.URL
	token   *Token
	http    *http.Client
	timeout time.Duration
}

// New makes a client for the server at baseURL (scheme, host, port and an
// optional path prefix) authenticating with token. The client uses token
// until it is destroyed; it does not copy it.
func New(baseURL string, token *Token, opts ...Option) (*Client, error) {
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		if err := opt.apply(&o); err != nil {
			return nil, err
		}
	}
	if token == nil || len(token.b) == 0 {
		return nil, fmt.Errorf("%w: no token", ErrConfig)
	}
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: %q is not a server URL (scheme://host:port)", ErrConfig, redactURL(baseURL))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback(u.Hostname()) {
			return nil, fmt.Errorf("%w: plain http to %s would send the token in the clear: use https (plain http only to a loopback address)", ErrConfig, u.Host)
		}
		if o.caFile != "" {
			return nil, fmt.Errorf("%w: a CA file needs an https URL", ErrConfig)
		}
	default:
		return nil, fmt.Errorf("%w: URL scheme %q (want https, or http to a loopback address)", ErrConfig, u.Scheme)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	tr := &http.Transport{
		Proxy:                 nil, // the signer is reached directly, never through an environment proxy
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: o.timeout,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("%w: reading the CA file: %w", ErrConfig, errors.Unwrap(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrConfig, o.caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{
		base:  u,
		token: token,
		http: &http.Client{
			Transport: tr,
			Timeout:   o.timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // the token goes to the URL given, nowhere else
			},
		},
		timeout: o.timeout,
	}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = url.User("REDACTED")
		return u.String()
	}
	return s
}

// do sends one request with body (cleared afterwards by the caller) and
// returns the 2xx answer's body.
func (c *Client) do(ctx context.Context, method string, body []byte) ([]byte, error) {
	op := method + " " + KeystoresPath
	u := *c.base
	u.Path += KeystoresPath
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrRequest, op, err)
	}
	// Whether the transport read a body to its end, on any attempt (it
	// may retry with GetBody).
	var whole atomic.Bool
	if body != nil {
		req.Body = &trackedBody{ReadCloser: req.Body, whole: &whole}
		getBody := req.GetBody
		req.GetBody = func() (io.ReadCloser, error) {
			b, err := getBody()
			if err != nil {
				return nil, err
			}
			return &trackedBody{ReadCloser: b, whole: &whole}, nil
		}
	}
	req.Header.Set("Authorization", "Bearer "+string(c.token.b))
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if body != nil && !whole.Load() {
			return nil, fmt.Errorf("%w: %w", ErrNotSent, c.transportError(ctx, op, err))
		}
		return nil, c.transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, c.transportError(ctx, op, err)
	}
	if len(b) > MaxResponseSize {
		return nil, fmt.Errorf("%w: %s: answer larger than %d bytes", ErrMalformed, op, MaxResponseSize)
	}
	if resp.StatusCode/100 == 2 {
		return b, nil
	}
	msg := serverMessage(b)
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("%w: %s%s", ErrUnauthorized, op, msg)
	case http.StatusForbidden:
		return nil, fmt.Errorf("%w: %s%s", ErrForbidden, op, msg)
	default:
		return nil, fmt.Errorf("%w: %s: %s%s", ErrServer, op, resp.Status, msg)
	}
}

func (c *Client) transportError(ctx context.Context, op string, err error) error {
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, ctx.Err())
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: %s: no answer from %s within %v", ErrUnavailable, op, c.base.Host, c.timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL holds nothing secret, but is said once
	}
	return fmt.Errorf("%w: %s to %s: %s", ErrUnavailable, op, c.base.Host, oneLine(err.Error(), 300))
}

// serverMessage is ": <message>" from a Keymanager API error body
// ({"code":..., "message": ...}), or the start of a non-JSON body, as one
// printable line; "" when there is nothing to say.
func serverMessage(b []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	s := ""
	if err := unmarshal(b, &e); err == nil && e.Message != "" {
		s = e.Message
	} else if len(b) > 0 && !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		s = string(b)
	}
	if s = oneLine(s, 300); s == "" {
		return ""
	}
	return ": " + s
}

// oneLine makes s printable on one line of at most max runes.
func oneLine(s string, max int) string {
	var out strings.Builder
	n := 0
	space := false
	for _, r := range s {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		if r == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		if n == max {
			out.WriteString("…")
			break
		}
		out.WriteRune(r)
		n++
	}
	return strings.TrimSpace(out.String())
}

// trackedBody notes when a request body was read to its end.
type trackedBody struct {
	io.ReadCloser
	whole *atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.whole.Store(true)
	}
	return n, err
}
