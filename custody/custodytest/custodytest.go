// Package custodytest sets up the pipeline on the embedded default for
// tests of the packages built on it: a SQLite store and its ledger in a
// temporary directory, a fresh age identity and generator key, a Generator
// sealing to it, a Custodian and an Opener.
package custodytest

import (
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
)

// Embedded is a pipeline on a temporary SQLite store and a local identity.
type Embedded struct {
	DBPath     string // the store file, for a second opener (a CLI run)
	LedgerPath string
	KeyDir     string // holds generator.key and generator.pub
	Store      *sqlitestore.Store
	Ledger     *sqlitestore.Ledger
	Identity   *age.X25519Identity
	Signer     provenance.Signer
	Verifier   provenance.Verifier
	Generator  *custody.Generator
	Custodian  *custody.Custodian
	Opener     *custody.Opener
}

// NewEmbedded builds it; everything is closed when the test ends.
func NewEmbedded(t testing.TB, opts ...custody.Option) *Embedded {
	t.Helper()
	dir := t.TempDir()
	e := &Embedded{DBPath: filepath.Join(dir, "ethkeygen.db"), LedgerPath: filepath.Join(dir, "ethkeygen.db.ledger"), KeyDir: filepath.Join(dir, "keys")}
	var err error
	if e.Store, err = sqlitestore.Open(t.Context(), e.DBPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Store.Close() })
	if e.Ledger, err = sqlitestore.OpenLedger(t.Context(), e.LedgerPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Ledger.Close() })
	if e.Identity, err = age.GenerateX25519Identity(); err != nil {
		t.Fatal(err)
	}
	if e.Signer, _, err = provenance.LoadOrCreateLocalSigner(e.KeyDir); err != nil {
		t.Fatal(err)
	}
	if e.Verifier, err = provenance.LoadLocalVerifier(e.KeyDir); err != nil {
		t.Fatal(err)
	}
	if e.Generator, err = custody.NewGenerator(e.Store, envelope.NewLocalSealer(e.Identity.Recipient()), e.Signer, opts...); err != nil {
		t.Fatal(err)
	}
	if e.Custodian, err = custody.NewCustodian(e.Store, e.Ledger, e.Verifier, custody.WithActor("test@custodytest")); err != nil {
		t.Fatal(err)
	}
	e.Opener = e.Custodian.Opener(envelope.NewLocalOpener(e.Identity))
	return e
}
