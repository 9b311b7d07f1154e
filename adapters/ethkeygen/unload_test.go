package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/web3signer"
	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

// fakeKeymanager imports whatever is posted and answers DELETE with
// onDelete's statuses and interchange.
type fakeKeymanager struct {
	mu       sync.Mutex
	token    string
	onDelete func(pubkeys []string) (statuses []string, interchange []byte)
}

func (f *fakeKeymanager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+f.token || r.URL.Path != keymanager.KeystoresPath {
		http.Error(w, `{"code":401,"message":"no"}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	body, _ := io.ReadAll(r.Body)
	answer := func(statuses []string, extra string) {
		items := make([]string, len(statuses))
		for i, s := range statuses {
			items[i] = fmt.Sprintf(`{"status":%q}`, s)
		}
		fmt.Fprintf(w, `{"data":[%s]%s}`, strings.Join(items, ","), extra)
	}
	switch r.Method {
	case http.MethodGet:
		io.WriteString(w, `{"data":[]}`)
	case http.MethodPost:
		var req struct {
			Keystores []string `json:"keystores"`
		}
		_ = json.Unmarshal(body, &req)
		st := make([]string, len(req.Keystores))
		for i := range st {
			st[i] = "imported"
		}
		answer(st, "")
	case http.MethodDelete:
		var req struct {
			Pubkeys []string `json:"pubkeys"`
		}
		_ = json.Unmarshal(body, &req)
		f.mu.Lock()
		st, ic := f.onDelete(req.Pubkeys)
		f.mu.Unlock()
		q, _ := json.Marshal(string(ic))
		answer(st, `,"slashing_protection":`+string(q))
	}
}

// TestUnloadLedgerFailureKeepsHistory: the signer's DELETE returned the
// keys' slashing-protection history, and the ledger write that would record
// it fails (a trigger injected into the ledger file): unload fails, the
// keys stay live on the signer in the ledger, and the history is in the
// file the error names, byte for byte. A re-run (the signer no longer holds
// the keys) with --slashing-protection-file records it, and the next load
// carries it (the interchange beside the key directory holds the signed
// block and attestation).
func TestUnloadLedgerFailureKeepsHistory(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	t.Setenv("ETHKEYGEN_HOME", home)
	db := filepath.Join(dir, "ethkeygen.db")
	gen := generateJSON(t, "--count", "2", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir, "--secret-format", "raw", "--request-id", "unload-fail")
	a, b := gen.Validators[0].Pubkey, gen.Validators[1].Pubkey
	root := web3signer.RootString(depositdata.Hoodi.GenesisValidatorsRoot)
	history := fmt.Sprintf(`{"metadata":{"interchange_format_version":"5","genesis_validators_root":"%s"},"data":[`+
		`{"pubkey":"0x%s","signed_blocks":[{"slot":"81952","signing_root":"0x%s"}],"signed_attestations":[{"source_epoch":"2290","target_epoch":"3007","signing_root":"0x%s"}]},`+
		`{"pubkey":"0x%s","signed_blocks":[{"slot":"81953"}],"signed_attestations":[]}]}`,
		root, a, strings.Repeat("ab", 32), strings.Repeat("cd", 32), b)

	km := &fakeKeymanager{token: "unload-test-token-0123456789abcdef"}
	srv := httptest.NewServer(km)
	defer srv.Close()
	tokenFile := writeFile(t, dir, "token", km.token+"\n")
	kmFlags := []string{"--keymanager-url", srv.URL, "--keymanager-token-file", tokenFile}
	signer := "keymanager:" + srv.URL
	if r := runCLI(t, append([]string{"decrypt", "--db", db, "--all"}, kmFlags...)...); r.code != 0 {
		t.Fatalf("decrypt: %+v", r)
	}
	// The ledger refuses every change once the signer has answered.
	ledger := db + ".ledger"
	km.onDelete = func(pks []string) ([]string, []byte) {
		l, err := sql.Open("sqlite", ledger)
		if err != nil {
			t.Error(err)
		} else {
			if _, err := l.Exec(`CREATE TRIGGER inject_failure BEFORE UPDATE ON keys BEGIN SELECT RAISE(ABORT, 'injected ledger failure'); END`); err != nil {
				t.Error(err)
			}
			l.Close()
		}
		return []string{"deleted", "deleted"}, []byte(history)
	}
	r := runCLI(t, append([]string{"unload", "--db", db, "--pubkey", a, "--pubkey", b}, kmFlags...)...)
	if r.code != 1 || strings.Count(r.stdout, "\tnot-recorded\t") != 2 {
		t.Fatalf("unload with the ledger failing: %+v", r)
	}
	m := regexp.MustCompile(`history the signer returned is saved in (\S+): re-run unload with --slashing-protection-file (\S+) to record it`).FindStringSubmatch(r.stderr)
	if m == nil || m[1] != m[2] || !strings.HasPrefix(m[1], filepath.Join(home, "unloaded")+string(filepath.Separator)) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("the error does not name the saved history in one line: %q", r.stderr)
	}
	saved, err := os.ReadFile(m[1])
	if err != nil || !bytes.Equal(saved, []byte(history)) {
		t.Fatalf("saved history %q, %v", saved, err)
	}
	for _, pk := range []string{a, b} {
		if k := listKeys(t, db)[pk]; k.Status != "deposited" || k.Signer != signer || k.SlashingHistory {
			t.Fatalf("0x%s after the failed ledger write: %+v", pk[:16], k)
		}
	}

	// The ledger works again; the signer no longer holds the keys (and has
	// no history for them). Without the file the re-run would release
	// them with none: with it, the history is recorded.
	l, err := sql.Open("sqlite", ledger)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(`DROP TRIGGER inject_failure`); err != nil {
		t.Fatal(err)
	}
	l.Close()
	empty := fmt.Sprintf(`{"metadata":{"interchange_format_version":"5","genesis_validators_root":"%s"},"data":[]}`, root)
	km.onDelete = func([]string) ([]string, []byte) { return []string{"not_found", "not_found"}, []byte(empty) }
	r = runCLI(t, append([]string{"unload", "--db", db, "--pubkey", a, "--pubkey", b, "--slashing-protection-file", m[1]}, kmFlags...)...)
	if r.code != 0 || strings.Count(r.stdout, "\tnot_found\t") != 2 || !strings.Contains(r.stdout, "--slashing-protection-file") {
		t.Fatalf("re-run with the saved history: %+v", r)
	}
	for _, pk := range []string{a, b} {
		if k := listKeys(t, db)[pk]; k.Status != "exported" || k.Signer != "" || !k.SlashingHistory {
			t.Fatalf("0x%s after the re-run: %+v", pk[:16], k)
		}
	}
	// The successful run's own file is removed (the ledger holds it); the
	// failed run's stays.
	if files, _ := filepath.Glob(filepath.Join(home, "unloaded", "*.json")); len(files) != 1 || files[0] != m[1] {
		t.Fatalf("unloaded/: %v", files)
	}
	// The next load carries the history.
	w3s := filepath.Join(dir, "w3s")
	if r := runCLI(t, "decrypt", "--db", db, "--pubkey", a, "--web3signer-dir", w3s); r.code != 0 {
		t.Fatalf("decrypt after unload: %+v", r)
	}
	ics, _ := filepath.Glob(filepath.Join(w3s, "slashing-protection-*.json"))
	if len(ics) != 1 {
		t.Fatalf("interchange beside the keys: %v", ics)
	}
	ic, _ := os.ReadFile(ics[0])
	doc, err := web3signer.ParseInterchange(ic, depositdata.Hoodi.GenesisValidatorsRoot)
	if err != nil || len(doc.Data) != 1 || len(doc.Data[0].SignedBlocks) != 1 || doc.Data[0].SignedBlocks[0].Slot != "81952" ||
		len(doc.Data[0].SignedAttestations) != 1 || doc.Data[0].SignedAttestations[0].TargetEpoch != "3007" {
		t.Fatalf("history carried to the next load: %s (%v)", ic, err)
	}
}
