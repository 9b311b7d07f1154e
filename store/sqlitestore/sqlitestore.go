// Package sqlitestore is the embedded [store.Store]: one SQLite file, in WAL
// mode, written through modernc.org/sqlite (pure Go, no cgo).
//
// Several processes (or several Store values in one process) may open the
// same file at once. Writes take the database's write lock at the start of
// the transaction (BEGIN IMMEDIATE) and wait for it up to the busy timeout
// (default 10s); a lock not obtained in time yields an error wrapping
// [store.ErrUnavailable]. Put is one transaction: all records or none.
//
// The schema is versioned with PRAGMA user_version; Open creates it in a new
// file and refuses a file whose version is newer than this package knows.
//
//	records(pubkey TEXT PRIMARY KEY, request_id, slot, ..., UNIQUE(request_id, slot))
//	requests(id TEXT PRIMARY KEY, fingerprint, count, created_at)
//
// The UNIQUE(request_id, slot) index also serves queries by request; a second
// index on (status, created_at, pubkey) serves queries by status.
//
// # Security
//
// A new file is created with mode 0600, and SQLite gives its -wal and -shm
// files the same mode. An existing file's mode is left as it is. The file
// holds only sealed secrets. synchronous=FULL: a Put that returned nil
// survives a power loss.
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
const schemaVersion = 1

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

const recordColumns = `pubkey, request_id, slot, network, withdrawal_credentials, deposit_data,
	sealed, sealed_mnemonic, status, created_at, prov_version, prov_build_hash`

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

// Store is the SQLite implementation of store.Store.
type Store struct {
	db       *sql.DB
	path     string
	pageSize int
	closed   atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open opens the database file at path, creating it (mode 0600) and its
// schema if needed.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{pageSize: DefaultPageSize, busyTimeout: DefaultBusyTimeout}
	for _, opt := range opts {
		if err := opt.apply(&o); err != nil {
			return nil, err
		}
	}
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
	if _, err := fsutil.PrepareTrustedFile(path, fsutil.Public, 0o600); err != nil {
		if errors.Is(err, fsutil.ErrUntrusted) {
			return nil, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return nil, plainOpenError(path, fmt.Errorf("%w: %w", store.ErrUnavailable, err))
	}

	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(o.busyTimeout.Milliseconds(), 10))
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_txlock", "immediate")
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
	s := &Store{db: db, path: path, pageSize: o.pageSize}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, plainOpenError(path, err)
	}
	return s, nil
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
	switch {
	case v == schemaVersion:
		return nil
	case v > schemaVersion:
		return fmt.Errorf("store: %s: schema version %d is newer than this build supports (%d)", s.path, v, schemaVersion)
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
	if _, err := tx.ExecContext(ctx, schemaV1); err != nil {
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
		_, err = tx.ExecContext(ctx, `INSERT INTO records (`+recordColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Pubkey, r.RequestID, r.Slot, r.Network, r.WithdrawalCredentials, string(r.DepositData),
			r.Sealed, mnemonic, string(r.Status), store.FormatTime(r.CreatedAt),
			r.Provenance.Version, r.Provenance.BuildHash)
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
	defer rows.Close()
	var page []*store.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		page = append(page, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("query", err)
	}
	return page, nil
}

// SetStatus implements store.Store with a conditional UPDATE.
func (s *Store) SetStatus(ctx context.Context, pubkey string, from, to store.Status) error {
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
	)
	err := rows.Scan(&r.Pubkey, &r.RequestID, &r.Slot, &r.Network, &r.WithdrawalCredentials, &deposit,
		&r.Sealed, &mnemonic, &status, &created, &r.Provenance.Version, &r.Provenance.BuildHash)
	if err != nil {
		return nil, fmt.Errorf("store: read record: %w", err)
	}
	if deposit != "" {
		r.DepositData = []byte(deposit)
	}
	if len(mnemonic) > 0 {
		r.SealedMnemonic = mnemonic
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
func (s *Store) wrap(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("store: %s %s: %w", op, s.path, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%w: %s %s: database is locked by another connection or process (waited for the busy timeout): %w",
				store.ErrUnavailable, op, s.path, err)
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY,
			sqlite3.SQLITE_PERM, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("%w: %s %s: %w", store.ErrUnavailable, op, s.path, err)
		}
		return fmt.Errorf("store: %s %s: %w", op, s.path, err)
	}
	if s.closed.Load() {
		return fmt.Errorf("%w: %s %s: store is closed: %w", store.ErrUnavailable, op, s.path, err)
	}
	if errors.Is(err, sql.ErrConnDone) {
		return fmt.Errorf("%w: %s %s: %w", store.ErrUnavailable, op, s.path, err)
	}
	return fmt.Errorf("store: %s %s: %w", op, s.path, err)
}
