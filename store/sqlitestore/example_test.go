package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "ethkeygen")
	defer os.RemoveAll(dir)

	s, err := sqlitestore.Open(ctx, filepath.Join(dir, "validators.db"))
	if err != nil {
		panic(err)
	}
	defer s.Close()

	rec := &store.Record{
		Pubkey:    strings.Repeat("ab", 48),
		RequestID: "req-1",
		Slot:      0,
		Network:   "mainnet",
		Sealed:    []byte("sealed by package envelope"),
		Status:    store.StatusGenerated,
		CreatedAt: time.Now(),
	}
	if err := s.Put(ctx, rec); err != nil {
		panic(err)
	}
	// Nothing is overwritten.
	err = s.Put(ctx, rec)
	fmt.Println(errors.Is(err, store.ErrExists))

	// Status changes are compare-and-set.
	fmt.Println(s.SetStatus(ctx, rec.Pubkey, store.StatusGenerated, store.StatusExported))
	err = s.SetStatus(ctx, rec.Pubkey, store.StatusGenerated, store.StatusExported)
	fmt.Println(errors.Is(err, store.ErrConflict))

	for r, err := range s.Query(ctx, store.Filter{RequestID: "req-1"}) {
		if err != nil {
			panic(err)
		}
		fmt.Println(r.Slot, r.Status)
	}
	// Output:
	// true
	// <nil>
	// true
	// 0 exported
}

// ExampleOpenLedger shows the ledger's export protocol: create the export,
// claim its keys, read the count, seal with it.
func ExampleOpenLedger() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "ethkeygen")
	defer os.RemoveAll(dir)

	db := filepath.Join(dir, "ethkeygen.db")
	l, err := sqlitestore.OpenLedger(ctx, sqlitestore.LedgerPath(db))
	if err != nil {
		panic(err)
	}
	defer l.Close()

	a, b, c := strings.Repeat("aa", 48), strings.Repeat("bb", 48), strings.Repeat("cc", 48)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, id := range []string{"exp-1", "exp-2"} {
		_, err := l.CreateExport(ctx, &store.Export{ID: id, CreatedAt: now, Network: "hoodi",
			WithdrawalCredentials: "01" + strings.Repeat("0", 62), Candidates: []string{a, b, c}})
		if err != nil {
			panic(err)
		}
	}
	// Each key goes to one export only.
	got, _ := l.ClaimForExport(ctx, "exp-1", []string{a, b}, now, "alice@host")
	fmt.Println("exp-1 claimed", len(got))
	got, _ = l.ClaimForExport(ctx, "exp-2", []string{a, b, c}, now, "bob@host")
	fmt.Println("exp-2 claimed", len(got))

	// Seal with the count read: a stale count conflicts.
	e, _ := l.GetExport(ctx, "exp-1")
	fmt.Println(errors.Is(l.SealExport(ctx, "exp-1", []string{a, b}, e.Claims-1), store.ErrConflict))
	fmt.Println(l.SealExport(ctx, "exp-1", []string{a, b}, e.Claims))
	// Sealed: no more claims.
	_, err = l.ClaimForExport(ctx, "exp-1", []string{c}, now, "alice@host")
	fmt.Println(errors.Is(err, store.ErrConflict))

	ks, _ := l.GetKey(ctx, c)
	fmt.Println(ks.ExportID, ks.State, ks.Version)

	// Pins keep the first value.
	v, _ := l.Pin(ctx, "recipient", "age1first")
	fmt.Println(v)
	v, _ = l.Pin(ctx, "recipient", "age1second")
	fmt.Println(v)
	// Output:
	// exp-1 claimed 2
	// exp-2 claimed 1
	// true
	// <nil>
	// true
	// exp-2 exported 1
	// age1first
	// age1first
}
