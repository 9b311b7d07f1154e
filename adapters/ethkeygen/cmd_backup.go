package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	iofs "io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", as the embedded store uses

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/internal/backend"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
)

func init() {
	register(command{"backup", "copy the embedded store consistently (safe while it is in use) and check that the identity opens the copy", runBackup})
}

func runBackup(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "backup", "--out DIR [--db F] [--identity-file F]",
		"Writes DIR/<db name>-<unix>.db, a consistent copy of the embedded store made by SQLite's VACUUM INTO (one read\n"+
			"transaction: safe while generate or decrypt use the store), and the same for the ledger file <db>.ledger if there\n"+
			"is one. Then it checks the copy: SQLite's integrity check, every record readable, and one sealed secret opened\n"+
			"with the identity (all of them with --check-all). Keep the copies and the identity (identity.txt in the key\n"+
			"directory) in different places: the copy is useless without the identity, and either one alone reveals no key.\n"+
			"DynamoDB tables are backed up with DynamoDB point-in-time recovery or AWS Backup, not here.")
	out := fs.String("out", "", "directory for the copies, created 0700 if missing (required)")
	db := fs.String("db", backend.DefaultDBPath, "embedded store file to copy")
	keyDir := fs.String("key-dir", "", "directory of the local identity (default $ETHKEYGEN_HOME or ~/.config/ethkeygen)")
	identity := fs.String("identity-file", "", "local age identity that opens the store's secrets (default: the one in --key-dir)")
	checkAll := fs.Bool("check-all", false, "open every sealed secret of the copy, not one (a KDF run per keystore-format secret)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "out"); err != nil {
		return err
	}
	if _, err := os.Stat(*db); errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("no store at %s: name it with --db", *db)
	}
	cfg := backend.Config{DBPath: *db, KeyDir: *keyDir}
	opener, err := cfg.Opener(ctx, false, *identity)
	if err != nil {
		return err
	}
	verifier, err := cfg.GeneratorVerifier(ctx)
	if err != nil {
		return err
	}
	od, err := openOutDir(*out)
	if err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	ts := time.Now().Unix()
	var written []string
	ok := false
	defer func() {
		if !ok { // an incomplete or unchecked backup is not left to be trusted
			for _, p := range written {
				os.Remove(p)
			}
			od.discard()
		}
	}()
	for _, src := range []string{*db, *db + ".ledger"} {
		if _, err := os.Stat(src); errors.Is(err, iofs.ErrNotExist) && src != *db {
			continue // no ledger (yet)
		}
		dst := filepath.Join(*out, fmt.Sprintf("%s-%d%s", strings.TrimSuffix(filepath.Base(*db), ".db"), ts, copySuffix(src, *db)))
		if err := vacuumInto(ctx, src, dst); err != nil {
			return fmt.Errorf("copying %s: %w", src, err)
		}
		written = append(written, dst)
	}
	n, opened, err := checkBackup(ctx, written[0], opener, verifier, *checkAll)
	if err != nil {
		return fmt.Errorf("the copy does not check: %w", err)
	}
	ok = true
	for _, p := range written {
		fmt.Fprintln(e.stdout, p)
	}
	fmt.Fprintf(e.stderr, "backup of %s: %s, %d opened with the identity; keep the identity apart from the copies\n",
		*db, plural(n, "record"), opened)
	return nil
}

// copySuffix is ".db" for the store and ".db.ledger" for its ledger.
func copySuffix(src, db string) string {
	if src == db {
		return ".db"
	}
	return ".db.ledger"
}

// vacuumInto writes a consistent copy of the SQLite file src to dst (which
// must not exist), in one read transaction of a read-only connection.
func vacuumInto(ctx context.Context, src, dst string) error {
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	dsn := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}).String()
	conn, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s exists", dst)
	}
	// The copy is made 0600 before SQLite writes into it.
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	if _, err := conn.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		os.Remove(dst)
		return err
	}
	return nil
}

// checkBackup checks the copy at path: SQLite's integrity check, every
// record read, and the sealed secret of one record (or of all) opened and
// checked against its record. It returns the records and secrets counted.
func checkBackup(ctx context.Context, path string, opener envelope.Opener, verifier provenance.Verifier, all bool) (records, opened int, err error) {
	if err := integrityCheck(ctx, path); err != nil {
		return 0, 0, err
	}
	st, err := sqlitestore.Open(ctx, path)
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	var recs []*store.Record
	for rec, err := range st.Query(ctx, store.Filter{}) {
		if err != nil {
			return 0, 0, err
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return 0, 0, nil
	}
	sample := recs[:1]
	if all {
		sample = recs
	}
	secrets, err := custody.NewOpener(st, opener, verifier).OpenRecords(ctx, sample, custody.DefaultMaxMemory, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("the identity does not open it: %w", err)
	}
	for _, s := range secrets {
		s.Destroy()
	}
	return len(recs), len(secrets), nil
}

func integrityCheck(ctx context.Context, path string) error {
	conn, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer conn.Close()
	var res string
	if err := conn.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return err
	}
	if res != "ok" {
		return fmt.Errorf("SQLite integrity check: %s", res)
	}
	return nil
}
