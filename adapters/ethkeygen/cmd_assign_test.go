package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// assignBadInputCases are assign's cases of TestBadInputPerCommand: each
// exits non-zero with one line naming the problem and assigns nothing.
func assignBadInputCases(w *badInputWorld) []struct {
	name    string
	args    []string
	mention string
} {
	unknownPK := strings.Repeat("ab", 48)
	return []struct {
		name    string
		args    []string
		mention string
	}{
		{"assign/no selection", []string{"assign", "--db", w.db, "--signer", "s"}, "--pubkey, --request-id or --export-id"},
		{"assign/two selections", []string{"assign", "--db", w.db, "--signer", "s", "--pubkey", w.pubkey, "--request-id", "bad-input"}, "one of"},
		{"assign/no signer", []string{"assign", "--db", w.db, "--pubkey", w.pubkey}, "--signer NAME is required"},
		{"assign/empty signer", []string{"assign", "--db", w.db, "--pubkey", w.pubkey, "--signer", ""}, "--signer NAME is required"},
		{"assign/signer with a newline", []string{"assign", "--db", w.db, "--pubkey", w.pubkey, "--signer", "a\nb"}, "control characters"},
		{"assign/signer with a trailing space", []string{"assign", "--db", w.db, "--pubkey", w.pubkey, "--signer", "a "}, "trailing spaces"},
		{"assign/long signer", []string{"assign", "--db", w.db, "--pubkey", w.pubkey, "--signer", strings.Repeat("s", 4097)}, "longer than 4096"},
		{"assign/malformed pubkey", []string{"assign", "--db", w.db, "--pubkey", "0x12", "--signer", "s"}, "48 bytes"},
		{"assign/unknown pubkey", []string{"assign", "--db", w.db, "--pubkey", unknownPK, "--signer", "s"}, "not found"},
		{"assign/one unknown pubkey of two", []string{"assign", "--db", w.db, "--pubkey", w.pubkey, "--pubkey", unknownPK, "--signer", "s"}, "not found"},
		{"assign/unknown export", []string{"assign", "--db", w.db, "--export-id", "exp-nope", "--signer", "s"}, "not found"},
		{"assign/bad export id", []string{"assign", "--db", w.db, "--export-id", "a#b", "--signer", "s"}, "export id"},
		{"assign/unknown request", []string{"assign", "--db", w.db, "--request-id", "nope", "--signer", "s"}, "no validator selected"},
		{"assign/positional argument", []string{"assign", "--db", w.db, "--pubkey", w.pubkey, "--signer", "s", "extra"}, "unexpected argument"},
		{"assign/unknown flag", []string{"assign", "--db", w.db, "--pubkey", w.pubkey, "--signer", "s", "--takeover"}, "unknown flag --takeover"},
		{"export-deposits/assign-to with a newline", []string{"export-deposits", "--db", w.db, "--export-id", "req-bad-input", "--bls-withdrawal", "--assign-to", "a\nb", "--out", filepath.Join(w.dir, "at")}, "--assign-to"},
		{"assign/store missing", []string{"assign", "--db", filepath.Join(w.dir, "no-such-dir", "x.db"), "--pubkey", w.pubkey, "--signer", "s"}, "store"},
	}
}

type assignListEntry struct {
	Pubkey     string `json:"pubkey"`
	Status     string `json:"status"`
	Signer     string `json:"signer"`
	AssignedTo string `json:"assigned_to"`
}

func assignList(t *testing.T, db string) map[string]assignListEntry {
	t.Helper()
	r := runCLI(t, "list", "--db", db, "--json")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	out := map[string]assignListEntry{}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	for dec.More() {
		var e assignListEntry
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		out[e.Pubkey] = e
	}
	return out
}

// TestAssignCLI: assign by request and export id, list shows the assignee
// (text and JSON), another signer's decrypt is refused naming it (exit 1,
// no key file), unassign frees the key, a never-exported key and a live
// key elsewhere are refused with exit 1.
func TestAssignCLI(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	gen := generateJSON(t, "--count", "2", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir, "--secret-format", "raw", "--request-id", "as")
	pks := []string{gen.Validators[0].Pubkey, gen.Validators[1].Pubkey}

	r := runCLI(t, "assign", "--db", db, "--request-id", "as", "--signer", "enclave:a", "--json")
	if r.code != 0 {
		t.Fatalf("assign: %d %s", r.code, r.stderr)
	}
	var res struct {
		Assigned []struct {
			Pubkey, Signer string
			Changed        bool
		} `json:"assigned"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res.Assigned) != 2 || !res.Assigned[0].Changed || res.Assigned[1].Signer != "enclave:a" {
		t.Fatalf("assign --json: %s %v", r.stdout, err)
	}
	for _, pk := range pks {
		if e := assignList(t, db)[pk]; e.AssignedTo != "enclave:a" || e.Status != "exported" {
			t.Fatalf("list: %+v", e)
		}
	}
	if r := runCLI(t, "list", "--db", db); !strings.Contains(r.stdout, "0x"+pks[0]) || strings.Count(r.stdout, "\tassigned to enclave:a\n") != 2 {
		t.Fatalf("list text: %q", r.stdout)
	}
	// Again, by export id: nothing changes.
	r = runCLI(t, "assign", "--db", db, "--export-id", "req-as", "--signer", "enclave:a")
	if r.code != 0 || strings.Count(r.stdout, "\tunchanged\tenclave:a") != 2 || !strings.Contains(r.stderr, "0 of 2 validators assigned") {
		t.Fatalf("repeat: %d %q %q", r.code, r.stdout, r.stderr)
	}

	w3s := filepath.Join(dir, "w3s")
	r = runCLI(t, "decrypt", "--pubkey", pks[0], "--db", db, "--web3signer-dir", w3s)
	if r.code != 1 || !strings.Contains(r.stderr, "assigned to enclave:a") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("decrypt by another signer: %d %q", r.code, r.stderr)
	}
	if e := assignList(t, db)[pks[0]]; e.Status != "exported" || e.Signer != "" {
		t.Fatalf("refused decrypt changed the state: %+v", e)
	}
	// Unassigning from another signer than the assignee is refused.
	if r := runCLI(t, "assign", "--db", db, "--pubkey", pks[0], "--unassign", "--signer", "enclave:b"); r.code != 1 || !strings.Contains(r.stderr, "assigned to enclave:a") {
		t.Fatalf("unassign from b: %d %q", r.code, r.stderr)
	}
	if r := runCLI(t, "assign", "--db", db, "--pubkey", pks[0], "--unassign"); r.code != 0 || !strings.Contains(r.stdout, "\tunassigned\t") {
		t.Fatalf("unassign: %d %q", r.code, r.stderr)
	}
	if r := runCLI(t, "decrypt", "--pubkey", pks[0], "--db", db, "--web3signer-dir", w3s); r.code != 0 {
		t.Fatalf("decrypt after unassign: %q", r.stderr)
	}
	// Live on the key directory's signer: assigning it elsewhere is refused.
	r = runCLI(t, "assign", "--db", db, "--pubkey", pks[0], "--signer", "enclave:a")
	if r.code != 1 || !strings.Contains(r.stderr, "is live on web3signer-dir:") || !strings.Contains(r.stderr, "takeover") {
		t.Fatalf("assign a live key: %d %q", r.code, r.stderr)
	}
	if e := assignList(t, db)[pks[1]]; e.AssignedTo != "enclave:a" {
		t.Fatalf("other key: %+v", e)
	}

	// export-deposits --assign-to: the export's file again, and its
	// validators assigned.
	g2 := generateJSON(t, "--count", "2", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir, "--secret-format", "raw", "--request-id", "as2")
	r = runCLI(t, "export-deposits", "--db", db, "--export-id", "req-as2", "--bls-withdrawal", "--out", dir, "--assign-to", "enclave:b", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"assigned":2`) || !strings.Contains(r.stdout, `"assigned_to":"enclave:b"`) {
		t.Fatalf("export-deposits --assign-to: %d %q %q", r.code, r.stdout, r.stderr)
	}
	for _, v := range g2.Validators {
		if e := assignList(t, db)[v.Pubkey]; e.AssignedTo != "enclave:b" {
			t.Fatalf("after export-deposits --assign-to: %+v", e)
		}
	}

	// A retired key is refused.
	if r := runCLI(t, "retire", "--db", db, "--pubkey", pks[1], "--reason", "test"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if e := assignList(t, db)[pks[1]]; e.AssignedTo != "" {
		t.Fatalf("retired key keeps its assignment: %+v", e)
	}
	r = runCLI(t, "assign", "--db", db, "--pubkey", pks[1], "--signer", "enclave:a")
	if r.code != 1 || !strings.Contains(r.stderr, "retired") {
		t.Fatalf("assign a retired key: %d %q", r.code, r.stderr)
	}
}
