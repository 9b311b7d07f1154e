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
