//go:build !ethkeygen_fuzzonly

package custody

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
)

// operator is the withdrawal address the operator states in these tests;
// attacker is somebody else's.
var (
	operator = mustAddress("0x0f51bb10119727a7e5eA3538074fb341F56B09Ad")
	attacker = mustAddress("0x52908400098527886E0F7030069857D2E4169EE7")
)

func mustAddress(s string) depositdata.Address {
	a, err := depositdata.ParseAddress(s, false)
	if err != nil {
		panic(err)
	}
	return a
}

func opRequest(id string, n int) Request {
	r := hoodiRequest(id, n)
	r.Format = FormatRaw
	a := operator
	r.Withdrawal = Withdrawal{Address: &a}
	return r
}

func opExport(requestID string) ExportRequest {
	a := operator
	return ExportRequest{RequestID: requestID, Withdrawal: Withdrawal{Address: &a}}
}

func allExport() ExportRequest {
	a := operator
	return ExportRequest{All: true, Withdrawal: Withdrawal{Address: &a}}
}

func generate(t *testing.T, f *fixture, req Request) *Result {
	t.Helper()
	res, err := f.gen.Generate(t.Context(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// fileKeys parses a Launchpad file, checks it as the Launchpad would, and
// returns its pubkeys.
func fileKeys(t *testing.T, b []byte) []string {
	t.Helper()
	deps, errs := depositdata.VerifyFile(b, &depositdata.Hoodi)
	if len(errs) > 0 {
		t.Fatalf("export file does not verify: %v", errs)
	}
	var out []string
	for _, d := range deps {
		out = append(out, d.Pubkey)
	}
	return out
}

func TestExportHandsOutOnceAndRewritesTheSameBytes(t *testing.T) {
	f := newFixture(t)
	res := generate(t, f, opRequest("r1", 6))
	first, err := f.cust.Export(t.Context(), opExport("r1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fileKeys(t, first.File); strings.Join(got, ",") != strings.Join(res.Pubkeys(), ",") {
		t.Fatalf("file holds %v, want the request's validators in slot order", got)
	}
	if first.Export.ID != RequestExportID("r1") || !first.Export.Sealed || first.Resumed {
		t.Fatalf("export %+v", first.Export)
	}
	// The same request again, and the export by id: the same bytes.
	again, err := f.cust.Export(t.Context(), opExport("r1"))
	if err != nil {
		t.Fatal(err)
	}
	byID, err := f.cust.ExportFile(t.Context(), first.Export.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*ExportResult{again, byID} {
		if !bytes.Equal(r.File, first.File) || r.FileName != first.FileName || !r.Resumed {
			t.Fatal("re-running an export did not reproduce its file")
		}
	}
	// Nothing is left for a new export.
	if _, err := f.cust.Export(t.Context(), allExport()); !errors.Is(err, ErrNothingToExport) {
		t.Fatalf("export --all after everything was exported: %v", err)
	}
	for _, pk := range res.Pubkeys() {
		_, ks, err := f.cust.Get(t.Context(), pk)
		if err != nil || ks == nil || ks.State != store.StatusExported || ks.ExportID != first.Export.ID {
			t.Fatalf("0x%s: state %+v, %v", pk[:8], ks, err)
		}
	}
	if len(first.Summary) != 1 || first.Summary[0].Count != 6 || first.Summary[0].AmountGwei != depositdata.MaxAmount {
		t.Fatalf("summary %+v", first.Summary)
	}
}

// TestConcurrentExportsNeverShareAKey races exports of one request, of the
// whole store, and of named keys, over many rounds: every key ends in
// exactly one export's file, and every key ends in one.
func TestConcurrentExportsNeverShareAKey(t *testing.T) {
	f := newFixture(t)
	for round := range 8 {
		id := fmt.Sprintf("race-%d", round)
		res := generate(t, f, opRequest(id, 10))
		var (
			mu    sync.Mutex
			files [][]byte
			wg    sync.WaitGroup
		)
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := opExport(id)
				switch w % 3 {
				case 1:
					req = allExport()
				case 2:
					a := operator
					req = ExportRequest{Pubkeys: res.Pubkeys()[w%5 : w%5+3], SkipExported: true, Withdrawal: Withdrawal{Address: &a}}
				}
				r, err := f.cust.Export(context.Background(), req)
				switch {
				case errors.Is(err, ErrNothingToExport), errors.Is(err, ErrExportOpen):
					return // lost the race: nothing handed out
				case err != nil:
					t.Error(err)
					return
				}
				mu.Lock()
				files = append(files, r.File)
				mu.Unlock()
			}()
		}
		wg.Wait()
		// Identical files are one export written twice; distinct files must
		// not share a key.
		seen := map[string]int{}
		distinct := map[string]bool{}
		for _, b := range files {
			if b == nil || distinct[string(b)] {
				continue
			}
			distinct[string(b)] = true
			for _, pk := range fileKeys(t, b) {
				seen[pk]++
			}
		}
		for _, pk := range res.Pubkeys() {
			if seen[pk] > 1 {
				t.Fatalf("round %d: 0x%s is in %d different deposit files", round, pk[:12], seen[pk])
			}
		}
		// A key not in any file of this round is in an export still (none
		// is lost): finish every export and count again.
		total := map[string]int{}
		for e, err := range f.cust.Exports(t.Context()) {
			if err != nil {
				t.Fatal(err)
			}
			r, err := f.cust.ExportFile(t.Context(), e.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, pk := range r.Export.Members {
				total[pk]++
			}
		}
		for _, pk := range res.Pubkeys() {
			if total[pk] != 1 {
				t.Fatalf("round %d: 0x%s is a member of %d exports, want 1", round, pk[:12], total[pk])
			}
		}
	}
}

// rawDB opens the store file behind the store's back, as an attacker with
// write access to it would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// fileFixture is a fixture on a store file the test can reach.
func fileFixture(t *testing.T) (*fixture, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ethkeygen.db")
	st, err := sqlitestore.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newFixtureOn(t, st), path
}

// plantedRecord is a record an attacker makes for a key and address they
// control: a validly signed deposit, a sealed secret to our own recipient
// (so it even opens), and optionally an authenticator from another key.
func plantedRecord(t *testing.T, f *fixture, requestID string, slot int, to depositdata.Address) *store.Record {
	t.Helper()
	m, err := keygen.NewMnemonic(rand.Reader, keygen.English)
	if err != nil {
		t.Fatal(err)
	}
	seed := m.Seed("")
	v, err := keygen.DeriveValidator(seed, 0)
	if err != nil {
		t.Fatal(err)
	}
	creds := depositdata.ExecutionCredentials(to, false)
	dep, err := depositdata.Build(v.Signing, creds, depositdata.MaxAmount, depositdata.Hoodi)
	if err != nil {
		t.Fatal(err)
	}
	depJSON, _ := json.Marshal(dep)
	rec := &store.Record{Pubkey: dep.Pubkey, RequestID: requestID, Slot: slot, Network: "hoodi",
		WithdrawalCredentials: dep.WithdrawalCredentials, DepositData: depJSON, Origin: OriginGenerated,
		Status: store.StatusGenerated, CreatedAt: f.gen.now().UTC(), Provenance: f.gen.provenance}
	doc := secretDoc{pubkey: dep.Pubkey, format: FormatRaw, key: v.Signing.UnsafeBytes(), mnemonic: []byte(m.UnsafeString())}
	rec.Sealed, err = envelope.NewLocalSealer(f.identity.Recipient()).Seal(t.Context(), doc.marshal(), sealContext(rec, PurposeSecret))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestForgedRecordsAreRefused(t *testing.T) {
	t.Run("planted record with the attacker's address", func(t *testing.T) {
		f := newFixture(t)
		generate(t, f, opRequest("legit", 2))
		bad := plantedRecord(t, f, "legit-looking", 0, attacker)
		if err := f.store.Put(t.Context(), bad); err != nil {
			t.Fatal(err)
		}
		_, err := f.cust.Export(t.Context(), allExport())
		if !errors.Is(err, ErrForged) || !strings.Contains(err.Error(), bad.Pubkey) {
			t.Fatalf("export of a store with a planted record: %v", err)
		}
		// Nothing was claimed by the refused export.
		if _, err := f.cust.Export(t.Context(), opExport("legit")); err != nil {
			t.Fatalf("the legitimate request's export after the refusal: %v", err)
		}
		if _, err := f.cust.ClaimForSigner(t.Context(), LoadRequest{Signer: "s", Pubkeys: []string{bad.Pubkey}}); !errors.Is(err, ErrForged) {
			t.Fatalf("load of a planted record: %v", err)
		}
		if _, err := f.opener.OpenRecord(t.Context(), bad); !errors.Is(err, ErrForged) {
			t.Fatalf("open of a planted record: %v", err)
		}
	})
	t.Run("planted record signed by another generator key", func(t *testing.T) {
		f := newFixture(t)
		other := newFixture(t)
		bad := plantedRecord(t, f, "x", 0, operator) // even paying the operator
		if err := signRecord(t.Context(), other.signer, bad); err != nil {
			t.Fatal(err)
		}
		if err := f.store.Put(t.Context(), bad); err != nil {
			t.Fatal(err)
		}
		a := operator
		_, err := f.cust.Export(t.Context(), ExportRequest{Pubkeys: []string{bad.Pubkey}, Withdrawal: Withdrawal{Address: &a}})
		if !errors.Is(err, ErrForged) || !strings.Contains(err.Error(), bad.Pubkey) {
			t.Fatalf("export of a record signed by another key: %v", err)
		}
	})
	t.Run("replaced slot of a 0x00 request", func(t *testing.T) {
		f, path := fileFixture(t)
		req := hoodiRequest("bls", 3)
		req.Format = FormatRaw
		res := generate(t, f, req)
		// The attacker replaces slot 1 with their own validator (0x00 with
		// their withdrawal key; here an execution address, as bad).
		bad := plantedRecord(t, f, "bls", 1, attacker)
		bad.WithdrawalCredentials = "00" + bad.WithdrawalCredentials[2:]
		db := rawDB(t, path)
		if _, err := db.Exec(`DELETE FROM records WHERE request_id = 'bls' AND slot = 1`); err != nil {
			t.Fatal(err)
		}
		if err := f.store.Put(t.Context(), bad); err != nil {
			t.Fatal(err)
		}
		_, err := f.gen.Generate(t.Context(), req, nil) // the re-run reads the slot back
		if !errors.Is(err, ErrForged) {
			t.Fatalf("re-run over a replaced slot: %v", err)
		}
		_, err = f.cust.Export(t.Context(), ExportRequest{RequestID: "bls", BLSWithdrawal: true})
		if !errors.Is(err, ErrForged) || !strings.Contains(err.Error(), bad.Pubkey) {
			t.Fatalf("export over a replaced slot: %v", err)
		}
		_ = res
	})
	t.Run("swapped sealed secrets", func(t *testing.T) {
		f, path := fileFixture(t)
		res := generate(t, f, opRequest("swap", 2))
		a, b := res.Validators[0].Pubkey, res.Validators[1].Pubkey
		db := rawDB(t, path)
		ra, _ := f.store.Get(t.Context(), a)
		rb, _ := f.store.Get(t.Context(), b)
		for pk, sealed := range map[string][]byte{a: rb.Sealed, b: ra.Sealed} {
			if _, err := db.Exec(`UPDATE records SET sealed = ? WHERE pubkey = ?`, sealed, pk); err != nil {
				t.Fatal(err)
			}
		}
		_, err := f.cust.Export(t.Context(), opExport("swap"))
		if !errors.Is(err, ErrForged) {
			t.Fatalf("export after a swap of sealed secrets: %v", err)
		}
		rec, _ := f.store.Get(t.Context(), a)
		if _, err := f.opener.OpenRecord(t.Context(), rec); err == nil {
			t.Fatal("a swapped sealed secret opened")
		}
	})
	t.Run("edited status", func(t *testing.T) {
		f, path := fileFixture(t)
		res := generate(t, f, opRequest("st", 2))
		if _, err := f.cust.Export(t.Context(), opExport("st")); err != nil {
			t.Fatal(err)
		}
		pk := res.Validators[0].Pubkey
		if _, err := f.cust.ClaimForSigner(t.Context(), LoadRequest{Signer: "signer-a", Pubkeys: []string{pk}}); err != nil {
			t.Fatal(err)
		}
		// The attacker resets every status in the records table.
		if _, err := rawDB(t, path).Exec(`UPDATE records SET status = 'generated'`); err != nil {
			t.Fatal(err)
		}
		if _, err := f.cust.Export(t.Context(), allExport()); !errors.Is(err, ErrNothingToExport) {
			t.Fatalf("export after statuses were reset: %v", err)
		}
		if _, err := f.cust.ClaimForSigner(t.Context(), LoadRequest{Signer: "signer-b", Pubkeys: []string{pk}}); !errors.Is(err, ErrClaimed) {
			t.Fatalf("second signer after statuses were reset: %v", err)
		}
	})
}

// TestRestoredBackupDoesNotRearmAKey restores the records file from a
// backup taken before the key was loaded: the ledger, apart from it, still
// says the key is live on the first signer.
func TestRestoredBackupDoesNotRearmAKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ethkeygen.db")
	st, err := sqlitestore.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureOn(t, st)
	res := generate(t, f, opRequest("bk", 2))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "backup.db")
	copyFile(t, path, backup)
	st2, err := sqlitestore.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st2.Close() })
	cust, err := NewCustodian(st2, f.ledger, f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cust.Export(t.Context(), opExport("bk")); err != nil {
		t.Fatal(err)
	}
	pk := res.Validators[0].Pubkey
	if _, err := cust.ClaimForSigner(t.Context(), LoadRequest{Signer: "signer-a", Pubkeys: []string{pk}}); err != nil {
		t.Fatal(err)
	}
	st2.Close()
	copyFile(t, backup, path) // the restore
	st3, err := sqlitestore.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st3.Close() })
	cust, _ = NewCustodian(st3, f.ledger, f.verifier)
	if _, err := cust.ClaimForSigner(t.Context(), LoadRequest{Signer: "signer-b", Pubkeys: []string{pk}}); !errors.Is(err, ErrClaimed) {
		t.Fatalf("load on a second signer after the restore: %v", err)
	}
	if _, err := cust.Export(t.Context(), opExport("bk")); err != nil {
		t.Fatalf("re-export after the restore: %v", err) // the same export, not a new one
	}
	if _, err := cust.Export(t.Context(), allExport()); !errors.Is(err, ErrNothingToExport) {
		t.Fatalf("a new export after the restore: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	for _, sfx := range []string{"-wal", "-shm", "-journal"} {
		os.Remove(to + sfx)
	}
}

func TestStatedTargetIsEnforced(t *testing.T) {
	f := newFixture(t)
	generate(t, f, opRequest("tg", 2))
	a := attacker
	_, err := f.cust.Export(t.Context(), ExportRequest{RequestID: "tg", Withdrawal: Withdrawal{Address: &a}})
	if !errors.Is(err, ErrTarget) {
		t.Fatalf("export stating another address: %v", err)
	}
	if _, err := f.cust.Export(t.Context(), ExportRequest{RequestID: "tg", BLSWithdrawal: true}); !errors.Is(err, ErrTarget) {
		t.Fatalf("export of 0x01 deposits stating BLS: %v", err)
	}
	if _, err := f.cust.Export(t.Context(), ExportRequest{RequestID: "tg"}); !errors.Is(err, ErrRequest) {
		t.Fatalf("export without a stated target: %v", err)
	}
	comp := operator
	if _, err := f.cust.Export(t.Context(), ExportRequest{RequestID: "tg", Withdrawal: Withdrawal{Address: &comp, Compounding: true}}); !errors.Is(err, ErrTarget) {
		t.Fatalf("export of 0x01 deposits stating 0x02: %v", err)
	}
	// Nothing was claimed by the refusals.
	if _, err := f.cust.Export(t.Context(), opExport("tg")); err != nil {
		t.Fatal(err)
	}
}

func TestSignerClaims(t *testing.T) {
	f := newFixture(t)
	res := generate(t, f, opRequest("sc", 4))
	pks := res.Pubkeys()
	// A key never exported cannot be loaded: its deposit was never handed out.
	if _, err := f.cust.ClaimForSigner(t.Context(), LoadRequest{Signer: "a", Pubkeys: pks[:1]}); !errors.Is(err, ErrState) {
		t.Fatalf("load before export: %v", err)
	}
	if _, err := f.cust.Export(t.Context(), opExport("sc")); err != nil {
		t.Fatal(err)
	}
	cl, err := f.cust.ClaimForSigner(t.Context(), LoadRequest{Signer: "a", Pubkeys: pks[:2]})
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Items) != 2 || !cl.Items[0].Fresh {
		t.Fatalf("claims %+v", cl.Items)
	}
	// The same signer again: nothing changes.
	again, err := f.cust.ClaimForSigner(t.Context(), LoadRequest{Signer: "a", Pubkeys: pks[:2]})
	if err != nil || again.Items[0].Fresh {
		t.Fatalf("re-claim by the same signer: %+v %v", again, err)
	}
	// Another signer: refused, and its claim of the free key undone.
	if _, err := f.cust.ClaimForSigner(t.Context(), LoadRequest{Signer: "b", Pubkeys: []string{pks[2], pks[0]}}); !errors.Is(err, ErrClaimed) {
		t.Fatalf("second signer: %v", err)
	}
	if _, ks, _ := f.cust.Get(t.Context(), pks[2]); ks.State != store.StatusExported {
		t.Fatalf("refused load left 0x%s %s", pks[2][:8], ks.State)
	}
	// A takeover moves it.
	tk, err := f.cust.ClaimForSigner(t.Context(), LoadRequest{Signer: "b", Pubkeys: pks[:1], Takeover: true})
	if err != nil || tk.Items[0].Key.Signer != "b" {
		t.Fatalf("takeover: %+v %v", tk, err)
	}
	// Release undoes only what the claim wrote and nobody changed since.
	cl3, err := f.cust.ClaimForSigner(t.Context(), LoadRequest{Signer: "c", Pubkeys: pks[2:4]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.cust.Retire(t.Context(), pks[3], "test"); err != nil {
		t.Fatal(err)
	}
	if err := cl3.Release(t.Context()); err == nil {
		t.Fatal("release over another process's change succeeded")
	}
	if _, ks, _ := f.cust.Get(t.Context(), pks[2]); ks.State != store.StatusExported || ks.Signer != "" {
		t.Fatalf("released key: %+v", ks)
	}
	if _, ks, _ := f.cust.Get(t.Context(), pks[3]); ks.State != store.StatusRetired {
		t.Fatalf("a release undid a retirement: %+v", ks)
	}
	// Retired keys are never loaded, not even by takeover, nor signed for.
	if _, err := f.cust.ClaimForSigner(t.Context(), LoadRequest{Signer: "d", Pubkeys: pks[3:4], Takeover: true}); !errors.Is(err, ErrState) {
		t.Fatalf("load of a retired key: %v", err)
	}
	if _, err := f.cust.MarkExitSigned(t.Context(), pks[3]); !errors.Is(err, ErrState) {
		t.Fatalf("exit of a retired key: %v", err)
	}
	ks, err := f.cust.Retire(t.Context(), pks[3], "again")
	if err != nil || ks.Note != "test" || ks.By != "test" {
		t.Fatalf("retire twice: %+v %v", ks, err)
	}
}

// TestClaimRaceHasOneWinner races loaders of one key on many signers.
func TestClaimRaceHasOneWinner(t *testing.T) {
	f := newFixture(t)
	for round := range 10 {
		id := fmt.Sprintf("cr-%d", round)
		res := generate(t, f, opRequest(id, 1))
		if _, err := f.cust.Export(t.Context(), opExport(id)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		winners := 0
		for s := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := f.cust.ClaimForSigner(context.Background(), LoadRequest{Signer: fmt.Sprint("s", s), Pubkeys: res.Pubkeys()})
				if err == nil {
					mu.Lock()
					winners++
					mu.Unlock()
				} else if !errors.Is(err, ErrClaimed) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if winners != 1 {
			t.Fatalf("round %d: %d loaders won the key", round, winners)
		}
	}
}

// keyIDSealer is a sealer under another key, wrapped: its id passes through.
type wrappedSealer struct{ envelope.Sealer }

func TestPinsRefuseAnotherKey(t *testing.T) {
	f := newFixture(t)
	g, err := NewGenerator(f.store, f.gen.sealer, f.signer, WithLedger(f.ledger, false))
	if err != nil {
		t.Fatal(err)
	}
	generate(t, &fixture{gen: g}, opRequest("p1", 1))
	other := newFixture(t)
	for name, s := range map[string]envelope.Sealer{"another recipient": other.gen.sealer, "wrapped": wrappedSealer{other.gen.sealer}} {
		g2, err := NewGenerator(f.store, s, f.signer, WithLedger(f.ledger, false))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g2.Generate(t.Context(), opRequest("p2", 1), nil); !errors.Is(err, ErrPin) {
			t.Fatalf("%s: %v", name, err)
		}
		// Resuming p1 under it is refused too, even without the pins.
		g3, _ := NewGenerator(f.store, s, f.signer)
		if _, err := g3.Generate(t.Context(), opRequest("p1", 1), nil); !errors.Is(err, ErrRequestReused) {
			t.Fatalf("%s: resume under another key: %v", name, err)
		}
	}
	g4, _ := NewGenerator(f.store, other.gen.sealer, f.signer, WithLedger(f.ledger, true))
	if _, err := g4.Generate(t.Context(), opRequest("p3", 1), nil); err != nil {
		t.Fatalf("a deliberate key change: %v", err)
	}
	if _, err := NewGenerator(f.store, f.gen.sealer, other.signer, WithLedger(f.ledger, false)); err != nil {
		t.Fatal(err)
	} else if _, err := mustGen(t, f.store, f.gen.sealer, other, f.ledger).Generate(t.Context(), opRequest("p4", 1), nil); !errors.Is(err, ErrPin) {
		t.Fatalf("another generator key: %v", err)
	}
}

func mustGen(t *testing.T, st store.Store, s envelope.Sealer, other *fixture, l store.Ledger) *Generator {
	g, err := NewGenerator(st, s, other.signer, WithLedger(l, false))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestEncryptionContextBindsTheRecord(t *testing.T) {
	f := newFixture(t)
	res := generate(t, f, opRequest("ctx", 1))
	rec, err := f.store.Get(t.Context(), res.Validators[0].Pubkey)
	if err != nil {
		t.Fatal(err)
	}
	op := envelope.NewLocalOpener(f.identity)
	if _, err := op.Open(t.Context(), rec.Sealed, sealContext(rec, PurposeSecret)); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(r *store.Record){
		"request": func(r *store.Record) { r.RequestID = "other" },
		"slot":    func(r *store.Record) { r.Slot = 7 },
		"network": func(r *store.Record) { r.Network = "mainnet" },
		"credentials": func(r *store.Record) {
			c := depositdata.ExecutionCredentials(attacker, false)
			r.WithdrawalCredentials = hex.EncodeToString(c[:])
		},
	} {
		moved := *rec
		edit(&moved)
		if _, err := op.Open(t.Context(), moved.Sealed, sealContext(&moved, PurposeSecret)); !errors.Is(err, envelope.ErrAuth) {
			t.Fatalf("secret opened under another %s: %v", name, err)
		}
	}
}

// TestDeletedOrReplacedStoreHandsOutNothing: a store file deleted, or
// replaced by another, while a run has it open: the run's reads still see
// the old file, but no export is built from it.
func TestDeletedOrReplacedStoreHandsOutNothing(t *testing.T) {
	for name, swap := range map[string]func(t *testing.T, path string){
		"deleted": func(t *testing.T, path string) {
			for _, sfx := range []string{"", "-wal", "-shm"} {
				os.Remove(path + sfx)
			}
		},
		"replaced": func(t *testing.T, path string) {
			other := filepath.Join(t.TempDir(), "other.db")
			st, err := sqlitestore.Open(t.Context(), other)
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			if err := os.Rename(other, path); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			f, path := fileFixture(t)
			generate(t, f, opRequest("gone", 2))
			swap(t, path)
			_, err := f.cust.Export(t.Context(), opExport("gone"))
			if !errors.Is(err, sqlitestore.ErrReplaced) {
				t.Fatalf("export from a %s store: %v", name, err)
			}
		})
	}
}
