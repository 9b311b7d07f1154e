//go:build !ethkeygen_fuzzonly

package enclave_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/enclave"
	"github.com/ethkeygen/ethkeygen/enclave/parent"
	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

const watchSigner = "enclave:watch-test:16"

// enclaveDialer stands for vsock: every Dial makes a socket pair and runs
// one enclave.Serve on its far end with cfg, counting the dials in serves (one long-running enclave:
// the same Config, key directory and interchange for every load).
func (w *world) enclaveDialer(cfg enclave.Config, serves *atomic.Int32) func(context.Context) (io.ReadWriteCloser, error) {
	return func(context.Context) (io.ReadWriteCloser, error) {
		serves.Add(1)
		pc, ec := socketPair(w.t)
		go func() {
			_ = enclave.Serve(context.Background(), ec, cfg)
			ec.Close()
		}()
		return pc, nil
	}
}

func watchRequest(context.Context) (parent.Request, error) {
	return parent.Request{Region: "eu-west-1", Credentials: testCreds, GenesisValidatorsRoot: hoodiRoot}, nil
}

// nextPass waits for the first report that satisfies ok, failing the test
// if none comes (the timeout is a guard against a hang, not a measurement).
func nextPass(t *testing.T, passes <-chan parent.Pass, what string, ok func(parent.Pass) bool) parent.Pass {
	t.Helper()
	guard := time.After(2 * time.Minute)
	for {
		select {
		case p := <-passes:
			if ok(p) {
				return p
			}
		case <-guard:
			t.Fatalf("no poll %s", what)
		}
	}
}

// loadRound waits until the watch has loaded exactly the keys of want (a
// round of Assign), failing on an error, a refused or held key, or another
// key; it returns how many passes loaded some. Assign records one key at a
// time, so a poll may run between two of them: the keys may come in one
// pass or several.
func (w *world) loadRound(passes <-chan parent.Pass, what string, want []string) int32 {
	w.t.Helper()
	var loaded []string
	var loadingPasses int32
	nextPass(w.t, passes, "loading "+what, func(p parent.Pass) bool {
		if p.Err != nil || len(p.Refused)+len(p.Held) > 0 {
			w.t.Fatalf("%s: %+v\n%s", what, p, w.encLog.String())
		}
		if len(p.Loaded) > 0 {
			loadingPasses++
			loaded = append(loaded, p.Loaded...)
		}
		return len(loaded) >= len(want)
	})
	if !slices.Equal(sorted(loaded), sorted(want)) {
		w.t.Fatalf("%s loaded %v, want %v", what, loaded, sorted(want))
	}
	return loadingPasses
}

func (w *world) state(pk string) *store.KeyState {
	w.t.Helper()
	_, ks, err := w.cust.Get(context.Background(), pk)
	if err != nil {
		w.t.Fatal(err)
	}
	return ks
}

// TestWatchLoadsAssignedKeys runs the parent's watch mode against one
// long-running enclave (fake NSM, KMS stand-in) writing a key directory
// and calling a Web3Signer /reload stand-in: keys assigned to the signer
// arrive without a restart, in two rounds; keys assigned elsewhere or not
// at all stay where they are; a key the enclave refuses (already in the
// key directory) is held back while the others of its batch load; SIGTERM
// stops the watch between loads with no error.
func TestWatchLoadsAssignedKeys(t *testing.T) {
	w := newWorld(t)
	var reloads atomic.Int32
	web3 := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/reload" {
			reloads.Add(1)
			return
		}
		rw.WriteHeader(http.StatusNotFound)
	}))
	defer web3.Close()
	cfg := w.config()
	cfg.Signer = &enclave.KeyDirSigner{Dir: w.keyDir, InterchangeFile: w.ichange, ReloadURL: web3.URL + "/reload"}
	var serves atomic.Int32

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	passes := make(chan parent.Pass)
	done := make(chan error, 1)
	go func() {
		done <- parent.Watch(ctx, w.cust, parent.WatchConfig{
			Signer: watchSigner, Interval: 10 * time.Millisecond, MaxBackoff: time.Hour, Batch: 3,
			Dial: w.enclaveDialer(cfg, &serves), Request: watchRequest, Logger: debugLogger(w.parLog), Passes: passes,
		})
	}()
	// Nothing assigned yet: polls load nothing and never dial.
	nextPass(t, passes, "with nothing assigned", func(p parent.Pass) bool { return len(p.Assigned) == 0 && p.Err == nil })
	if serves.Load() != 0 {
		t.Fatal("the watch dialled the enclave with nothing to load")
	}

	// Round 1: two keys for this signer, one for another.
	mine, other := w.pubkeys[:2], w.pubkeys[2]
	if _, err := w.cust.Assign(ctx, mine, watchSigner); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cust.Assign(ctx, []string{other}, "enclave:elsewhere:17"); err != nil {
		t.Fatal(err)
	}
	// Each pass that loads reloads the signer once.
	loadingPasses := w.loadRound(passes, "round 1", mine)
	found := w.verifyKeyDir()
	if len(found) != 2 || !found[mine[0]] || !found[mine[1]] || reloads.Load() != loadingPasses {
		t.Fatalf("after round 1: key dir %v, %d reloads in %d loading polls", found, reloads.Load(), loadingPasses)
	}
	for _, pk := range mine {
		if ks := w.state(pk); ks.State != store.StatusDeposited || ks.Signer != watchSigner || ks.AssignedTo != "" {
			t.Fatalf("loaded key: %+v", ks)
		}
	}
	if ks := w.state(other); ks.State != store.StatusExported || ks.AssignedTo != "enclave:elsewhere:17" {
		t.Fatalf("key assigned elsewhere: %+v", ks)
	}
	// Later polls leave the loaded keys alone.
	nextPass(t, passes, "after round 1", func(p parent.Pass) bool { return len(p.Assigned) == 0 && len(p.Loaded) == 0 })

	// Round 2, while it runs: a key the enclave already holds (put in its
	// key directory behind custody's back, so the ledger still says
	// exported) and a good one, in one batch.
	dup, good := w.pubkeys[4], w.pubkeys[3]
	if res, err := w.send(cfg, hoodiRoot, false, w.records(dup)); err != nil || !res.OK {
		t.Fatalf("preloading: %v %+v", err, res)
	}
	if _, err := w.cust.Assign(ctx, []string{dup, good}, watchSigner); err != nil {
		t.Fatal(err)
	}
	// The good key loads once and the duplicate is refused (in the same
	// poll, or in two when a poll ran between the assignments). From its
	// first refusal on, the duplicate sits out 2 polls, is refused again,
	// sits out 4, ...: counted in polls, and never sent while held.
	// (Watch waits for each report to be read before its next poll, so the
	// dials between two reads are the second poll's.)
	var seen []string
	goodLoaded, refusedOnce := false, false
	before := serves.Load()
	guard := time.After(2 * time.Minute)
	for len(seen) < 8 {
		var p parent.Pass
		select {
		case p = <-passes:
		case <-guard:
			t.Fatalf("round 2: no poll after %v", seen)
		}
		loadsGood := slices.Equal(p.Loaded, []string{good})
		if p.Err != nil || (len(p.Loaded) > 0 && (!loadsGood || goodLoaded)) {
			t.Fatalf("round 2 poll: %+v", p)
		}
		switch {
		case slices.Equal(p.Refused, []string{dup}) && len(p.Held) == 0:
			if refusedOnce {
				seen = append(seen, "refused")
			}
			refusedOnce = true
		case refusedOnce && slices.Equal(p.Held, []string{dup}) && len(p.Refused) == 0 && (loadsGood || serves.Load() == before):
			seen = append(seen, "held")
		case !refusedOnce && len(p.Refused)+len(p.Held) == 0:
			// Before the duplicate's assignment: nothing, or the good key.
		default:
			t.Fatalf("round 2 poll: %+v (%d serves, then %d; so far %v)", p, before, serves.Load(), seen)
		}
		goodLoaded = goodLoaded || loadsGood
		before = serves.Load()
	}
	if want := "held held refused held held held held refused"; !goodLoaded || strings.Join(seen, " ") != want {
		t.Fatalf("polls after the refusal: %s, want %s (good key loaded: %v)", strings.Join(seen, " "), want, goodLoaded)
	}
	if ks := w.state(good); ks.State != store.StatusDeposited || ks.Signer != watchSigner {
		t.Fatalf("round 2 good key: %+v", ks)
	}
	// The refused key's claim was released: still assigned, not live.
	if ks := w.state(dup); ks.State != store.StatusExported || ks.AssignedTo != watchSigner {
		t.Fatalf("refused key: %+v", ks)
	}
	if found := w.verifyKeyDir(); len(found) != 4 || !found[good] {
		t.Fatalf("after round 2: key dir %v", found)
	}
	if ic := interchangeKeys(t, w.ichange, hoodiRoot); !ic[good] || !ic[mine[0]] {
		t.Fatalf("interchange %v", ic)
	}
	// Unassigning it ends the hold (nothing assigned any more).
	if _, err := w.cust.Unassign(ctx, []string{dup}, watchSigner); err != nil {
		t.Fatal(err)
	}
	nextPass(t, passes, "after the unassignment", func(p parent.Pass) bool { return len(p.Assigned) == 0 && len(p.Held) == 0 })

	// SIGTERM between loads: Watch returns nil (exit status 0).
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || parent.WatchExitCode(err) != 0 {
			t.Fatalf("after SIGTERM: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("watch did not stop after SIGTERM")
	}
	if !strings.Contains(w.parLog.String(), `"msg":"loaded"`) || !strings.Contains(w.parLog.String(), `"msg":"key refused; retrying later"`) {
		t.Fatalf("progress logs missing:\n%s", w.parLog.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(w.parLog.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("log line is not JSON: %s", line)
		}
	}
	w.assertLogsClean()
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// TestWatchInterruptedMidLoad: SIGTERM while a load request is with the
// enclave (which never answers) stops the watch at once with
// ErrInterrupted (exit status 130), and the key stays claimed for the
// signer, since the enclave may have loaded it: no other signer can take
// it.
func TestWatchInterruptedMidLoad(t *testing.T) {
	w := newWorld(t)
	pk := w.pubkeys[0]
	if _, err := w.cust.Assign(context.Background(), []string{pk}, watchSigner); err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	dial := func(context.Context) (io.ReadWriteCloser, error) {
		pc, ec := socketPair(t)
		go func() {
			if _, err := enclave.ReadMessage(ec, 0); err == nil {
				close(got) // read, and never answer
			}
		}()
		return pc, nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- parent.Watch(ctx, w.cust, parent.WatchConfig{Signer: watchSigner, Interval: time.Hour, Dial: dial, Request: watchRequest,
			Logger: debugLogger(w.parLog)})
	}()
	select {
	case <-got:
	case <-time.After(2 * time.Minute):
		t.Fatal("no load request reached the enclave")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("watch did not stop after SIGTERM")
	}
	if !errors.Is(err, parent.ErrInterrupted) || !errors.Is(err, parent.ErrUncertain) || parent.WatchExitCode(err) != 130 {
		t.Fatalf("interrupted mid-load: %v", err)
	}
	if ks := w.state(pk); ks.State != store.StatusDeposited || ks.Signer != watchSigner {
		t.Fatalf("a key that may be live was released: %+v", ks)
	}
	if _, err := w.cust.ClaimForSigner(context.Background(), custody.LoadRequest{Signer: "enclave:other:17", Pubkeys: []string{pk}}); !errors.Is(err, custody.ErrClaimed) {
		t.Fatalf("another signer could claim it: %v", err)
	}
}

// TestLoadReleasesOnlyWhatCannotBeLive: a request that never left is
// released; one the enclave answered with a refusal is released; one sent
// without an answer stays claimed (ErrUncertain).
func TestLoadReleasesOnlyWhatCannotBeLive(t *testing.T) {
	w := newWorld(t)
	req := func(pk string) parent.Request {
		r, _ := watchRequest(context.Background())
		r.Pubkeys, r.Signer = []string{pk}, watchSigner
		return r
	}
	// Not sent: the enclave end is closed before the request is written.
	pc, ec := socketPair(t)
	ec.Close()
	_, err := parent.Load(context.Background(), failWriter{pc}, w.cust, req(w.pubkeys[0]), nil)
	if err == nil || errors.Is(err, parent.ErrUncertain) {
		t.Fatalf("unsent: %v", err)
	}
	if ks := w.state(w.pubkeys[0]); ks.State != store.StatusExported {
		t.Fatalf("unsent request left %+v", ks)
	}
	// Sent, then the enclave hangs up without an answer.
	pc2, ec2 := socketPair(t)
	go func() { _, _ = enclave.ReadMessage(ec2, 0); ec2.Close() }()
	if _, err := parent.Load(context.Background(), pc2, w.cust, req(w.pubkeys[1]), nil); !errors.Is(err, parent.ErrUncertain) {
		t.Fatalf("no answer: %v", err)
	}
	if ks := w.state(w.pubkeys[1]); ks.State != store.StatusDeposited || ks.Signer != watchSigner {
		t.Fatalf("no answer left %+v", ks)
	}
	// Refused by the enclave (the genesis root of another network).
	cfg := w.config()
	hoodi := [32]byte{1}
	cfg.GenesisRoot = func(string) ([32]byte, bool) { return hoodi, true }
	pc3, ec3 := socketPair(t)
	go func() { _ = enclave.Serve(context.Background(), ec3, cfg) }()
	if _, err := parent.Load(context.Background(), pc3, w.cust, req(w.pubkeys[2]), nil); !errors.Is(err, enclave.ErrRefused) {
		t.Fatalf("refused: %v", err)
	}
	if ks := w.state(w.pubkeys[2]); ks.State != store.StatusExported {
		t.Fatalf("refused load left %+v", ks)
	}
}

// failWriter fails every write, as a connection whose far end is gone.
type failWriter struct{ io.ReadWriter }

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// TestWatchKeymanager: the watch feeding a real Keymanager API (Lodestar's
// validator client under lodestar dev) through one long-running enclave:
// keys assigned in two rounds are all listed by the validator client, with
// no restart of anything.
func TestWatchKeymanager(t *testing.T) {
	km := testenv.KeymanagerAPI(t)
	tok, err := keymanager.ReadTokenFile(km.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	client, err := keymanager.New(km.URL, tok, keymanager.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	resp, err := http.Get(km.BeaconURL + "/eth/v1/beacon/genesis")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Data struct {
			Root string `json:"genesis_validators_root"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	w := newWorld(t)
	cfg := w.config()
	cfg.Signer = &enclave.KeymanagerSigner{Client: client}
	t.Cleanup(func() { _, _, _ = client.Delete(context.Background(), w.pubkeys) })
	var serves atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	passes := make(chan parent.Pass)
	done := make(chan error, 1)
	go func() {
		done <- parent.Watch(ctx, w.cust, parent.WatchConfig{
			Signer: watchSigner, Interval: 10 * time.Millisecond, Dial: w.enclaveDialer(cfg, &serves), Logger: debugLogger(w.parLog), Passes: passes,
			Request: func(context.Context) (parent.Request, error) {
				return parent.Request{Region: "eu-west-1", Credentials: testCreds, GenesisValidatorsRoot: g.Data.Root}, nil
			},
		})
	}()
	for n, round := range [][]string{w.pubkeys[:2], w.pubkeys[2:]} {
		if _, err := w.cust.Assign(ctx, round, watchSigner); err != nil {
			t.Fatal(err)
		}
		w.loadRound(passes, fmt.Sprintf("round %d", n+1), round)
	}
	keys, err := client.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, k := range keys {
		listed[k.Pubkey] = true
	}
	for _, pk := range w.pubkeys {
		if !listed[pk] {
			t.Fatalf("key %s not on the validator client", pk[:8])
		}
		if ks := w.state(pk); ks.State != store.StatusDeposited || ks.Signer != watchSigner {
			t.Fatalf("key %s: %+v", pk[:8], ks)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch: %v", err)
	}
	w.assertLogsClean()
}
