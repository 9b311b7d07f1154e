package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/ethkeygen/ethkeygen/internal/backend"
	"github.com/ethkeygen/ethkeygen/store"
)

// openExistingStore opens the store for commands that only use what a store
// already holds (list, export-deposits, decrypt): a missing embedded store
// file is an error, never a new empty store.
func (b *backendFlags) openExistingStore(ctx context.Context) (store.Store, error) {
	if b.cfg.DynamoDBTable == "" {
		path := b.cfg.DBPath
		if path == "" {
			path = backend.DefaultDBPath
		}
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no store at %s: generate creates one; name it with --db (or --dynamodb-table)", path)
		} else if err != nil {
			return nil, fmt.Errorf("opening the store: %w", err)
		}
	}
	return b.openStore(ctx)
}
