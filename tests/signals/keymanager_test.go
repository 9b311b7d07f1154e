package signals

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

// stallingKeymanager is a Keymanager API stand-in: GET lists no keys; the
// first POST is answered "imported" for every key; the second is read whole
// and then never answered (the signal lands while the loader waits); it
// records the pubkeys of every POST.
type stallingKeymanager struct {
	mu      sync.Mutex
	batches [][]string
	stalled chan struct{} // closed when the second POST is read
}

func (s *stallingKeymanager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+kmToken || r.URL.Path != keymanager.KeystoresPath {
		http.Error(w, `{"code":401,"message":"no"}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodGet {
		io.WriteString(w, `{"data":[]}`)
		return
	}
	b, err := io.ReadAll(r.Body)
	var req struct {
		Keystores []string `json:"keystores"`
	}
	if err != nil || json.Unmarshal(b, &req) != nil {
		http.Error(w, `{"code":400,"message":"bad body"}`, http.StatusBadRequest)
		return
	}
	var pks []string
	for _, ks := range req.Keystores {
		var k struct {
			Pubkey string `json:"pubkey"`
		}
		_ = json.Unmarshal([]byte(ks), &k)
		pks = append(pks, k.Pubkey)
	}
	s.mu.Lock()
	s.batches = append(s.batches, pks)
	n := len(s.batches)
	s.mu.Unlock()
	if n == 1 {
		statuses := make([]string, len(pks))
		for i := range statuses {
			statuses[i] = `{"status":"imported"}`
		}
		fmt.Fprintf(w, `{"data":[%s]}`, strings.Join(statuses, ","))
		return
	}
	close(s.stalled)
	<-r.Context().Done() // no answer: the loader is interrupted waiting
}

const kmToken = "signals-test-token-0123456789abcdef"

// TestDecryptKeymanagerSIGTERM: SIGTERM while `ethkeygen decrypt
// --keymanager-url` waits on the signer ends it with exit 130 within a
// second, and the ledger says what happened to each key: the batch the
// signer answered "imported" is live on that signer; the batch it took but
// never answered has an unknown outcome and stays claimed (stderr says so
// and how to settle it); the batch never sent wrote nothing and is
// released (exported again, on no signer).
func TestDecryptKeymanagerSIGTERM(t *testing.T) {
	dir := t.TempDir()
	env := append(os.Environ(), "ETHKEYGEN_HOME="+filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	const batch = 10
	count := 2*batch + 3 // three batches
	run := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v: %s", args[0], err, errb.String())
		}
		return out.String(), errb.String()
	}
	run("generate", "--count", fmt.Sprint(count), "--keys-per-mnemonic", "5", "--chain", "hoodi", "--bls-withdrawal",
		"--db", db, "--out", filepath.Join(dir, "deposits"), "--secret-format", "raw", "--request-id", "km-sigterm")

	srv := &stallingKeymanager{stalled: make(chan struct{})}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(kmToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "decrypt", "--all", "--db", db, "--keymanager-url", hs.URL, "--keymanager-token-file", tokenFile,
		"--keymanager-batch", fmt.Sprint(batch))
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-srv.stalled:
	case err := <-done:
		t.Fatalf("decrypt ended before the second batch: %v: %s", err, stderr.String())
	case <-time.After(5 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the second batch never came")
	}
	time.Sleep(100 * time.Millisecond) // waiting on the answer
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("still running 30s after SIGTERM")
	}
	took := time.Since(sent)
	t.Logf("exited %v after SIGTERM: %v\nstderr: %s", took, err, stderr.String())
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit %v after SIGTERM, want 130", err)
	}
	if took > time.Second {
		t.Fatalf("exited %v after SIGTERM, want within 1s", took)
	}
	srv.mu.Lock()
	batches := srv.batches
	srv.mu.Unlock()
	if len(batches) != 2 || len(batches[0]) != batch || len(batches[1]) != batch {
		t.Fatalf("the signer saw %d batches", len(batches))
	}
	if !strings.Contains(stderr.String(), fmt.Sprintf("%d of %d keys loaded; %d have an unknown outcome", batch, count, batch)) ||
		!strings.Contains(stderr.String(), "stay claimed for keymanager:"+hs.URL) || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("stderr does not say what stays claimed: %s", stderr.String())
	}
	if strings.Contains(stderr.String(), kmToken) || strings.Contains(stdout.String(), kmToken) {
		t.Fatal("the token was printed")
	}
	outcome := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		f := strings.Split(l, "\t")
		outcome[strings.TrimPrefix(f[0], "0x")] = f[1]
	}

	// The ledger, as list reports it.
	out, _ := run("list", "--db", db, "--json")
	type entry struct {
		Pubkey, Status, Signer string
	}
	ledger := map[string]entry{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var e entry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("list: %v: %s", err, l)
		}
		ledger[e.Pubkey] = e
	}
	if len(ledger) != count {
		t.Fatalf("list shows %d keys, want %d", len(ledger), count)
	}
	signer := "keymanager:" + hs.URL
	want := map[string][2]string{} // pubkey: status, signer
	for _, pk := range batches[0] {
		want[pk] = [2]string{"deposited", signer}
		if outcome[pk] != "imported" {
			t.Fatalf("0x%s: printed %q, want imported", pk, outcome[pk])
		}
	}
	for _, pk := range batches[1] {
		want[pk] = [2]string{"deposited", signer} // claimed: the outcome is unknown
		if outcome[pk] != "unknown" {
			t.Fatalf("0x%s: printed %q, want unknown", pk, outcome[pk])
		}
	}
	notSent := 0
	for pk, e := range ledger {
		w, ok := want[pk]
		if !ok {
			notSent++
			w = [2]string{"exported", ""}
			if outcome[pk] != "not-sent" {
				t.Fatalf("0x%s: printed %q, want not-sent", pk, outcome[pk])
			}
		}
		if e.Status != w[0] || e.Signer != w[1] {
			t.Fatalf("0x%s: ledger has %s on %q, want %s on %q", pk, e.Status, e.Signer, w[0], w[1])
		}
	}
	if notSent != count-2*batch {
		t.Fatalf("%d keys not sent, want %d", notSent, count-2*batch)
	}
}
