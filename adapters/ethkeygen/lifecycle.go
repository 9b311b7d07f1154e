package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/backend"
	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/store"
)

// lifecycle is a command's view of custody: the record store, the ledger
// and the custodian over them. Every status rule is custody's; this only
// opens and closes.
type lifecycle struct {
	records store.Store
	ledger  store.Ledger
	cust    *custody.Custodian
}

func (l *lifecycle) Close() {
	if l.ledger != nil {
		l.ledger.Close()
	}
	if l.records != nil {
		l.records.Close()
	}
}

// openLifecycle opens the store, its ledger and the generator's
// verification key. st, when given, is an already open record store.
func openLifecycle(ctx context.Context, bf *backendFlags, st store.Store) (*lifecycle, error) {
	l := &lifecycle{records: st}
	var err error
	if l.records == nil {
		// A command given no store writes no record: it never creates a
		// store and reads the records file read-only.
		bf.cfg.ReadOnlyRecords = true
		if l.records, err = bf.openExistingStore(ctx); err != nil {
			return nil, err
		}
	}
	if l.ledger, err = bf.cfg.OpenLedger(ctx); err != nil {
		l.Close()
		return nil, fmt.Errorf("opening the ledger %s: %w", bf.cfg.LedgerLocation(), err)
	}
	l.ledger = crashLedger(l.ledger) // crash tests (tests/crash): no-op unless built with -tags crashtest
	v, err := bf.cfg.GeneratorVerifier(ctx)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("the generator's verification key: %w", err)
	}
	if err := custody.CheckPin(ctx, l.ledger, custody.PinGeneratorKey, v.KeyID(), false); err != nil {
		l.Close()
		return nil, err
	}
	if l.cust, err = custody.NewCustodian(l.records, l.ledger, v, custody.WithActor(backend.Actor())); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// targetFlags are the withdrawal target the operator states at export.
type targetFlags struct {
	address                     string
	compounding, allowLowercase bool
	bls                         bool
}

func (t *targetFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.address, "withdrawal-address", "", "the execution address every deposit must pay (0x01; 0x02 with --compounding); EIP-55 checksummed")
	fs.BoolVar(&t.compounding, "compounding", false, "the deposits must have 0x02 compounding credentials to --withdrawal-address")
	fs.BoolVar(&t.allowLowercase, "allow-lowercase-address", false, "accept a withdrawal address without an EIP-55 checksum")
	fs.BoolVar(&t.bls, "bls-withdrawal", false, "the deposits must have 0x00 BLS withdrawal credentials (instead of --withdrawal-address)")
}

// request fills the stated target of an export request.
func (t *targetFlags) request(r *custody.ExportRequest) error {
	switch {
	case t.bls && t.address != "":
		return usagef("give --withdrawal-address or --bls-withdrawal, not both")
	case t.bls:
		r.BLSWithdrawal = true
		return nil
	case t.address == "":
		return usagef("state where the deposits pay: --withdrawal-address 0x... (or --bls-withdrawal for 0x00 credentials)")
	}
	a, err := depositdata.ParseAddress(t.address, t.allowLowercase)
	if err != nil {
		return usageError{fmt.Errorf("--withdrawal-address: %w", err)}
	}
	r.Withdrawal = custody.Withdrawal{Address: &a, Compounding: t.compounding}
	return nil
}

// writeExport writes an export's Launchpad file into dir under the name
// the export fixes. The bytes are a pure function of the export, so a file
// of that name with the same bytes is the same export written before; one
// with other bytes is refused.
func writeExport(dir string, res *custody.ExportResult) (string, bool, error) {
	if res.File == nil {
		return "", false, nil
	}
	path := filepath.Join(dir, res.FileName)
	if have, err := os.ReadFile(path); err == nil {
		if bytes.Equal(have, res.File) {
			return path, false, nil
		}
		return "", false, fmt.Errorf("%s exists with other content: it is not export %s (move it away, or write the export elsewhere with --out)", path, res.Export.ID)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := fsutil.EnsurePrivateDir(dir); err != nil {
		return "", false, fmt.Errorf("output directory: %w", err)
	}
	if err := fsutil.WriteFileAtomic(path, res.File, 0o644); err != nil {
		return "", false, fmt.Errorf("writing deposit data: %w", err)
	}
	return path, true, nil
}

// printSummary tells the operator where the money of an export goes.
func printSummary(e *env, res *custody.ExportResult) {
	for _, s := range res.Summary {
		to := "withdrawal credentials 0x" + s.WithdrawalCredentials
		if s.WithdrawalCredentials == store.BLSTarget {
			to = "BLS (0x00) withdrawal credentials, each its own"
		}
		fmt.Fprintf(e.stderr, "  %d deposit(s) of %d gwei to %s\n", s.Count, s.AmountGwei, to)
	}
}

// checkOutDir refuses an output directory that cannot be written, before
// anything is claimed, and changes nothing: the directory is made only when
// a file is written into it.
func checkOutDir(dir string) error {
	d := dir
	for {
		st, err := os.Stat(d)
		switch {
		case err == nil && !st.IsDir():
			return fmt.Errorf("output directory: %s is not a directory", d)
		case err == nil:
			if err := syscall.Access(d, 0o3); err != nil { // W_OK|X_OK
				return fmt.Errorf("output directory: cannot write to %s", d)
			}
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("output directory: %w", err)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return fmt.Errorf("output directory: %s cannot be made", dir)
		}
		d = parent
	}
}
