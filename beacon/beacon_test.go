package beacon_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ethkeygen/ethkeygen/beacon"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/ops"
)

const sister = "sister protect peanut hill ready work profit fit wish want small inflict flip member tail between sick setup bright duck morning sell paper worry"

// fakeNode implements the three endpoints as the beacon API specification
// documents them (github.com/ethereum/beacon-APIs: getStateValidators,
// submitPoolVoluntaryExit, submitPoolBLSToExecutionChange): state ids other
// than head answer 404, malformed ids 400, pool submissions that fail
// validation 400 with an error message (and, for the list endpoint, the
// failures by index); accepted submissions 200 with no body.
type fakeNode struct {
	t       *testing.T
	network depositdata.Network
	mu      sync.Mutex
	vals    []beacon.Validator
	exits   []*ops.SignedVoluntaryExit
	changes []*ops.SignedBLSToExecutionChange
	queries int
	// tamper, if set, rewrites a validators reply.
	tamper func(string) string
}

func writeErr(w http.ResponseWriter, code int, msg string, failures ...map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	body := map[string]any{"code": code, "message": msg}
	if failures != nil {
		body["failures"] = failures
	}
	_ = json.NewEncoder(w).Encode(body)
}

func (f *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/eth/v1/beacon/states/") && strings.HasSuffix(r.URL.Path, "/validators"):
		f.queries++
		if state := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/eth/v1/beacon/states/"), "/validators"); state != "head" {
			writeErr(w, 404, "State not found")
			return
		}
		var data []map[string]any
		for _, id := range strings.Split(r.URL.Query().Get("id"), ",") {
			var match func(beacon.Validator) bool
			if strings.HasPrefix(id, "0x") {
				pk, err := hex.DecodeString(id[2:])
				if err != nil || len(pk) != 48 {
					writeErr(w, 400, "Invalid validator ID: "+id)
					return
				}
				match = func(v beacon.Validator) bool { return v.Pubkey == [48]byte(pk) }
			} else {
				n, err := strconv.ParseUint(id, 10, 64)
				if err != nil {
					writeErr(w, 400, "Invalid validator ID: "+id)
					return
				}
				match = func(v beacon.Validator) bool { return v.Index == n }
			}
			for _, v := range f.vals {
				if match(v) {
					data = append(data, map[string]any{
						"index": strconv.FormatUint(v.Index, 10), "balance": strconv.FormatUint(v.Balance, 10), "status": v.Status,
						"validator": map[string]any{
							"pubkey": "0x" + hex.EncodeToString(v.Pubkey[:]), "withdrawal_credentials": "0x" + hex.EncodeToString(v.WithdrawalCredentials[:]),
							"effective_balance": "32000000000", "slashed": false, "activation_eligibility_epoch": "0",
							"activation_epoch": "0", "exit_epoch": strconv.FormatUint(v.ExitEpoch, 10), "withdrawable_epoch": "18446744073709551615",
						},
					})
				}
			}
		}
		b, _ := json.Marshal(map[string]any{"execution_optimistic": false, "finalized": false, "data": data})
		if f.tamper != nil {
			b = []byte(f.tamper(string(b)))
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	case r.Method == http.MethodPost && r.URL.Path == "/eth/v1/beacon/pool/voluntary_exits":
		b, _ := io.ReadAll(r.Body)
		e, err := ops.ParseExit(b)
		if err != nil {
			writeErr(w, 400, "Invalid voluntary exit: "+err.Error())
			return
		}
		for _, v := range f.vals {
			if v.Index == uint64(e.Message.ValidatorIndex) {
				if err := ops.VerifyExit(e, v.Pubkey[:], f.network); err != nil {
					writeErr(w, 400, "Invalid voluntary exit, it will never pass validation so it's rejected")
					return
				}
				f.exits = append(f.exits, e)
				return
			}
		}
		writeErr(w, 400, "Invalid voluntary exit: unknown validator")
	case r.Method == http.MethodPost && r.URL.Path == "/eth/v1/beacon/pool/bls_to_execution_changes":
		b, _ := io.ReadAll(r.Body)
		entries, err := ops.ParseBLSChanges(b)
		if err != nil {
			writeErr(w, 400, "Invalid request body: "+err.Error())
			return
		}
		var failures []map[string]any
		var ok []*ops.SignedBLSToExecutionChange
		for i, en := range entries {
			c := en.Change
			msg := "unknown validator"
			for _, v := range f.vals {
				if v.Index != uint64(c.BLSToExecutionChange.ValidatorIndex) {
					continue
				}
				msg = ""
				if err := ops.CheckBLSCredentials(v.WithdrawalCredentials, c.BLSToExecutionChange.FromBLSPubKey[:]); err != nil {
					msg = "invalid withdrawal credentials"
				} else if err := ops.VerifyBLSChange(c, f.network); err != nil {
					msg = "invalid signature"
				}
			}
			if msg != "" {
				failures = append(failures, map[string]any{"index": i, "message": msg})
			} else {
				ok = append(ok, c)
			}
		}
		if failures != nil {
			writeErr(w, 400, "Some BLS to execution changes failed validation", failures...)
			return
		}
		f.changes = append(f.changes, ok...)
	default:
		writeErr(w, 404, "not found")
	}
}

type world struct {
	node    *fakeNode
	client  *beacon.Client
	keys    []*keygen.SecretKey // signing keys of validators 1..3
	wkeys   []*keygen.SecretKey // their withdrawal keys
	pubkeys [][48]byte
}

func newWorld(t *testing.T) *world {
	t.Helper()
	m, err := keygen.ParseMnemonic(sister)
	if err != nil {
		t.Fatal(err)
	}
	seed := m.Seed("")
	w := &world{node: &fakeNode{t: t, network: depositdata.Hoodi}}
	for i := uint32(0); i < 3; i++ {
		k, err := keygen.DeriveKey(seed, keygen.SigningPath(i))
		if err != nil {
			t.Fatal(err)
		}
		wk, err := keygen.DeriveKey(seed, keygen.WithdrawalPath(i))
		if err != nil {
			t.Fatal(err)
		}
		w.keys, w.wkeys = append(w.keys, k), append(w.wkeys, wk)
		pk := [48]byte(k.PublicKey())
		w.pubkeys = append(w.pubkeys, pk)
		w.node.vals = append(w.node.vals, beacon.Validator{Index: uint64(i) + 1, Pubkey: pk,
			WithdrawalCredentials: depositdata.BLSCredentials(wk.PublicKey()), Status: "active_ongoing",
			Balance: 32_000_000_000, ExitEpoch: 1<<64 - 1})
	}
	srv := httptest.NewServer(w.node)
	t.Cleanup(srv.Close)
	if w.client, err = beacon.New(srv.URL+"/", beacon.WithHTTPClient(srv.Client())); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestLookupByPubkey(t *testing.T) {
	w := newWorld(t)
	// Asked in another order than the node holds them.
	ask := [][48]byte{w.pubkeys[2], w.pubkeys[0]}
	vs, err := w.client.ValidatorsByPubkey(t.Context(), ask)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0] != w.node.vals[2] || vs[1] != w.node.vals[0] {
		t.Fatalf("got %+v", vs)
	}
	// By index.
	vs, err = w.client.Validators(t.Context(), []string{"2"})
	if err != nil || len(vs) != 1 || vs[0] != w.node.vals[1] {
		t.Fatalf("by index: %+v, %v", vs, err)
	}
	// Unknown pubkey.
	var unknown [48]byte
	unknown[0] = 0xc0
	if _, err := w.client.ValidatorsByPubkey(t.Context(), [][48]byte{w.pubkeys[0], unknown}); !errors.Is(err, beacon.ErrNotFound) {
		t.Fatalf("unknown pubkey: %v", err)
	}
	// A malformed id: the node's 400 becomes an APIError.
	_, err = w.client.Validators(t.Context(), []string{"0x12"})
	var apiErr *beacon.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || !strings.Contains(apiErr.Message, "Invalid validator ID") {
		t.Fatalf("malformed id: %v", err)
	}
}

func TestLookupBatches(t *testing.T) {
	w := newWorld(t)
	// 100 ids: two queries of at most 64.
	var ids []string
	for i := 0; i < 100; i++ {
		ids = append(ids, strconv.Itoa(i%3+1))
	}
	w.node.queries = 0
	vs, err := w.client.Validators(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 100 || w.node.queries != 2 {
		t.Fatalf("%d validators in %d queries", len(vs), w.node.queries)
	}
	// A pubkey asked twice is asked once and answered in both places.
	w.node.queries = 0
	got, err := w.client.ValidatorsByPubkey(t.Context(), [][48]byte{w.pubkeys[1], w.pubkeys[0], w.pubkeys[1]})
	if err != nil || len(got) != 3 || got[0] != got[2] || got[0].Index != 2 || got[1].Index != 1 || w.node.queries != 1 {
		t.Fatalf("%+v, %v, %d queries", got, err, w.node.queries)
	}
}

func TestLookupRefusesBadReplies(t *testing.T) {
	for name, tamper := range map[string]func(string) string{
		"another validator": func(s string) string {
			i := strings.Index(s, `"pubkey":"0x`) + len(`"pubkey":"0x`)
			return s[:i] + strings.Repeat("aa", 48) + s[i+96:]
		},
		"number as JSON number": func(s string) string { return strings.Replace(s, `"index":"1"`, `"index":1`, 1) },
		"leading zero":          func(s string) string { return strings.Replace(s, `"index":"1"`, `"index":"01"`, 1) },
		"short credentials": func(s string) string {
			return strings.Replace(s, `"withdrawal_credentials":"0x00`, `"withdrawal_credentials":"0x`, 1)
		},
		"no credentials": func(s string) string { return strings.Replace(s, `"withdrawal_credentials"`, `"credentials"`, 1) },
		"unknown status": func(s string) string { return strings.Replace(s, `"active_ongoing"`, `"happy"`, 1) },
		"no data":        func(string) string { return `{"execution_optimistic":false}` },
		"not JSON":       func(string) string { return `<html>` },
	} {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t)
			w.node.tamper = tamper
			_, err := w.client.ValidatorsByPubkey(t.Context(), w.pubkeys[:1])
			if !errors.Is(err, beacon.ErrResponse) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestSubmitExit(t *testing.T) {
	w := newWorld(t)
	e, err := ops.SignExit(w.keys[0], 1, 0, depositdata.Hoodi)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.client.SubmitExit(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if len(w.node.exits) != 1 || *w.node.exits[0] != *e {
		t.Fatalf("pool holds %v", w.node.exits)
	}
	// Signed by validator 1's key for validator 2: the node refuses it.
	bad, err := ops.SignExit(w.keys[0], 2, 0, depositdata.Hoodi)
	if err != nil {
		t.Fatal(err)
	}
	err = w.client.SubmitExit(t.Context(), bad)
	var apiErr *beacon.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != 400 || !strings.Contains(apiErr.Message, "never pass validation") {
		t.Fatalf("bad exit: %v", err)
	}
	if len(w.node.exits) != 1 {
		t.Fatal("a refused exit entered the pool")
	}
}

func TestSubmitBLSChanges(t *testing.T) {
	w := newWorld(t)
	to := depositdata.Address{0x34}
	var cs []*ops.SignedBLSToExecutionChange
	for i := 0; i < 2; i++ {
		c, err := ops.SignBLSChange(w.wkeys[i], uint64(i)+1, depositdata.BLSCredentials(w.wkeys[i].PublicKey()), to, depositdata.Hoodi)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	if err := w.client.SubmitBLSChanges(t.Context(), cs); err != nil {
		t.Fatal(err)
	}
	if len(w.node.changes) != 2 {
		t.Fatalf("pool holds %d changes", len(w.node.changes))
	}
	// Entry 1 claims validator 3 with validator 2's withdrawal key.
	wrong, err := ops.SignBLSChange(w.wkeys[1], 3, depositdata.BLSCredentials(w.wkeys[1].PublicKey()), to, depositdata.Hoodi)
	if err != nil {
		t.Fatal(err)
	}
	err = w.client.SubmitBLSChanges(t.Context(), []*ops.SignedBLSToExecutionChange{cs[0], wrong})
	var apiErr *beacon.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || len(apiErr.Failures) != 1 || apiErr.Failures[0].Index != 1 ||
		!strings.Contains(apiErr.Failures[0].Message, "withdrawal credentials") {
		t.Fatalf("bad change: %#v", err)
	}
	if !strings.Contains(err.Error(), "entry 1") {
		t.Fatalf("error does not name the entry: %v", err)
	}
}

func TestTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("id") {
		case "1":
			w.WriteHeader(500)
			_, _ = w.Write([]byte("internal\nerror"))
		default:
			_, _ = w.Write([]byte(`{"data":[` + strings.Repeat(" ", 17<<20) + `]}`))
		}
	}))
	defer srv.Close()
	c, err := beacon.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Validators(t.Context(), []string{"1"})
	var apiErr *beacon.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 500 || apiErr.Message != "internal error" {
		t.Fatalf("500: %v", err)
	}
	if _, err := c.Validators(t.Context(), []string{"2"}); !errors.Is(err, beacon.ErrResponse) {
		t.Fatalf("oversized: %v", err)
	}
	for _, bad := range []string{"", "ftp://x", "http://", "127.0.0.1:5052"} {
		if _, err := beacon.New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

func FuzzParseValidators(f *testing.F) {
	f.Add([]byte(`{"data":[{"index":"1","balance":"32000000000","status":"active_ongoing","validator":{"pubkey":"0x` + strings.Repeat("ab", 48) + `","withdrawal_credentials":"0x` + strings.Repeat("00", 32) + `","exit_epoch":"18446744073709551615"}}]}`))
	f.Add([]byte(`{"data":[]}`))
	f.Add([]byte(`{"data":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := beacon.ParseValidators(b)
		if err != nil {
			return
		}
		for _, v := range vs {
			if v.Status == "" {
				t.Fatalf("accepted an empty status: %s", b)
			}
		}
	})
}

func FuzzParseError(f *testing.F) {
	f.Add([]byte(`{"code":400,"message":"bad","failures":[{"index":1,"message":"x"}]}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e := beacon.ParseError(400, b)
		s := e.Error()
		if strings.ContainsAny(s, "\n\r") {
			t.Fatalf("multi-line error %q", s)
		}
		_ = fmt.Sprint(e.Failures)
	})
}
