//go:build !ethkeygen_fuzzonly

package enclave_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/enclave"
	"github.com/ethkeygen/ethkeygen/enclave/parent"
	"github.com/ethkeygen/ethkeygen/envelope/envelopetest"
	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/web3signer"
	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

// send runs one exchange with a hand-made request (records straight from
// the store, as the parent sends them) and returns the enclave's result.
func (w *world) send(cfg enclave.Config, root string, takeover bool, recs []enclave.Record) (*enclave.Result, error) {
	w.t.Helper()
	pc, ec := socketPair(w.t)
	done := make(chan error, 1)
	go func() { done <- enclave.Serve(context.Background(), ec, cfg) }()
	req := &enclave.LoadRequest{Version: enclave.ProtocolVersion, Region: "eu-west-1", Credentials: testCreds,
		GenesisValidatorsRoot: root, Takeover: takeover, Records: recs}
	if err := enclave.WriteMessage(pc, &enclave.Message{Type: enclave.TypeLoad, Load: req}); err != nil {
		w.t.Fatal(err)
	}
	msg, err := enclave.ReadMessage(pc, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	return msg.Result, <-done
}

func (w *world) records(pubkeys ...string) []enclave.Record {
	w.t.Helper()
	out := make([]enclave.Record, len(pubkeys))
	for i, pk := range pubkeys {
		r, err := w.st.Get(context.Background(), pk)
		if err != nil {
			w.t.Fatal(err)
		}
		out[i] = enclave.RecordOf(r)
	}
	return out
}

func interchangeKeys(t *testing.T, path, root string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := web3signer.ParseRoot(root)
	ic, err := web3signer.ParseInterchange(b, r)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, d := range ic.Data {
		got[strings.TrimPrefix(d.Pubkey, "0x")] = true
	}
	return got
}

// TestHotLoadKeyDir: one enclave (one Config, never restarted) serves two
// load requests on two connections; the second adds its keys to the
// running Web3Signer's directory, the cumulative interchange covers all
// keys, and Web3Signer is asked to reload after each. A key already
// loaded fails a later load whole.
func TestHotLoadKeyDir(t *testing.T) {
	w := newWorld(t)
	var reloads atomic.Int32
	web3 := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/reload" {
			reloads.Add(1)
			rw.WriteHeader(http.StatusOK)
			return
		}
		rw.WriteHeader(http.StatusNotFound)
	}))
	defer web3.Close()
	cfg := w.config()
	cfg.Signer = &enclave.KeyDirSigner{Dir: w.keyDir, InterchangeFile: w.ichange, ReloadURL: web3.URL + "/reload"}

	for n, batch := range [][]string{w.pubkeys[:2], w.pubkeys[2:]} {
		res, err, serveErr := w.loadWith(cfg, batch, false)
		if err != nil || serveErr != nil || !res.OK {
			t.Fatalf("load %d: parent %v, enclave %v, %+v\n%s", n+1, err, serveErr, res, w.encLog.String())
		}
		if got := int(reloads.Load()); got != n+1 {
			t.Fatalf("after load %d: %d reloads", n+1, got)
		}
	}
	found := w.verifyKeyDir()
	ic := interchangeKeys(t, w.ichange, hoodiRoot)
	for _, pk := range w.pubkeys {
		if !found[pk] || !ic[pk] {
			t.Fatalf("key %s: in dir %v, in interchange %v", pk[:8], found[pk], ic[pk])
		}
	}
	w.assertLogsClean()

	// Loading a key the signer already has (a takeover onto the same
	// signer) fails whole: no file replaced, the interchange unchanged.
	before, _ := os.ReadFile(w.ichange)
	entries, _ := os.ReadDir(w.keyDir)
	res, err := w.send(cfg, hoodiRoot, true, w.records(w.pubkeys[0]))
	if !errors.Is(err, enclave.ErrRefused) || res.OK {
		t.Fatalf("reload of a loaded key: %v %+v", err, res)
	}
	after, _ := os.ReadFile(w.ichange)
	entries2, _ := os.ReadDir(w.keyDir)
	if string(before) != string(after) || len(entries) != len(entries2) {
		t.Fatal("a refused load changed the signer's files")
	}
}

// loadWith is load with a given Config.
func (w *world) loadWith(cfg enclave.Config, pubkeys []string, takeover bool) (*enclave.Result, error, error) {
	pc, ec := socketPair(w.t)
	var serveErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveErr = enclave.Serve(context.Background(), ec, cfg)
	}()
	res, err := loadParent(w, pc, pubkeys, takeover)
	<-done
	return res, err, serveErr
}

// TestHotLoadKeymanager: the same against a real Keymanager API
// (Lodestar's validator client under lodestar dev): two loads into the
// running validator client, both sets then listed; the interchange the
// enclave sends names the request's root, which Lodestar checks against
// its chain.
func TestHotLoadKeymanager(t *testing.T) {
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
	json.NewDecoder(resp.Body).Decode(&g)
	resp.Body.Close()

	w := newWorld(t)
	cfg := w.config()
	cfg.Signer = &enclave.KeymanagerSigner{Client: client}
	for n, batch := range [][]string{w.pubkeys[:3], w.pubkeys[3:]} {
		res, err := w.send(cfg, g.Data.Root, false, w.records(batch...))
		if err != nil || !res.OK {
			t.Fatalf("load %d: %v %+v", n+1, err, res)
		}
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
	}
	// Sending the first batch again: "duplicate" is not a load.
	res, err := w.send(cfg, g.Data.Root, false, w.records(w.pubkeys[0]))
	if !errors.Is(err, enclave.ErrRefused) || res.Keys[0].Status != enclave.KeyFailed || !strings.Contains(res.Keys[0].Reason, "duplicate") {
		t.Fatalf("repeat: %v %+v", err, res)
	}
	// Another network's root: Lodestar refuses the import, nothing loads.
	w2 := newWorld(t)
	cfg2 := w2.config()
	cfg2.Signer = &enclave.KeymanagerSigner{Client: client}
	res, err = w2.send(cfg2, hoodiRoot, false, w2.records(w2.pubkeys[0]))
	if !errors.Is(err, enclave.ErrRefused) {
		t.Fatalf("wrong root: %v %+v", err, res)
	}
	if ks, _ := client.List(t.Context()); func() bool {
		for _, k := range ks {
			if k.Pubkey == w2.pubkeys[0] {
				return true
			}
		}
		return false
	}() {
		t.Fatal("a key was loaded with another network's interchange")
	}
	if _, _, err := client.Delete(t.Context(), w.pubkeys); err != nil {
		t.Fatal(err)
	}
	w.assertLogsClean()
}

// TestGenesisRootTable: with the network table wired in, a request whose
// root is not its records' network's is refused before any decrypt.
func TestGenesisRootTable(t *testing.T) {
	w := newWorld(t)
	cfg := w.config()
	hoodi, _ := web3signer.ParseRoot(hoodiRoot)
	cfg.GenesisRoot = func(network string) ([32]byte, bool) { return hoodi, network == "hoodi" }
	const mainnet = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"
	res, err := w.send(cfg, mainnet, false, w.records(w.pubkeys...))
	if !errors.Is(err, enclave.ErrRefused) || res.Keys[0].Status != enclave.KeyRefused || !strings.Contains(res.Keys[0].Reason, "genesis validators root") {
		t.Fatalf("got %v %+v", err, res)
	}
	if w.kms.Calls(envelopetest.OpDecrypt) != 0 {
		t.Fatal("KMS called for a refused request")
	}
	w.assertNothingLoaded()
	if res, err := w.send(cfg, hoodiRoot, false, w.records(w.pubkeys[:1]...)); err != nil || !res.OK {
		t.Fatalf("right root: %v %+v", err, res)
	}
}

// TestTakeoverWithHistory: a takeover key that brings its previous
// signer's interchange is loaded with that history merged; one whose
// history is another network's or another key's is refused, nothing
// loaded.
func TestTakeoverWithHistory(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	pk := w.pubkeys[0]
	if err := w.st.SetStatus(ctx, pk, store.StatusGenerated, store.StatusDeposited); err != nil {
		t.Fatal(err)
	}
	hist := func(root, key string) []byte {
		return []byte(`{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + root + `"},"data":[{"pubkey":"0x` + key +
			`","signed_blocks":[{"slot":"81"}],"signed_attestations":[{"source_epoch":"1","target_epoch":"2"}]}]}`)
	}
	cases := map[string][]byte{
		"another network":    hist("0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95", pk),
		"another key":        hist(hoodiRoot, w.pubkeys[1]),
		"not an interchange": []byte(`{"metadata":{}}`),
	}
	for name, h := range cases {
		recs := w.records(pk, w.pubkeys[1])
		recs[0].Interchange = h
		res, err := w.send(w.config(), hoodiRoot, true, recs)
		if !errors.Is(err, enclave.ErrRefused) || res.Keys[0].Status != enclave.KeyRefused {
			t.Fatalf("%s: %v %+v", name, err, res)
		}
		w.assertNothingLoaded()
	}
	recs := w.records(pk, w.pubkeys[1])
	recs[0].Interchange = hist(hoodiRoot, pk)
	res, err := w.send(w.config(), hoodiRoot, true, recs)
	if err != nil || !res.OK || res.Keys[0].NeedsSlashingHistory {
		t.Fatalf("with history: %v %+v", err, res)
	}
	b, _ := os.ReadFile(w.ichange)
	r, _ := web3signer.ParseRoot(hoodiRoot)
	ic, err := web3signer.ParseInterchange(b, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ic.Data {
		if d.Pubkey == "0x"+pk && (len(d.SignedBlocks) != 1 || d.SignedBlocks[0].Slot != "81" || len(d.SignedAttestations) != 1) {
			t.Fatalf("history not carried: %+v", d)
		}
	}
	// A key that never signed may not bring a history.
	recs = w.records(w.pubkeys[2])
	recs[0].Interchange = hist(hoodiRoot, w.pubkeys[2])
	if res, err := w.send(w.config(), hoodiRoot, false, recs); !errors.Is(err, enclave.ErrRefused) || res.Keys[0].Status != enclave.KeyFailed {
		t.Fatalf("fresh key with history: %v %+v", err, res)
	}
}

func loadParent(w *world, pc net.Conn, pubkeys []string, takeover bool) (*enclave.Result, error) {
	return parent.Load(context.Background(), pc, w.cust, parent.Request{
		Region: "eu-west-1", Credentials: testCreds, GenesisValidatorsRoot: hoodiRoot, Takeover: takeover, Pubkeys: pubkeys,
		Signer: w.signer,
	}, debugLogger(w.parLog))
}
