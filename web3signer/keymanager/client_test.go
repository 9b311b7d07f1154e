package keymanager_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

const testToken = "api-token-0123456789abcdef-secret"

func token(t *testing.T, s string) *keymanager.Token {
	t.Helper()
	tok, err := keymanager.NewToken([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func client(t *testing.T, url string, opts ...keymanager.Option) *keymanager.Client {
	t.Helper()
	c, err := keymanager.New(url, token(t, testToken), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

const pk1 = "a99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c"

var oneKeystore = []keymanager.Keystore{{JSON: []byte(`{"pubkey":"` + pk1 + `"}`), Password: []byte("pass\"word\\\n1")}}

const emptyIC = `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"0x270d43e74ce340de4bca2b1936beca0f4f5408d9e78aec4850920baf659d5b69"},"data":[]}`

// recorder is a Keymanager API stand-in that checks the token and records
// what it was sent.
type recorder struct {
	status int
	body   string
	delay  time.Duration
	got    atomic.Value // []byte
	auth   atomic.Value // string
	method atomic.Value
	calls  atomic.Int32
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.calls.Add(1)
	b, _ := io.ReadAll(req.Body)
	r.got.Store(b)
	r.auth.Store(req.Header.Get("Authorization"))
	r.method.Store(req.Method + " " + req.URL.Path)
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-req.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.status)
	io.WriteString(w, r.body)
}

func TestImportRequestBody(t *testing.T) {
	rec := &recorder{status: 200, body: `{"data":[{"status":"imported","message":""}]}`}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	res, err := client(t, srv.URL).Import(t.Context(), oneKeystore, []byte(emptyIC))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Status != keymanager.Imported {
		t.Fatalf("results %+v", res)
	}
	if got := rec.auth.Load().(string); got != "Bearer "+testToken {
		t.Fatalf("Authorization %q", got)
	}
	if got := rec.method.Load().(string); got != "POST /eth/v1/keystores" {
		t.Fatalf("request %s", got)
	}
	// The body is what the Keymanager API specifies: three fields, each
	// keystore, password and the interchange as a JSON string.
	var body struct {
		Keystores          []string `json:"keystores"`
		Passwords          []string `json:"passwords"`
		SlashingProtection string   `json:"slashing_protection"`
	}
	dec := json.NewDecoder(bytes.NewReader(rec.got.Load().([]byte)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatal(err)
	}
	if len(body.Keystores) != 1 || body.Keystores[0] != string(oneKeystore[0].JSON) ||
		len(body.Passwords) != 1 || body.Passwords[0] != string(oneKeystore[0].Password) || body.SlashingProtection != emptyIC {
		t.Fatalf("body %+v", body)
	}
}

func TestRefusedRequests(t *testing.T) {
	c := client(t, "http://127.0.0.1:1")
	for name, ks := range map[string][]keymanager.Keystore{
		"none":              nil,
		"keystore not json": {{JSON: []byte("{"), Password: []byte("p")}},
		"no password":       {{JSON: []byte("{}")}},
		"password not utf8": {{JSON: []byte("{}"), Password: []byte{0xff}}},
	} {
		if _, err := c.Import(t.Context(), ks, []byte(emptyIC)); !errors.Is(err, keymanager.ErrRequest) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if _, err := c.Import(t.Context(), oneKeystore, nil); !errors.Is(err, keymanager.ErrRequest) {
		t.Errorf("no interchange: got %v", err)
	}
	if _, err := c.Import(t.Context(), oneKeystore, []byte("{")); !errors.Is(err, keymanager.ErrRequest) {
		t.Errorf("interchange not json: got %v", err)
	}
	if _, _, err := c.Delete(t.Context(), []string{"0x12"}); !errors.Is(err, keymanager.ErrRequest) {
		t.Errorf("bad pubkey: got %v", err)
	}
}

func TestConfig(t *testing.T) {
	tok := token(t, testToken)
	for _, u := range []string{
		"http://10.0.0.1:5052",       // the token would travel in the clear
		"http://signer.example:5052", // likewise
		"ftp://127.0.0.1:1",
		"127.0.0.1:5052",
		"http://user:pw@127.0.0.1:1",
		"http://127.0.0.1:1/?q=1",
	} {
		if _, err := keymanager.New(u, tok); !errors.Is(err, keymanager.ErrConfig) {
			t.Errorf("%s: got %v", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:1", "http://[::1]:1", "http://localhost:1/prefix/", "https://signer.example:5052"} {
		if _, err := keymanager.New(u, tok); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	if _, err := keymanager.New("http://127.0.0.1:1", nil); !errors.Is(err, keymanager.ErrConfig) {
		t.Errorf("no token: %v", err)
	}
	if _, err := keymanager.New("http://127.0.0.1:1", tok, keymanager.WithTimeout(0)); !errors.Is(err, keymanager.ErrConfig) {
		t.Errorf("zero timeout: %v", err)
	}
	if _, err := keymanager.New("https://127.0.0.1:1", tok, keymanager.WithCAFile(filepath.Join(t.TempDir(), "none.pem"))); !errors.Is(err, keymanager.ErrConfig) {
		t.Errorf("missing CA file: %v", err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	if _, err := keymanager.New("https://127.0.0.1:1", tok, keymanager.WithCAFile(notPEM)); !errors.Is(err, keymanager.ErrConfig) {
		t.Errorf("CA file without PEM: %v", err)
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rec := &recorder{status: 200, body: `{"data":[]}`}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	tok, err := keymanager.ReadTokenFile(write("ok", testToken+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := keymanager.New(srv.URL, tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := rec.auth.Load().(string); got != "Bearer "+testToken {
		t.Fatalf("Authorization %q: the trailing newline is not part of the token", got)
	}
	for name, content := range map[string]string{"empty": "\n", "two words": "a b", "control": "a\x01b"} {
		if _, err := keymanager.ReadTokenFile(write(name, content)); !errors.Is(err, keymanager.ErrConfig) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if _, err := keymanager.ReadTokenFile(filepath.Join(dir, "missing")); !errors.Is(err, keymanager.ErrConfig) {
		t.Errorf("missing: got %v", err)
	}
}

func TestTokenRedacts(t *testing.T) {
	tok := token(t, testToken)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "token", tok, "value", *tok)
	js, _ := json.Marshal(struct{ T *keymanager.Token }{tok})
	all := buf.String() + string(js) + fmt.Sprintf("%v %+v %#v %s %q %x", tok, tok, tok, tok, tok, tok) +
		fmt.Sprintf("%v %+v %#v", *tok, *tok, *tok)
	if strings.Contains(all, testToken) || strings.Contains(all, fmt.Sprintf("%x", testToken)) {
		t.Fatalf("token printed: %s", all)
	}
	tok.Destroy()
	if _, err := keymanager.New("http://127.0.0.1:1", tok); !errors.Is(err, keymanager.ErrConfig) {
		t.Fatalf("destroyed token accepted: %v", err)
	}
}

// TestFailureModes: every failure is one line, wraps its sentinel, and
// never quotes the token.
func TestFailureModes(t *testing.T) {
	down := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr
	}()
	cases := []struct {
		name    string
		rec     *recorder
		url     string
		timeout time.Duration
		want    error
		text    string
	}{
		{name: "down", url: down, want: keymanager.ErrUnavailable, text: "connection refused"},
		{name: "slow", rec: &recorder{status: 200, body: `{"data":[]}`, delay: 5 * time.Second}, timeout: 300 * time.Millisecond, want: keymanager.ErrUnavailable, text: "within 300ms"},
		{name: "401", rec: &recorder{status: 401, body: `{"code":401,"message":"Invalid token"}`}, want: keymanager.ErrUnauthorized, text: "Invalid token"},
		{name: "403", rec: &recorder{status: 403, body: `{"code":403,"message":"Forbidden"}`}, want: keymanager.ErrForbidden},
		{name: "500", rec: &recorder{status: 500, body: "{\"code\":500,\"message\":\"ERR_INTERCHANGE_GENESIS_VALIDATOR_MISMATCH\\nat line 2\"}"}, want: keymanager.ErrServer, text: "500 Internal Server Error: ERR_INTERCHANGE_GENESIS_VALIDATOR_MISMATCH at line 2"},
		{name: "502 text", rec: &recorder{status: 502, body: "<html>\r\nbad gateway</html>"}, want: keymanager.ErrServer, text: "502 Bad Gateway: <html> bad gateway</html>"},
		{name: "not json", rec: &recorder{status: 200, body: `<html>`}, want: keymanager.ErrMalformed},
		{name: "no data", rec: &recorder{status: 200, body: `{}`}, want: keymanager.ErrMalformed},
		{name: "too few answers", rec: &recorder{status: 200, body: `{"data":[]}`}, want: keymanager.ErrMalformed, text: "0 answers for 1 keys"},
		{name: "unknown status", rec: &recorder{status: 200, body: `{"data":[{"status":"maybe"}]}`}, want: keymanager.ErrMalformed},
		{name: "no status", rec: &recorder{status: 200, body: `{"data":[{"message":"x"}]}`}, want: keymanager.ErrMalformed},
		{name: "trailing data", rec: &recorder{status: 200, body: `{"data":[{"status":"imported"}]} {}`}, want: keymanager.ErrMalformed},
		{name: "redirect is not followed", rec: &recorder{status: 307, body: ``}, want: keymanager.ErrServer, text: "307"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.url
			if tc.rec != nil {
				srv := httptest.NewServer(tc.rec)
				defer srv.Close()
				u = srv.URL
			}
			var opts []keymanager.Option
			if tc.timeout > 0 {
				opts = append(opts, keymanager.WithTimeout(tc.timeout))
			}
			start := time.Now()
			_, err := client(t, u, opts...).Import(t.Context(), oneKeystore, []byte(emptyIC))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") || strings.Contains(msg, testToken) || strings.Contains(msg, string(oneKeystore[0].Password)) {
				t.Fatalf("error is not one clean line: %q", msg)
			}
			if !strings.Contains(msg, tc.text) {
				t.Fatalf("error %q does not say %q", msg, tc.text)
			}
			if tc.timeout > 0 && time.Since(start) > tc.timeout+2*time.Second {
				t.Fatalf("took %v with a timeout of %v", time.Since(start), tc.timeout)
			}
		})
	}
	t.Run("context cancelled", func(t *testing.T) {
		rec := &recorder{status: 200, body: `{"data":[]}`, delay: 5 * time.Second}
		srv := httptest.NewServer(rec)
		defer srv.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := client(t, srv.URL).List(ctx)
		if !errors.Is(err, keymanager.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestDeleteAndList(t *testing.T) {
	ic := `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"0x` + strings.Repeat("ab", 32) + `"},"data":[{"pubkey":"0x` + pk1 + `","signed_blocks":[],"signed_attestations":[{"source_epoch":"1","target_epoch":"2"}]}]}`
	icJSON, _ := json.Marshal(ic)
	rec := &recorder{status: 200, body: `{"data":[{"status":"deleted","message":""}],"slashing_protection":` + string(icJSON) + `}`}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c := client(t, srv.URL)
	res, got, err := c.Delete(t.Context(), []string{"0X" + strings.ToUpper(pk1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Status != keymanager.Deleted || string(got) != ic {
		t.Fatalf("got %+v %s", res, got)
	}
	if m := rec.method.Load().(string); m != "DELETE /eth/v1/keystores" {
		t.Fatal(m)
	}
	if b := string(rec.got.Load().([]byte)); b != `{"pubkeys":["0x`+pk1+`"]}` {
		t.Fatalf("delete body %s", b)
	}
	rec.body = `{"data":[{"status":"deleted"}]}`
	if _, _, err := c.Delete(t.Context(), []string{pk1}); !errors.Is(err, keymanager.ErrMalformed) {
		t.Fatalf("no interchange: %v", err)
	}
	rec.body = `{"data":[{"validating_pubkey":"0x` + pk1 + `","derivation_path":"m/12381/3600/0/0/0","readonly":false}]}`
	keys, err := c.List(t.Context())
	if err != nil || len(keys) != 1 || keys[0].Pubkey != pk1 || keys[0].DerivationPath != "m/12381/3600/0/0/0" {
		t.Fatalf("list %+v %v", keys, err)
	}
	rec.body = `{"data":[{"validating_pubkey":"0x12"}]}`
	if _, err := c.List(t.Context()); !errors.Is(err, keymanager.ErrMalformed) {
		t.Fatalf("bad pubkey: %v", err)
	}
}

// TestPinnedCA: with WithCAFile the client trusts that CA and no other,
// the system roots included.
func TestPinnedCA(t *testing.T) {
	rec := &recorder{status: 200, body: `{"data":[]}`}
	srv := httptest.NewTLSServer(rec) // httptest's own test certificate
	defer srv.Close()
	dir := t.TempDir()
	writePEM := func(name string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	httptestCA := writePEM("httptest.pem", srv.Certificate().Raw)

	// A second server whose certificate comes from a CA of our own.
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test signer CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	own := httptest.NewUnstartedServer(rec)
	own.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}
	own.StartTLS()
	defer own.Close()
	ownCA := writePEM("own.pem", caDER)

	if _, err := client(t, srv.URL, keymanager.WithCAFile(httptestCA)).List(t.Context()); err != nil {
		t.Fatalf("pinned httptest CA: %v", err)
	}
	if _, err := client(t, own.URL, keymanager.WithCAFile(ownCA)).List(t.Context()); err != nil {
		t.Fatalf("pinned own CA: %v", err)
	}
	for name, c := range map[string]*keymanager.Client{
		"other pinned CA": client(t, own.URL, keymanager.WithCAFile(httptestCA)),
		"system roots":    client(t, own.URL),
	} {
		_, err := c.List(t.Context())
		if !errors.Is(err, keymanager.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if rec.calls.Load() != 2 {
		t.Fatalf("%d requests reached a server, want 2: a refused certificate must stop the request before the token is sent", rec.calls.Load())
	}
	if _, err := keymanager.New("http://127.0.0.1:1", token(t, testToken), keymanager.WithCAFile(ownCA)); !errors.Is(err, keymanager.ErrConfig) {
		t.Fatalf("CA file with http: %v", err)
	}
}

// TestNotSentWhole: a request cancelled before its body was all handed to
// the connection (the server stalls reading it) is ErrNotSent, which the
// loader may take as "nothing loaded"; one cancelled after the server read
// it all (and holds the answer) is not: its outcome is unknown.
func TestNotSentWhole(t *testing.T) {
	// 32 MiB: more than loopback's socket buffers hold.
	big := []keymanager.Keystore{{JSON: []byte(`"` + strings.Repeat("k", 32<<20) + `"`), Password: []byte("password")}}
	for _, tc := range []struct {
		name    string
		readAll bool
		ks      []keymanager.Keystore
	}{
		{"server stalls reading the body", false, big},
		{"server read the body, answer withheld", true, oneKeystore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			read := make(chan struct{})
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				if tc.readAll {
					_, _ = io.ReadAll(req.Body)
				} else {
					_, _ = io.ReadFull(req.Body, make([]byte, 1024))
				}
				close(read)
				<-release
			}))
			defer srv.Close()
			defer close(release)
			ctx, cancel := context.WithCancel(t.Context())
			go func() {
				<-read
				time.Sleep(200 * time.Millisecond) // the client is blocked writing or waiting
				cancel()
			}()
			_, err := client(t, srv.URL).Import(ctx, tc.ks, []byte(emptyIC))
			if !errors.Is(err, keymanager.ErrUnavailable) || !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want ErrUnavailable and context.Canceled", err)
			}
			if got := errors.Is(err, keymanager.ErrNotSent); got == tc.readAll {
				t.Fatalf("ErrNotSent is %v (%v)", got, err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}
