// Package sqlitestore is the embedded [store.Store] and [store.Ledger]: one
// SQLite file each, in WAL mode, written through modernc.org/sqlite (pure
// Go, no cgo).
//
// Several processes (or several Store or Ledger values in one process) may
// open the same file at once. Writes take the database's write lock at the
// start of the transaction (BEGIN IMMEDIATE) and wait for it up to the busy
// timeout (default 10s); a lock not obtained in time yields an error wrapping
// [store.ErrUnavailable]. Put is one transaction: all records or none.
//
// # Records file
//
// The schema is versioned with PRAGMA user_version; Open creates it in a new
// file, migrates a version 1 file to version 2, and refuses a file whose
// version is newer than this package knows (or that is a ledger file).
//
//	records(pubkey TEXT PRIMARY KEY, request_id, slot, ..., origin, auth, auth_key_id, UNIQUE(request_id, slot))
//	requests(id TEXT PRIMARY KEY, fingerprint, count, created_at)
//
// The UNIQUE(request_id, slot) index also serves queries by request; a second
// index on (status, created_at, pubkey) serves queries by status.
//
// Version 2 added the columns origin, auth and auth_key_id and lets status
// hold every [store.Status]. SQLite cannot alter a CHECK constraint, so the
// migration rebuilds the records table (create, copy, drop, rename, index) in
// the same IMMEDIATE transaction that reads the version: a file is migrated
// once, by one process, entirely or not at all. Migrated rows have origin "",
// no authenticator and auth_key_id "": the store does not invent provenance
// it never had.
//
// # Ledger file
//
// [OpenLedger] opens the ledger, a separate file (by convention the records
// path with ".ledger" appended), marked with its own PRAGMA application_id so
// that neither Open nor OpenLedger accepts the other's file:
//
//	keys(pubkey PRIMARY KEY, export_id, state, signer, version, updated_at, changed_by, note, interchange,
//	     assigned_to)
//	exports(id PRIMARY KEY, created_at, network, withdrawal_credentials, claims, sealed, created_by,
//	        candidate_count, member_count)
//	export_candidates(export_id, chunk, pubkeys)   PRIMARY KEY (export_id, chunk)
//	export_members(export_id, chunk, pubkeys)      the same, written by SealExport
//	pins(name PRIMARY KEY, value)
//
// The candidate and member lists are stored in chunks of 4000 pubkeys
// packed as binary, 48 bytes each, in file order (a 100,000-key export is 25
// rows); reads check them against the counts in the header row.
//
// The ledger schema is versioned with PRAGMA user_version too: version 2
// added keys.assigned_to. OpenLedger migrates a version 1 file in the
// IMMEDIATE transaction that reads its version (ALTER TABLE ADD COLUMN,
// default empty), and refuses a newer one.
//
// Every ledger write is one IMMEDIATE transaction: CreateExport writes the
// header and all candidates; ClaimForExport checks that the export exists and
// is not sealed, inserts the key rows that are absent and adds the number
// inserted to claims; SealExport is a compare-and-set on (sealed = 0 AND
// claims = ?) that writes the members with it; PutKey is a compare-and-set on
// version (and export_id, which never changes); Pin inserts if absent, then
// reads. Nothing in this package writes the ledger file from the records
// store, so replacing, restoring or rewriting the records file leaves the
// ledger as it was.
//
// # Security
//
// A new file is created with mode 0600, and SQLite gives its -wal and -shm
// files the same mode. An existing file's mode is left as it is. The records
// file holds only sealed secrets; the ledger holds no secret at all.
// synchronous=FULL: a write that returned nil survives a power loss.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/store"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// schemaVersion is the PRAGMA user_version this package writes and reads.
// Version 1 files are migrated to version 2 by Open (see migrateV1).
const schemaVersion = 2

// schemaV1 is the schema of version 1, kept so that the migration can be
// tested against files made by it.
const schemaV1 = `
CREATE TABLE requests (
	id          TEXT    NOT NULL PRIMARY KEY,
	fingerprint TEXT    NOT NULL,
	count       INTEGER NOT NULL,
	created_at  TEXT    NOT NULL
) STRICT;

CREATE TABLE records (
	pubkey                 TEXT    NOT NULL PRIMARY KEY,
	request_id             TEXT    NOT NULL,
	slot                   INTEGER NOT NULL CHECK (slot >= 0),
	network                TEXT    NOT NULL,
	withdrawal_credentials TEXT    NOT NULL,
	deposit_data           TEXT    NOT NULL,
	sealed                 BLOB    NOT NULL,
	sealed_mnemonic        BLOB,
	status                 TEXT    NOT NULL CHECK (status IN ('generated', 'exported', 'deposited', 'retired')),
	created_at             TEXT    NOT NULL,
	prov_version           TEXT    NOT NULL,
	prov_build_hash        TEXT    NOT NULL,
	UNIQUE (request_id, slot)
) STRICT, WITHOUT ROWID;

CREATE INDEX records_by_status ON records (status, created_at, pubkey);
`

// recordsV2 is the records table of version 2 (as created in a new file; the
// migration creates it under a temporary name). It adds origin, auth and
// auth_key_id and lets status hold every store.Status.
const recordsV2 = `(
	pubkey                 TEXT    NOT NULL PRIMARY KEY,
	request_id             TEXT    NOT NULL,
	slot                   INTEGER NOT NULL CHECK (slot >= 0),
	network                TEXT    NOT NULL,
	withdrawal_credentials TEXT    NOT NULL,
	deposit_data           TEXT    NOT NULL,
	sealed                 BLOB    NOT NULL,
	sealed_mnemonic        BLOB,
	status                 TEXT    NOT NULL CHECK (status IN ('generated', 'imported', 'exported', 'deposited', 'exit-signed', 'retired')),
	created_at             TEXT    NOT NULL,
	prov_version           TEXT    NOT NULL,
	prov_build_hash        TEXT    NOT NULL,
	origin                 TEXT    NOT NULL DEFAULT '' CHECK (origin IN ('', 'generated', 'imported')),
	auth                   BLOB,
	auth_key_id            TEXT    NOT NULL DEFAULT '',
	UNIQUE (request_id, slot)
) STRICT, WITHOUT ROWID`

const schemaV2 = `
CREATE TABLE requests (
	id          TEXT    NOT NULL PRIMARY KEY,
	fingerprint TEXT    NOT NULL,
	count       INTEGER NOT NULL,
	created_at  TEXT    NOT NULL
) STRICT;

CREATE TABLE records ` + recordsV2 + `;

CREATE INDEX records_by_status ON records (status, created_at, pubkey);
`

// recordColumnsV1 are the columns of a version 1 records table.
const recordColumnsV1 = `pubkey, request_id, slot, network, withdrawal_credentials, deposit_data,
	sealed, sealed_mnemonic, status, created_at, prov_version, prov_build_hash`

// migrateV1 rebuilds the records table with the version 2 definition (SQLite
// cannot alter a CHECK constraint): copy into a new table, drop the old one
// and its index, rename. Rows of version 1 get origin "", no auth and
// auth_key_id "". It runs inside Open's transaction.
const migrateV1 = `
CREATE TABLE records_v2 ` + recordsV2 + `;
INSERT INTO records_v2 (` + recordColumnsV1 + `) SELECT ` + recordColumnsV1 + ` FROM records;
DROP INDEX records_by_status;
DROP TABLE records;
ALTER TABLE records_v2 RENAME TO records;
CREATE INDEX records_by_status ON records (status, created_at, pubkey);
`

const recordColumns = recordColumnsV1 + `, origin, auth, auth_key_id`

// DefaultPageSize is the number of rows Query reads per statement.
const DefaultPageSize = 100

// DefaultBusyTimeout is how long an operation waits for a lock held by
// another connection or process before failing with store.ErrUnavailable.
const DefaultBusyTimeout = 10 * time.Second

// Option configures Open.
type Option interface{ apply(*options) error }

type options struct {
	pageSize    int
	busyTimeout time.Duration
	pageSet     bool
	busySet     bool
	mustExist   bool
	readOnly    bool
}

type optionFunc func(*options) error

func (f optionFunc) apply(o *options) error { return f(o) }

// WithPageSize sets how many rows Query reads per statement (default
// DefaultPageSize). Tests use a small value to exercise pagination.
func WithPageSize(n int) Option {
	return optionFunc(func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: page size %d < 1", store.ErrInvalid, n)
		}
		if o.pageSet && o.pageSize != n {
			return fmt.Errorf("%w: conflicting page sizes %d and %d", store.ErrInvalid, o.pageSize, n)
		}
		o.pageSize, o.pageSet = n, true
		return nil
	})
}

// WithBusyTimeout sets how long an operation waits for a lock held by
// another connection (default DefaultBusyTimeout). It is rounded down to the
// millisecond.
func WithBusyTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) error {
		if d < time.Millisecond {
			return fmt.Errorf("%w: busy timeout %v < 1ms", store.ErrInvalid, d)
		}
		if o.busySet && o.busyTimeout != d {
			return fmt.Errorf("%w: conflicting busy timeouts %v and %v", store.ErrInvalid, o.busyTimeout, d)
		}
		o.busyTimeout, o.busySet = d, true
		return nil
	})
}

// ReadOnly opens an existing store file for reading only (the commands
// that never write records: list, export-deposits, decrypt and the
// operations after the deposit): nothing is created, migrated or written,
// a store file the user may only read is enough, and every write method
// fails with store.ErrReadOnly. The file is opened with SQLite's mode=ro
// and query_only; a WAL file in a directory the user cannot write (a
// read-only mount, a restored backup) is read as an immutable database
// when no -wal file beside it holds uncommitted pages.
func ReadOnly() Option {
	return optionFunc(func(o *options) error {
		o.readOnly, o.mustExist = true, true
		return nil
	})
}

// Store is the SQLite implementation of store.Store.
type Store struct {
	db       *sql.DB
	path     string
	pageSize int
	readOnly bool
	closed   atomic.Bool
	ident    os.FileInfo // the file opened, to tell a deleted or replaced one
}

var _ store.Store = (*Store)(nil)

// openDB creates the file at path (mode 0600) if it does not exist and opens
// it with the connection settings every file of this package uses: WAL,
// synchronous=FULL, BEGIN IMMEDIATE, the busy timeout.
func openDB(path string, o options, immutable bool) (*sql.DB, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty database path", store.ErrInvalid)
	}
	// Create the file ourselves so that it gets mode 0600 whatever the
	// umask (also when it was deleted since the last run); SQLite then
	// gives the -wal and -shm files the same mode. Never through a
	// symlink, and not in a directory or file that another user owns or
	// that group or others can write.
	if o.mustExist {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, errMissing(path, err)
		}
	}
	if o.readOnly {
		f, err := fsutil.OpenTrusted(path, fsutil.Public)
		if err != nil {
			if errors.Is(err, fsutil.ErrUntrusted) {
				return nil, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
			}
			return nil, plainOpenError(path, fmt.Errorf("%w: %w", store.ErrUnavailable, err))
		}
		f.Close()
	} else if _, err := fsutil.PrepareTrustedFile(path, fsutil.Public, 0o600); err != nil {
		if errors.Is(err, fsutil.ErrUntrusted) {
			return nil, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return nil, plainOpenError(path, fmt.Errorf("%w: %w", store.ErrUnavailable, err))
	}

	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(o.busyTimeout.Milliseconds(), 10))
	if o.readOnly {
		q.Set("mode", "ro")
		q.Set("_query_only", "1")
		q.Set("_txlock", "deferred")
		if immutable {
			q.Set("immutable", "1")
		}
	} else {
		q.Set("_journal_mode", "WAL")
		q.Set("_synchronous", "FULL")
		q.Set("_txlock", "immediate")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", store.ErrUnavailable, path, err)
	}
	// An absolute file: URI, so that any character in the path is escaped.
	dsn := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", store.ErrUnavailable, path, err)
	}
	return db, nil
}

func buildOptions(opts []Option) (options, error) {
	o := options{pageSize: DefaultPageSize, busyTimeout: DefaultBusyTimeout}
	for _, opt := range opts {
		if err := opt.apply(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// Open opens the database file at path, creating it (mode 0600) and its
// schema if needed, and migrating a file of an older schema version.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.readOnly {
		return openReadOnly(ctx, path, o)
	}
	db, err := openDB(path, o, false)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: path, pageSize: o.pageSize}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, plainOpenError(path, err)
	}
	if s.ident, err = os.Stat(path); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: open %s: %w", store.ErrUnavailable, path, err)
	}
	return s, nil
}

// openReadOnly opens an existing store for reading (ReadOnly).
func openReadOnly(ctx context.Context, path string, o options) (*Store, error) {
	s := &Store{path: path, pageSize: o.pageSize, readOnly: true}
	db, err := openReadOnlyDB(ctx, path, o, func(db *sql.DB) error {
		s.db = db
		return s.checkSchema(ctx)
	})
	if err != nil {
		return nil, err
	}
	s.db = db
	if s.ident, err = os.Stat(path); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: open %s: %w", store.ErrUnavailable, path, err)
	}
	return s, nil
}

// openReadOnlyDB opens the file at path read-only and runs check on it.
// SQLite reads a WAL database read-only only if it can open or create the
// -shm file beside it; where it cannot (the directory is not the user's to
// write) and no -wal file holds pages that are not in the database file
// yet, the file is complete on its own and is opened as immutable.
func openReadOnlyDB(ctx context.Context, path string, o options, check func(*sql.DB) error) (*sql.DB, error) {
	try := func(immutable bool) (*sql.DB, error) {
		db, err := openDB(path, o, immutable)
		if err != nil {
			return nil, err
		}
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, err
		}
		if err := check(db); err != nil {
			db.Close()
			return nil, err
		}
		return db, nil
	}
	db, err := try(false)
	if err == nil {
		return db, nil
	}
	var se *sqlite.Error
	if !errors.As(err, &se) || (se.Code()&0xff != sqlite3.SQLITE_CANTOPEN && se.Code()&0xff != sqlite3.SQLITE_READONLY) {
		return nil, plainOpenError(path, err)
	}
	if fi, werr := os.Stat(path + "-wal"); werr == nil && fi.Size() > 0 {
		return nil, plainOpenError(path, err) // pages in the WAL: only a writer's connection may fold them in
	}
	if db, err = try(true); err != nil {
		return nil, plainOpenError(path, err)
	}
	return db, nil
}

// checkSchema checks, without writing, that the file is a store of this
// build's schema version (a read-only store is never migrated).
func (s *Store) checkSchema(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	var app int32
	if err := s.db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&app); err != nil {
		return err
	}
	switch {
	case app == ledgerAppID:
		return fmt.Errorf("store: %s is a ledger file, not a records store", s.path)
	case v == schemaVersion:
		return nil
	case v > schemaVersion:
		return fmt.Errorf("store: %s: schema version %d is newer than this build supports (%d)", s.path, v, schemaVersion)
	case v == 0:
		return fmt.Errorf("store: %s: not an ethkeygen store (no schema)", s.path)
	}
	return fmt.Errorf("store: %s: schema version %d needs migrating, which a read-only command does not do: run generate (or import) on it once", s.path, v)
}

// ErrReplaced reports a store file that was deleted or replaced while it
// was open: what was written went to a file that no longer is at the path.
var ErrReplaced = errors.New("sqlitestore: the store file was deleted or replaced while in use")

// CheckIdentity reports whether the file at the store's path is still the
// file this Store opened (not deleted, not replaced by another file) and its
// records are readable. Custody calls it before handing out a file.
func (s *Store) CheckIdentity(ctx context.Context) error {
	now, err := os.Stat(s.path)
	if err != nil || !os.SameFile(now, s.ident) {
		return fmt.Errorf("%w: %s", ErrReplaced, s.path)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&n); err != nil {
		return s.wrap("check", err)
	}
	return nil
}

// migrate creates the schema in a new file and checks the version of an
// existing one. It runs in an IMMEDIATE transaction, so two processes opening
// a new file at once do not both create the schema.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("open", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return s.wrap("open", err)
	}
	var app int32
	if err := tx.QueryRowContext(ctx, "PRAGMA application_id").Scan(&app); err != nil {
		return s.wrap("open", err)
	}
	if app == ledgerAppID {
		return fmt.Errorf("store: %s is a ledger file, not a records store", s.path)
	}
	switch {
	case v == schemaVersion:
		return nil
	case v > schemaVersion:
		return fmt.Errorf("store: %s: schema version %d is newer than this build supports (%d)", s.path, v, schemaVersion)
	case v == 1:
		return s.migrateFromV1(ctx, tx)
	case v != 0:
		return fmt.Errorf("store: %s: unknown schema version %d", s.path, v)
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return s.wrap("open", err)
	}
	if n != 0 {
		return fmt.Errorf("store: %s: not an ethkeygen store (user_version 0 but %d schema objects)", s.path, n)
	}
	if _, err := tx.ExecContext(ctx, schemaV2); err != nil {
		return s.wrap("create schema", err)
	}
	if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(schemaVersion)); err != nil {
		return s.wrap("create schema", err)
	}
	if err := tx.Commit(); err != nil {
		return s.wrap("create schema", err)
	}
	return nil
}

// migrateFromV1 migrates a version 1 file to version 2 in tx and commits:
// all of it or nothing. It checks that every row was copied.
func (s *Store) migrateFromV1(ctx context.Context, tx *sql.Tx) error {
	var before, after int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM records").Scan(&before); err != nil {
		return s.wrap("migrate schema 1 to 2", err)
	}
	if _, err := tx.ExecContext(ctx, migrateV1); err != nil {
		return s.wrap("migrate schema 1 to 2", err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM records").Scan(&after); err != nil {
		return s.wrap("migrate schema 1 to 2", err)
	}
	if before != after {
		return fmt.Errorf("store: %s: migrate schema 1 to 2: %d records before, %d after (nothing changed)", s.path, before, after)
	}
	if _, err := tx.ExecContext(ctx, "PRAGMA user_version = 2"); err != nil {
		return s.wrap("migrate schema 1 to 2", err)
	}
	if err := tx.Commit(); err != nil {
		return s.wrap("migrate schema 1 to 2", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	s.closed.Store(true)
	if err := s.db.Close(); err != nil {
		return s.wrap("close", err)
	}
	return nil
}

// CreateRequest implements store.Store.
func (s *Store) CreateRequest(ctx context.Context, r store.Request) (store.Request, error) {
	if s.readOnly {
		return store.Request{}, s.errReadOnly()
	}
	if err := r.Validate(); err != nil {
		return store.Request{}, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return store.Request{}, s.wrap("create request", err)
	}
	defer tx.Rollback()
	var got store.Request
	var created string
	err = tx.QueryRowContext(ctx, `SELECT id, fingerprint, count, created_at FROM requests WHERE id = ?`, r.ID).
		Scan(&got.ID, &got.Fingerprint, &got.Count, &created)
	switch {
	case err == nil:
		if got.CreatedAt, err = store.ParseTime(created); err != nil {
			return store.Request{}, fmt.Errorf("store: request %q: bad created_at %q: %w", r.ID, created, err)
		}
		return got, fmt.Errorf("%w: request %q", store.ErrExists, r.ID)
	case !errors.Is(err, sql.ErrNoRows):
		return store.Request{}, s.wrap("create request", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO requests (id, fingerprint, count, created_at) VALUES (?, ?, ?, ?)`,
		r.ID, r.Fingerprint, r.Count, store.FormatTime(r.CreatedAt))
	if err != nil {
		if isConstraint(err) {
			return store.Request{}, fmt.Errorf("%w: request %q", store.ErrExists, r.ID)
		}
		return store.Request{}, s.wrap("create request", err)
	}
	if err := tx.Commit(); err != nil {
		return store.Request{}, s.wrap("create request", err)
	}
	r.CreatedAt = r.CreatedAt.UTC().Truncate(time.Millisecond)
	return r, nil
}

// Put implements store.Store. All records are written in one transaction.
func (s *Store) Put(ctx context.Context, recs ...*store.Record) error {
	if s.readOnly {
		return s.errReadOnly()
	}
	if err := store.ValidateBatch(recs); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("put", err)
	}
	defer tx.Rollback()
	for _, r := range recs {
		var other string
		err := tx.QueryRowContext(ctx, `SELECT pubkey FROM records WHERE pubkey = ? OR (request_id = ? AND slot = ?) LIMIT 1`,
			r.Pubkey, r.RequestID, r.Slot).Scan(&other)
		switch {
		case err == nil && other == r.Pubkey:
			return fmt.Errorf("%w: pubkey %s", store.ErrExists, r.Pubkey)
		case err == nil:
			return fmt.Errorf("%w: request %q slot %d (held by pubkey %s)", store.ErrExists, r.RequestID, r.Slot, other)
		case !errors.Is(err, sql.ErrNoRows):
			return s.wrap("put", err)
		}
		var mnemonic any
		if len(r.SealedMnemonic) > 0 {
			mnemonic = r.SealedMnemonic
		}
		var auth any
		if len(r.Auth) > 0 {
			auth = r.Auth
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO records (`+recordColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Pubkey, r.RequestID, r.Slot, r.Network, r.WithdrawalCredentials, string(r.DepositData),
			r.Sealed, mnemonic, string(r.Status), store.FormatTime(r.CreatedAt),
			r.Provenance.Version, r.Provenance.BuildHash, r.Origin, auth, r.AuthKeyID)
		if err != nil {
			if isConstraint(err) {
				return fmt.Errorf("%w: pubkey %s or request %q slot %d: %v", store.ErrExists, r.Pubkey, r.RequestID, r.Slot, err)
			}
			return s.wrap("put", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.wrap("put", err)
	}
	return nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, pubkey string) (*store.Record, error) {
	if !store.ValidPubkey(pubkey) {
		return nil, fmt.Errorf("%w: pubkey %q is not %d lowercase hex characters", store.ErrInvalid, pubkey, store.PubkeyLen)
	}
	return s.getOne(ctx, "get", fmt.Sprintf("pubkey %s", pubkey),
		`SELECT `+recordColumns+` FROM records WHERE pubkey = ?`, pubkey)
}

// GetSlot implements store.Store. It reads through the UNIQUE(request_id,
// slot) index.
func (s *Store) GetSlot(ctx context.Context, requestID string, slot int) (*store.Record, error) {
	if err := store.ValidateSlot(requestID, slot); err != nil {
		return nil, err
	}
	return s.getOne(ctx, "get slot", fmt.Sprintf("request %q slot %d", requestID, slot),
		`SELECT `+recordColumns+` FROM records WHERE request_id = ? AND slot = ?`, requestID, slot)
}

// getOne runs a query selecting recordColumns of at most one row; no row
// yields an error wrapping store.ErrNotFound that names what.
func (s *Store) getOne(ctx context.Context, op, what, query string, args ...any) (*store.Record, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, s.wrap(op, err)
		}
		return nil, fmt.Errorf("%w: %s", store.ErrNotFound, what)
	}
	r, err := scanRecord(rows)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Query implements store.Store. It reads WithPageSize rows per statement,
// continuing after the last key read (keyset pagination), so no statement
// stays open while the caller's loop body runs. The zero Filter yields
// records in Pubkey order.
func (s *Store) Query(ctx context.Context, f store.Filter) iter.Seq2[*store.Record, error] {
	if err := store.ValidateFilter(f); err != nil {
		return store.ErrSeq(err)
	}
	return func(yield func(*store.Record, error) bool) {
		var last *store.Record
		for {
			page, err := s.page(ctx, f, last)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, r := range page {
				if !yield(r, nil) {
					return
				}
			}
			if len(page) < s.pageSize {
				return
			}
			last = page[len(page)-1]
		}
	}
}

// page reads the page of records matching f that follows last (nil: the
// first page).
func (s *Store) page(ctx context.Context, f store.Filter, last *store.Record) ([]*store.Record, error) {
	var (
		where []string
		args  []any
		order string
	)
	switch {
	case f.RequestID != "":
		where = append(where, "request_id = ?")
		args = append(args, f.RequestID)
		if f.Status != "" {
			where = append(where, "status = ?")
			args = append(args, string(f.Status))
		}
		if last != nil {
			where = append(where, "slot > ?")
			args = append(args, last.Slot)
		}
		order = "slot"
	case f.Status != "":
		where = append(where, "status = ?")
		args = append(args, string(f.Status))
		if last != nil {
			where = append(where, "(created_at, pubkey) > (?, ?)")
			args = append(args, store.FormatTime(last.CreatedAt), last.Pubkey)
		}
		order = "created_at, pubkey"
	default:
		if last != nil {
			where = append(where, "pubkey > ?")
			args = append(args, last.Pubkey)
		}
		order = "pubkey"
	}
	q := `SELECT ` + recordColumns + ` FROM records`
	for i, w := range where {
		if i == 0 {
			q += " WHERE " + w
		} else {
			q += " AND " + w
		}
	}
	q += " ORDER BY " + order + " LIMIT ?"
	args = append(args, s.pageSize)

	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap("query", err)
	}
	page, err := scanAll(rows, scanRecord)
	if err != nil {
		return nil, s.wrap("query", err)
	}
	return page, nil
}

// scanAll reads every row with scan and closes rows.
func scanAll[T any](rows *sql.Rows, scan func(*sql.Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// SetStatus implements store.Store with a conditional UPDATE.
func (s *Store) SetStatus(ctx context.Context, pubkey string, from, to store.Status) error {
	if s.readOnly {
		return s.errReadOnly()
	}
	if err := store.ValidateTransition(pubkey, from, to); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("set status", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE records SET status = ? WHERE pubkey = ? AND status = ?`,
		string(to), pubkey, string(from))
	if err != nil {
		return s.wrap("set status", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap("set status", err)
	}
	if n == 1 {
		if err := tx.Commit(); err != nil {
			return s.wrap("set status", err)
		}
		return nil
	}
	var cur string
	err = tx.QueryRowContext(ctx, `SELECT status FROM records WHERE pubkey = ?`, pubkey).Scan(&cur)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: pubkey %s", store.ErrNotFound, pubkey)
	case err != nil:
		return s.wrap("set status", err)
	}
	return fmt.Errorf("%w: pubkey %s has status %q, not %q", store.ErrConflict, pubkey, cur, from)
}

func scanRecord(rows *sql.Rows) (*store.Record, error) {
	var (
		r        store.Record
		deposit  string
		mnemonic []byte
		status   string
		created  string
		auth     []byte
	)
	err := rows.Scan(&r.Pubkey, &r.RequestID, &r.Slot, &r.Network, &r.WithdrawalCredentials, &deposit,
		&r.Sealed, &mnemonic, &status, &created, &r.Provenance.Version, &r.Provenance.BuildHash,
		&r.Origin, &auth, &r.AuthKeyID)
	if err != nil {
		return nil, fmt.Errorf("store: read record: %w", err)
	}
	if deposit != "" {
		r.DepositData = []byte(deposit)
	}
	if len(mnemonic) > 0 {
		r.SealedMnemonic = mnemonic
	}
	if len(auth) > 0 {
		r.Auth = auth
	}
	r.Status = store.Status(status)
	if r.CreatedAt, err = store.ParseTime(created); err != nil {
		return nil, fmt.Errorf("store: record %s: bad created_at %q: %w", r.Pubkey, created, err)
	}
	return &r, nil
}

// isConstraint reports whether err is an SQLite constraint violation.
func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

// wrap annotates err with the operation and the file, and marks lock and I/O
// failures as store.ErrUnavailable. Context errors are returned wrapped as
// they are, so errors.Is(err, context.Canceled) holds.
func (s *Store) errReadOnly() error {
	return fmt.Errorf("%w: %s", store.ErrReadOnly, s.path)
}

func (s *Store) wrap(op string, err error) error { return wrapErr(op, s.path, s.closed.Load(), err) }

// wrapErr is wrap for a file at path, closed telling whether its handle has
// been closed.
func wrapErr(op, path string, closed bool, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("store: %s %s: %w", op, path, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%w: %s %s: database is locked by another connection or process (waited for the busy timeout): %w",
				store.ErrUnavailable, op, path, err)
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY,
			sqlite3.SQLITE_PERM, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("%w: %s %s: %w", store.ErrUnavailable, op, path, err)
		}
		return fmt.Errorf("store: %s %s: %w", op, path, err)
	}
	if closed {
		return fmt.Errorf("%w: %s %s: store is closed: %w", store.ErrUnavailable, op, path, err)
	}
	if errors.Is(err, sql.ErrConnDone) {
		return fmt.Errorf("%w: %s %s: %w", store.ErrUnavailable, op, path, err)
	}
	return fmt.Errorf("store: %s %s: %w", op, path, err)
}
