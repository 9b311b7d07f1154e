//go:build !ethkeygen_fuzzonly

package custody

import (
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/store"
)

func blsRequest(id string, n int) Request {
	r := hoodiRequest(id, n)
	r.Format = FormatRaw
	return r
}

func blsExport(requestID string) ExportRequest {
	return ExportRequest{RequestID: requestID, BLSWithdrawal: true}
}

// TestSelectSignable: named keys must all be signable (all or none), a
// request comes in slot order, --all leaves out retired, forged and
// never-exported keys and says which.
func TestSelectSignable(t *testing.T) {
	f, path := fileFixture(t)
	res := generate(t, f, blsRequest("sel", 3))
	generate(t, f, blsRequest("fresh", 1)) // never exported
	if _, err := f.cust.Export(t.Context(), blsExport("sel")); err != nil {
		t.Fatal(err)
	}
	pks := res.Pubkeys()
	recs, skipped, err := f.cust.SelectSignable(t.Context(), OpsSelection{RequestID: "sel"})
	if err != nil || len(recs) != 3 || len(skipped) != 0 {
		t.Fatalf("request: %v %v %v", recs, skipped, err)
	}
	for i, r := range recs {
		if r.Slot != i || r.Pubkey != pks[i] {
			t.Fatalf("slot order: %d is %d %s", i, r.Slot, r.Pubkey)
		}
	}
	if _, _, err := f.cust.SelectSignable(t.Context(), OpsSelection{Pubkeys: []string{pks[0], pks[0]}}); !errors.Is(err, ErrRequest) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, _, err := f.cust.SelectSignable(t.Context(), OpsSelection{RequestID: "fresh"}); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "never exported") {
		t.Fatalf("never exported: %v", err)
	}
	if _, _, err := f.cust.SelectSignable(t.Context(), OpsSelection{RequestID: "sel", All: true}); !errors.Is(err, ErrRequest) {
		t.Fatalf("two selections: %v", err)
	}
	if _, err := f.cust.Retire(t.Context(), pks[1], "test"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.cust.SelectSignable(t.Context(), OpsSelection{Pubkeys: []string{pks[0], pks[1]}}); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "retired") {
		t.Fatalf("retired among named keys: %v", err)
	}
	// A forged record: its sealed secret replaced behind the store's back.
	ra, _ := f.store.Get(t.Context(), pks[0])
	if _, err := rawDB(t, path).Exec(`UPDATE records SET sealed = ? WHERE pubkey = ?`, append([]byte{1}, ra.Sealed...), pks[2]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.cust.SelectSignable(t.Context(), OpsSelection{Pubkeys: []string{pks[2]}}); !errors.Is(err, ErrForged) {
		t.Fatalf("forged: %v", err)
	}
	recs, skipped, err = f.cust.SelectSignable(t.Context(), OpsSelection{All: true})
	if err != nil || len(recs) != 1 || recs[0].Pubkey != pks[0] || len(skipped) != 3 {
		t.Fatalf("all: %d records, skipped %v, %v", len(recs), skipped, err)
	}
	var left []string
	for _, s := range skipped {
		left = append(left, s.Pubkey)
	}
	slices.Sort(left)
	want := []string{pks[1], pks[2]}
	for rec, err := range f.store.Query(t.Context(), store.Filter{RequestID: "fresh"}) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, rec.Pubkey)
	}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Fatalf("skipped %v, want %v", left, want)
	}
	// Selecting nothing signable is an error, not an empty success.
	if _, err := f.cust.Retire(t.Context(), pks[0], "test"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.cust.SelectSignable(t.Context(), OpsSelection{All: true}); !errors.Is(err, ErrState) {
		t.Fatalf("nothing signable: %v", err)
	}
}

// TestOpenWithdrawalKey: the withdrawal key derived from the sealed
// mnemonic (with the key, or under a separate mnemonic key) hashes to the
// record's 0x00 credentials; the separate one needs its own opener.
func TestOpenWithdrawalKey(t *testing.T) {
	check := func(t *testing.T, f *fixture, res *Result, secretOp, mnemonicOp envelope.Opener) {
		t.Helper()
		for _, v := range res.Validators {
			rec, err := f.store.Get(t.Context(), v.Pubkey)
			if err != nil {
				t.Fatal(err)
			}
			wk, err := f.cust.OpenWithdrawalKey(t.Context(), secretOp, mnemonicOp, rec)
			if err != nil {
				t.Fatal(err)
			}
			creds := depositdata.BLSCredentials(wk.PublicKey())
			wk.Destroy()
			if hex.EncodeToString(creds[:]) != rec.WithdrawalCredentials {
				t.Fatalf("slot %d: withdrawal key's credentials 0x%x, record 0x%s", v.Slot, creds, rec.WithdrawalCredentials)
			}
		}
	}
	t.Run("mnemonic sealed with the key", func(t *testing.T) {
		f := newFixture(t)
		req := blsRequest("wk", 3)
		req.KeysPerMnemonic = 3 // indices 0, 1, 2 of one mnemonic
		res := generate(t, f, req)
		check(t, f, res, envelope.NewLocalOpener(f.identity), nil)
	})
	t.Run("mnemonic sealed separately", func(t *testing.T) {
		mid, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, WithMnemonicSealer(envelope.NewLocalSealer(mid.Recipient())))
		res := generate(t, f, blsRequest("wk-sep", 2))
		check(t, f, res, nil, envelope.NewLocalOpener(mid))
		rec, _ := f.store.Get(t.Context(), res.Validators[0].Pubkey)
		if _, err := f.cust.OpenWithdrawalKey(t.Context(), envelope.NewLocalOpener(f.identity), nil, rec); !errors.Is(err, ErrRequest) {
			t.Fatalf("separate mnemonic without its opener: %v", err)
		}
		if _, err := f.cust.OpenWithdrawalKey(t.Context(), nil, envelope.NewLocalOpener(f.identity), rec); err == nil {
			t.Fatal("the secret's identity opened the separately sealed mnemonic")
		}
	})
}
