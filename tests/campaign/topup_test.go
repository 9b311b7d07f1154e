package campaign

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/tests/clitest"
)

// topUpRun is one top-up run's --json answer.
type topUpRun struct {
	ExportID string `json:"export_id"`
	File     string `json:"deposit_data"`
	Resumed  bool   `json:"resumed"`
	Written  bool   `json:"written"`
}

// TestTopUpTwice hands out top-ups the way an operator's bad day would:
// the same top-up one run after the other and two at once, with and
// without --request-id, on both backends. It then counts every pubkey in
// every top-up file written: files of one top-up id hold the same bytes,
// each key once, and the ledger holds exactly the top-ups asked for (one
// per id); the validators' own deposits stay one file each.
func TestTopUpTwice(t *testing.T) {
	t.Parallel()
	for _, mk := range []func(*testing.T) backend{embedded, func(t *testing.T) backend { return dynamo(t, "") }} {
		b := mk(t)
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ba := b.args(t)
			root := t.TempDir()
			req := "tu-" + clitest.RandomHex(t, 3)
			r := mustRun(t, b, genArgs(req, filepath.Join(root, "g"), 4, ba)...)
			var g struct {
				Validators []struct {
					Pubkey string `json:"pubkey"`
				} `json:"validators"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &g); err != nil || len(g.Validators) != 4 {
				t.Fatalf("generate --json: %v: %s", err, r.stdout)
			}
			var pks []string
			for _, v := range g.Validators {
				pks = append(pks, v.Pubkey)
			}
			opener := []string{}
			if b.name == "dynamodb" {
				opener = []string{"--kms"}
			}
			files := filepath.Join(root, "topups")
			topUp := func(out, amount string, extra ...string) result {
				args := []string{"top-up", "--json", "--out", filepath.Join(files, out)}
				if amount != "" {
					args = append(args, "--amount-gwei", amount)
					for _, pk := range pks[:3] {
						args = append(args, "--pubkey", pk)
					}
				}
				args = append(append(append(args, extra...), opener...), storeArgs(ba)...)
				return run(t, b, "", args...)
			}
			runs := map[string]topUpRun{} // file -> run
			record := func(out string, r result) {
				t.Helper()
				if r.code != 0 {
					t.Fatalf("top-up --out %s: exit %d: %s", out, r.code, r.stderr)
				}
				var tr topUpRun
				if err := json.Unmarshal([]byte(r.stdout), &tr); err != nil {
					t.Fatalf("top-up --json: %v: %s", err, r.stdout)
				}
				runs[out] = tr
			}
			// One after the other: the same top-up, the second run finds it.
			record("a1.json", topUp("a1.json", "1000000000"))
			record("a2.json", topUp("a2.json", "1000000000"))
			if rr := topUp("a1.json", "1000000000"); rr.code != 0 || !strings.Contains(rr.stdout, `"written":false`) {
				t.Fatalf("the same top-up into its own file: exit %d: %s %s", rr.code, rr.stdout, rr.stderr)
			}
			// Two at once, of another amount; and two at once of one request id.
			var r1, r2, r3, r4 result
			race(func() { r1 = topUp("b1.json", "2000000000") }, func() { r2 = topUp("b2.json", "2000000000") },
				func() { r3 = topUp("c1.json", "1000000000", "--request-id", "again") }, func() { r4 = topUp("c2.json", "1000000000", "--request-id", "again") })
			record("b1.json", r1)
			record("b2.json", r2)
			record("c1.json", r3)
			record("c2.json", r4)
			// The named top-up by its id alone, and a refused change of it.
			record("c3.json", topUp("c3.json", "", "--request-id", "again"))
			if rr := topUp("x.json", "3000000000", "--request-id", "again"); rr.code != 2 || !strings.Contains(rr.stderr, "new request id") {
				t.Fatalf("another amount under a used request id: exit %d: %s", rr.code, rr.stderr)
			}

			// Count: per top-up id one content, each key once in it.
			content := map[string]string{}        // export id -> sha256 of its files
			amounts := map[string]uint64{}        // export id -> amount
			fresh := map[string]int{}             // export id -> runs that made it
			perKey := map[string]map[string]int{} // export id -> pubkey -> entries
			for out, tr := range runs {
				b, err := os.ReadFile(filepath.Join(files, out))
				if err != nil {
					t.Fatal(err)
				}
				h := fmt.Sprintf("%x", sha256.Sum256(b))
				if prev, ok := content[tr.ExportID]; ok && prev != h {
					t.Errorf("top-up %s: %s holds other bytes than its other files", tr.ExportID, out)
				}
				content[tr.ExportID] = h
				if !tr.Resumed {
					fresh[tr.ExportID]++
				}
				deps, errs := depositdata.VerifyFile(b, &depositdata.Hoodi)
				if len(errs) > 0 {
					t.Fatalf("%s does not verify: %v", out, errs)
				}
				keys := map[string]int{}
				for _, d := range deps {
					keys[d.Pubkey]++
					amounts[tr.ExportID] = d.Amount
				}
				if len(deps) != 3 || len(keys) != 3 {
					t.Errorf("%s: %d deposits of %d keys, want 3 of 3", out, len(deps), len(keys))
				}
				if perKey[tr.ExportID] == nil {
					perKey[tr.ExportID] = keys
				}
			}
			if len(content) != 3 || content["topup-again"] == "" {
				t.Fatalf("%d top-up ids across the runs (%v), want 3 (two derived, topup-again)", len(content), fresh)
			}
			for id, n := range fresh {
				if n != 1 {
					t.Errorf("top-up %s made by %d runs, want 1", id, n)
				}
			}
			for id := range content {
				if fresh[id] != 1 {
					t.Errorf("top-up %s made by %d runs, want 1", id, fresh[id])
				}
				for _, pk := range pks[:3] {
					if perKey[id][pk] != 1 {
						t.Errorf("top-up %s: 0x%s in %d entries, want 1", id, pk[:16], perKey[id][pk])
					}
				}
			}
			// The ledger: exactly these top-ups, with their amounts.
			lr := mustRun(t, b, append([]string{"list", "--exports", "--json"}, storeArgs(ba)...)...)
			listed := map[string]uint64{}
			for _, line := range strings.Split(strings.TrimSpace(lr.stdout), "\n") {
				var x struct {
					ID    string `json:"export_id"`
					Kind  string `json:"kind"`
					State string `json:"state"`
					TopUp uint64 `json:"top_up_gwei"`
				}
				if err := json.Unmarshal([]byte(line), &x); err != nil {
					t.Fatal(err)
				}
				if x.Kind == "top-up" {
					listed[x.ID] = x.TopUp
					if x.State != "sealed" {
						t.Errorf("top-up %s is %s", x.ID, x.State)
					}
				}
			}
			if len(listed) != len(amounts) {
				t.Errorf("the ledger holds %d top-ups (%v), the files %d (%v)", len(listed), listed, len(amounts), amounts)
			}
			for id, a := range amounts {
				if listed[id] != a {
					t.Errorf("top-up %s: ledger amount %d, file amount %d", id, listed[id], a)
				}
			}
			// The validators' own deposits: each in one file, top-ups apart.
			c := complete(t, b, ba, filepath.Join(root, "complete"), filepath.Join(root, "g"))
			if len(c.byKey) != 4 {
				t.Fatalf("%d validators handed out, want 4", len(c.byKey))
			}
			if bytes.Contains([]byte(lr.stdout), []byte(`"state":"open"`)) {
				t.Errorf("an export was left open: %s", lr.stdout)
			}
		})
	}
}
