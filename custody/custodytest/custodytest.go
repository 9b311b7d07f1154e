// Package custodytest sets up the pipeline on the embedded default for
// tests of the packages built on it: a SQLite store in a temporary
// directory, a fresh age identity, a Generator sealing to it and an Opener.
package custodytest

import (
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
)

// Embedded is a pipeline on a temporary SQLite store and a local identity.
type Embedded struct {
	DBPath    string // the store file, for a second opener (a CLI run)
	Store     *sqlitestore.Store
	Identity  *age.X25519Identity
	Generator *custody.Generator
	Opener    *custody.Opener
}

// NewEmbedded builds it; everything is closed when the test ends.
func NewEmbedded(t testing.TB, opts ...custody.Option) *Embedded {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ethkeygen.db")
	st, err := sqlitestore.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	gen, err := custody.NewGenerator(st, envelope.NewLocalSealer(id.Recipient()), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &Embedded{DBPath: path, Store: st, Identity: id, Generator: gen, Opener: custody.NewOpener(st, envelope.NewLocalOpener(id))}
}
