//go:build !ethkeygen_fuzzonly

package custody

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/store"
)

const gwei = depositdata.GweiPerETH

// topUpFixture is a fixture with n exported 0x00 validators of request
// "tu" and 2 exported 0x02 ones of request "tu2".
func topUpFixture(t *testing.T, n int) (*fixture, string, []string, []string) {
	t.Helper()
	f, path := fileFixture(t)
	res := generate(t, f, blsRequest("tu", n))
	if _, err := f.cust.Export(t.Context(), blsExport("tu")); err != nil {
		t.Fatal(err)
	}
	cr := opRequest("tu2", 2)
	cr.Withdrawal.Compounding = true
	comp := generate(t, f, cr)
	a := operator
	if _, err := f.cust.Export(t.Context(), ExportRequest{RequestID: "tu2", Withdrawal: Withdrawal{Address: &a, Compounding: true}}); err != nil {
		t.Fatal(err)
	}
	return f, path, res.Pubkeys(), comp.Pubkeys()
}

func (f *fixture) topUp(t *testing.T, req TopUpRequest) (*ExportResult, error) {
	t.Helper()
	return f.cust.TopUp(t.Context(), envelope.NewLocalOpener(f.identity), req)
}

func (f *fixture) mustTopUp(t *testing.T, req TopUpRequest) *ExportResult {
	t.Helper()
	res, err := f.topUp(t, req)
	if err != nil {
		t.Fatalf("TopUp(%+v): %v", req, err)
	}
	return res
}

// topUps lists the ledger's top-up exports.
func topUps(t *testing.T, f *fixture) map[string]*store.Export {
	t.Helper()
	out := map[string]*store.Export{}
	for e, err := range f.cust.Exports(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		if e.TopUp() {
			out[e.ID] = e
		}
	}
	return out
}

// checkTopUpFile checks a top-up file as the Launchpad would (every
// deposit verifies on Hoodi) and that it holds amount for each of pubkeys,
// in order, paying each record's credentials.
func checkTopUpFile(t *testing.T, f *fixture, res *ExportResult, pubkeys []string, amount uint64) {
	t.Helper()
	deps, errs := depositdata.VerifyFile(res.File, &depositdata.Hoodi)
	if len(errs) > 0 {
		t.Fatalf("top-up file does not verify: %v", errs)
	}
	if len(deps) != len(pubkeys) {
		t.Fatalf("%d deposits, want %d", len(deps), len(pubkeys))
	}
	for i, d := range deps {
		rec, err := f.store.Get(t.Context(), pubkeys[i])
		if err != nil {
			t.Fatal(err)
		}
		if d.Pubkey != pubkeys[i] || d.Amount != amount || d.WithdrawalCredentials != rec.WithdrawalCredentials {
			t.Fatalf("entry %d: %s %d gwei to %s; want %s %d gwei to %s", i, d.Pubkey, d.Amount, d.WithdrawalCredentials,
				pubkeys[i], amount, rec.WithdrawalCredentials)
		}
	}
	e := res.Export
	if !e.TopUp() || e.TopUpGwei != amount || !e.Sealed || strings.Join(e.Members, ",") != strings.Join(pubkeys, ",") || e.Claims != 0 {
		t.Fatalf("top-up export %+v", e)
	}
	if res.FileName != ExportFileName(e) || !strings.HasPrefix(e.ID, TopUpPrefix) {
		t.Fatalf("file name %s, export id %s", res.FileName, e.ID)
	}
}

// TestTopUpOnce: the same top-up asked twice (no request id) is one
// top-up: the same bytes under the same name, one ledger export, the keys'
// states untouched; another amount, another order or a new request id is
// another top-up; a request id holding other keys or another amount is
// refused.
func TestTopUpOnce(t *testing.T) {
	f, _, pks, comp := topUpFixture(t, 3)
	before := map[string]*store.KeyState{}
	for _, pk := range pks {
		_, ks, _ := f.cust.Get(t.Context(), pk)
		before[pk] = ks
	}
	req := TopUpRequest{Pubkeys: []string{pks[2], pks[0]}, AmountGwei: 2 * gwei}
	first := f.mustTopUp(t, req)
	checkTopUpFile(t, f, first, req.Pubkeys, 2*gwei)
	if first.Resumed || first.Export.ID != DeriveTopUpID("hoodi", req.Pubkeys, 2*gwei) {
		t.Fatalf("first top-up: resumed %v, id %s", first.Resumed, first.Export.ID)
	}
	if len(first.Summary) != 1 || first.Summary[0] != (TargetSummary{store.BLSTarget, 2 * gwei, 2}) {
		t.Fatalf("summary %+v", first.Summary)
	}
	again := f.mustTopUp(t, req)
	if !again.Resumed || again.Export.ID != first.Export.ID || again.FileName != first.FileName || !bytes.Equal(again.File, first.File) {
		t.Fatalf("the same top-up again: resumed %v, %s %s, same bytes %v", again.Resumed, again.Export.ID, again.FileName, bytes.Equal(again.File, first.File))
	}
	if n := len(topUps(t, f)); n != 1 {
		t.Fatalf("%d top-up exports after the same top-up twice, want 1", n)
	}
	for _, pk := range pks {
		if _, ks, _ := f.cust.Get(t.Context(), pk); ks.Version != before[pk].Version || ks.State != store.StatusExported || ks.ExportID != before[pk].ExportID {
			t.Fatalf("0x%s changed state with a top-up: %+v", pk, ks)
		}
	}

	// Another amount, another order: other top-ups, other files.
	other := f.mustTopUp(t, TopUpRequest{Pubkeys: req.Pubkeys, AmountGwei: 3 * gwei})
	checkTopUpFile(t, f, other, req.Pubkeys, 3*gwei)
	swapped := f.mustTopUp(t, TopUpRequest{Pubkeys: []string{pks[0], pks[2]}, AmountGwei: 2 * gwei})
	if other.Resumed || swapped.Resumed || other.Export.ID == first.Export.ID || swapped.Export.ID == first.Export.ID {
		t.Fatalf("other top-ups took the first's id: %s %s", other.Export.ID, swapped.Export.ID)
	}
	// A second intended top-up of the same keys and amount: a request id.
	named := f.mustTopUp(t, TopUpRequest{RequestID: "second", Pubkeys: req.Pubkeys, AmountGwei: 2 * gwei})
	if named.Export.ID != "topup-second" || named.Resumed || named.FileName == first.FileName {
		t.Fatalf("named top-up: %s resumed %v file %s", named.Export.ID, named.Resumed, named.FileName)
	}
	checkTopUpFile(t, f, named, req.Pubkeys, 2*gwei)
	if !bytes.Equal(named.File, first.File) {
		t.Fatal("the same deposits signed twice differ (deposit signatures are deterministic)")
	}
	// Named again: by its id alone, or with its keys and amount.
	for _, r := range []TopUpRequest{{RequestID: "second"}, {RequestID: "second", Pubkeys: req.Pubkeys, AmountGwei: 2 * gwei}} {
		if res := f.mustTopUp(t, r); !res.Resumed || res.Export.ID != "topup-second" || !bytes.Equal(res.File, named.File) {
			t.Fatalf("top-up second again (%+v): %s resumed %v", r, res.Export.ID, res.Resumed)
		}
	}
	// The derived id names the first top-up too.
	if res := f.mustTopUp(t, TopUpRequest{RequestID: strings.TrimPrefix(first.Export.ID, TopUpPrefix)}); !bytes.Equal(res.File, first.File) {
		t.Fatal("the first top-up by its request id differs")
	}
	// The same request id with other keys or another amount is refused.
	for _, r := range []TopUpRequest{
		{RequestID: "second", Pubkeys: req.Pubkeys, AmountGwei: 5 * gwei},
		{RequestID: "second", Pubkeys: []string{pks[1]}, AmountGwei: 2 * gwei},
		{RequestID: "second", Pubkeys: []string{pks[0], pks[2]}, AmountGwei: 2 * gwei},
	} {
		if _, err := f.topUp(t, r); !errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), "new request id") {
			t.Fatalf("top-up second with other keys or amount (%+v): %v", r, err)
		}
	}
	if _, err := f.topUp(t, TopUpRequest{RequestID: "unknown"}); !errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), "no top-up topup-unknown") {
		t.Fatalf("unknown request id without keys: %v", err)
	}
	// An export of generated deposits is not a top-up.
	if _, err := f.topUp(t, TopUpRequest{RequestID: "x", Pubkeys: req.Pubkeys, AmountGwei: gwei}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{first.Export.ID: true, other.Export.ID: true, swapped.Export.ID: true, "topup-second": true, "topup-x": true}
	got := topUps(t, f)
	for id := range got {
		if !want[id] {
			t.Errorf("unexpected top-up %s", id)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d top-up exports, want %d", len(got), len(want))
	}
	// Compounding keys take up to 2048 ETH.
	big := f.mustTopUp(t, TopUpRequest{Pubkeys: comp, AmountGwei: 2048 * gwei})
	checkTopUpFile(t, f, big, comp, 2048*gwei)
}

// TestTopUpRefused: keys an operation may not sign for, exit-signed keys,
// amounts their credentials do not allow, mixed networks and bad requests
// are refused before any export is made.
func TestTopUpRefused(t *testing.T) {
	f, path, pks, comp := topUpFixture(t, 5)
	never := generate(t, f, blsRequest("never", 1)).Pubkeys()[0]
	if _, err := f.cust.MarkExitSigned(t.Context(), pks[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cust.Retire(t.Context(), pks[1], "test"); err != nil {
		t.Fatal(err)
	}
	ra, _ := f.store.Get(t.Context(), pks[3])
	if _, err := rawDB(t, path).Exec(`UPDATE records SET sealed = ? WHERE pubkey = ?`, append([]byte{1}, ra.Sealed...), pks[2]); err != nil {
		t.Fatal(err)
	}
	ok := pks[3]
	for _, c := range []struct {
		name    string
		req     TopUpRequest
		is      error
		mention string
	}{
		{"exit-signed", TopUpRequest{Pubkeys: []string{ok, pks[0]}, AmountGwei: gwei}, ErrState, "exit-signed: a top-up of an exiting validator"},
		{"retired", TopUpRequest{Pubkeys: []string{pks[1]}, AmountGwei: gwei}, ErrState, "retired"},
		{"forged", TopUpRequest{Pubkeys: []string{ok, pks[2]}, AmountGwei: gwei}, ErrForged, pks[2]},
		{"never exported", TopUpRequest{Pubkeys: []string{never}, AmountGwei: gwei}, ErrState, "never exported"},
		{"below 1 ETH", TopUpRequest{Pubkeys: []string{ok}, AmountGwei: gwei - 1}, depositdata.ErrAmount, "999999999"},
		{"33 ETH on 0x00", TopUpRequest{Pubkeys: []string{ok}, AmountGwei: 33 * gwei}, ErrRequest, "0x00"},
		{"2049 ETH on 0x02", TopUpRequest{Pubkeys: []string{comp[0]}, AmountGwei: 2049 * gwei}, ErrRequest, "0x02"},
		{"33 ETH on 0x00 and 0x02", TopUpRequest{Pubkeys: []string{comp[0], ok}, AmountGwei: 33 * gwei}, ErrRequest, ok},
		{"no amount", TopUpRequest{Pubkeys: []string{ok}}, ErrRequest, "amount"},
		{"no key", TopUpRequest{AmountGwei: gwei}, ErrRequest, "no validator"},
		{"key twice", TopUpRequest{Pubkeys: []string{ok, ok}, AmountGwei: gwei}, ErrRequest, "twice"},
		{"bad request id", TopUpRequest{RequestID: "a/b", Pubkeys: []string{ok}, AmountGwei: gwei}, ErrRequest, "request id"},
		{"unknown key", TopUpRequest{Pubkeys: []string{strings.Repeat("ab", 48)}, AmountGwei: gwei}, store.ErrNotFound, "not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.topUp(t, c.req)
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("%v; want %v mentioning %q", err, c.is, c.mention)
			}
		})
	}
	if n := len(topUps(t, f)); n != 0 {
		t.Fatalf("%d top-up exports after refusals", n)
	}
	// A made top-up whose key exits later is not signed again.
	f.mustTopUp(t, TopUpRequest{RequestID: "later", Pubkeys: []string{pks[4]}, AmountGwei: gwei})
	if _, err := f.cust.MarkExitSigned(t.Context(), pks[4]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.topUp(t, TopUpRequest{RequestID: "later"}); !errors.Is(err, ErrState) {
		t.Fatalf("re-writing a top-up of a key exit-signed since: %v", err)
	}
	// The wrong identity opens nothing; no opener is a bad request.
	other := newFixture(t)
	if _, err := f.cust.TopUp(t.Context(), envelope.NewLocalOpener(other.identity), TopUpRequest{Pubkeys: []string{ok}, AmountGwei: gwei}); err == nil {
		t.Fatal("another identity opened the keys")
	}
	if n := len(topUps(t, f)); n != 1 {
		t.Fatalf("%d top-up exports after a run that could not open its keys, want 1", n)
	}
	if _, err := f.cust.TopUp(t.Context(), nil, TopUpRequest{Pubkeys: []string{ok}, AmountGwei: gwei}); !errors.Is(err, ErrRequest) {
		t.Fatalf("no opener: %v", err)
	}
}

// TestTopUpConcurrent: the same top-up asked by several runs at once makes
// one export, and every run returns its bytes.
func TestTopUpConcurrent(t *testing.T) {
	f, _, pks, _ := topUpFixture(t, 3)
	for _, req := range []TopUpRequest{{Pubkeys: pks, AmountGwei: gwei}, {RequestID: "race", Pubkeys: pks, AmountGwei: gwei}} {
		const n = 6
		res := make([]*ExportResult, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				res[i], errs[i] = f.cust.TopUp(t.Context(), envelope.NewLocalOpener(f.identity), req)
			})
		}
		close(start)
		wg.Wait()
		fresh := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("run %d: %v", i, errs[i])
			}
			if !res[i].Resumed {
				fresh++
			}
			if res[i].Export.ID != res[0].Export.ID || !bytes.Equal(res[i].File, res[0].File) {
				t.Fatalf("run %d: %s, other bytes than run 0 (%s)", i, res[i].Export.ID, res[0].Export.ID)
			}
		}
		if fresh != 1 {
			t.Errorf("%d runs made the top-up, want 1", fresh)
		}
		checkTopUpFile(t, f, res[0], pks, gwei)
	}
	if n := len(topUps(t, f)); n != 2 {
		t.Fatalf("%d top-up exports, want 2", n)
	}
}

// TestTopUpExportsApart: top-up exports stay out of the export of
// generated deposits: an interrupted (unsealed) top-up does not hold up a
// new export and is finished by its re-run; export-deposits --export-id of
// a top-up is refused, naming the command that writes it.
func TestTopUpExportsApart(t *testing.T) {
	f, _, pks, _ := topUpFixture(t, 2)
	// A top-up interrupted before its seal, as a killed run leaves it.
	id := DeriveTopUpID("hoodi", pks, gwei)
	if _, err := f.ledger.CreateExport(t.Context(), &store.Export{ID: id, CreatedAt: time.Now(), Network: "hoodi",
		Candidates: pks, TopUpGwei: gwei}); err != nil {
		t.Fatal(err)
	}
	fresh := generate(t, f, blsRequest("after", 2))
	exp, err := f.cust.Export(t.Context(), ExportRequest{Pubkeys: fresh.Pubkeys(), BLSWithdrawal: true})
	if err != nil {
		t.Fatalf("an open top-up held up a new export: %v", err)
	}
	if len(exp.Deposits) != 2 {
		t.Fatalf("%d deposits", len(exp.Deposits))
	}
	res := f.mustTopUp(t, TopUpRequest{Pubkeys: pks, AmountGwei: gwei})
	if !res.Resumed || res.Export.ID != id {
		t.Fatalf("re-run of the interrupted top-up: %s resumed %v", res.Export.ID, res.Resumed)
	}
	checkTopUpFile(t, f, res, pks, gwei)
	for _, get := range []func() (*ExportResult, error){
		func() (*ExportResult, error) { return f.cust.ExportFile(t.Context(), id) },
		func() (*ExportResult, error) {
			return f.cust.Export(t.Context(), ExportRequest{ID: id, BLSWithdrawal: true})
		},
	} {
		if _, err := get(); !errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), "top-up --request-id "+strings.TrimPrefix(id, TopUpPrefix)) {
			t.Fatalf("export of a top-up without its keys: %v", err)
		}
	}
	// A request whose export id is taken by a top-up export is refused by
	// Export, not finished as generated deposits.
	if _, err := f.ledger.CreateExport(t.Context(), &store.Export{ID: RequestExportID("late"), CreatedAt: time.Now(), Network: "hoodi",
		Candidates: pks, TopUpGwei: gwei}); err != nil {
		t.Fatal(err)
	}
	generate(t, f, blsRequest("late", 1))
	if _, err := f.cust.Export(t.Context(), blsExport("late")); !errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), "is a top-up") {
		t.Fatalf("export of a request whose id is a top-up: %v", err)
	}
}
