package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ethkeygen/ethkeygen/store"
)

// ledgerAppID is the PRAGMA application_id of a ledger file ("ETKL"), so that
// a ledger file is never taken for a records file or the other way round.
const ledgerAppID int32 = 0x45544b4c

// ledgerVersion is the PRAGMA user_version of the ledger schema. Version 1
// files are migrated to version 2 by OpenLedger (ledgerMigrateV1).
const ledgerVersion = 2

const ledgerSchemaV1 = `
CREATE TABLE keys (
	pubkey      TEXT    NOT NULL PRIMARY KEY,
	export_id   TEXT    NOT NULL,
	state       TEXT    NOT NULL CHECK (state IN ('exported', 'deposited', 'exit-signed', 'retired', 'imported')),
	signer      TEXT    NOT NULL,
	version     INTEGER NOT NULL CHECK (version >= 1),
	updated_at  TEXT    NOT NULL,
	changed_by  TEXT    NOT NULL,
	note        TEXT    NOT NULL,
	interchange BLOB
) STRICT, WITHOUT ROWID;

CREATE TABLE exports (
	id                     TEXT    NOT NULL PRIMARY KEY,
	created_at             TEXT    NOT NULL,
	network                TEXT    NOT NULL,
	withdrawal_credentials TEXT    NOT NULL,
	claims                 INTEGER NOT NULL CHECK (claims >= 0),
	sealed                 INTEGER NOT NULL CHECK (sealed IN (0, 1)),
	created_by             TEXT    NOT NULL,
	candidate_count        INTEGER NOT NULL CHECK (candidate_count >= 0),
	member_count           INTEGER NOT NULL CHECK (member_count >= 0)
) STRICT, WITHOUT ROWID;

CREATE INDEX exports_by_time ON exports (created_at, id);

CREATE TABLE export_candidates (
	export_id TEXT    NOT NULL REFERENCES exports (id),
	chunk     INTEGER NOT NULL CHECK (chunk >= 0),
	pubkeys   BLOB    NOT NULL CHECK (length(pubkeys) > 0 AND length(pubkeys) % 48 = 0),
	PRIMARY KEY (export_id, chunk)
) STRICT, WITHOUT ROWID;

CREATE TABLE export_members (
	export_id TEXT    NOT NULL REFERENCES exports (id),
	chunk     INTEGER NOT NULL CHECK (chunk >= 0),
	pubkeys   BLOB    NOT NULL CHECK (length(pubkeys) > 0 AND length(pubkeys) % 48 = 0),
	PRIMARY KEY (export_id, chunk)
) STRICT, WITHOUT ROWID;

CREATE TABLE pins (
	name  TEXT NOT NULL PRIMARY KEY,
	value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
`

// ledgerMigrateV1 makes a version 1 ledger (or the freshly created version 1
// schema, so that there is one definition of the tables) version 2:
// exports gain top_up_gwei, 0 for every existing export (each holds its
// members' generated deposits), and keys gain assigned_to, the assignee of
// a key not yet live on it (store.KeyState.AssignedTo), empty for every
// existing key.
const ledgerMigrateV1 = `
ALTER TABLE exports ADD COLUMN top_up_gwei INTEGER NOT NULL DEFAULT 0 CHECK (top_up_gwei >= 0);
ALTER TABLE keys ADD COLUMN assigned_to TEXT NOT NULL DEFAULT '';
`

const keyColumns = `pubkey, export_id, state, signer, version, updated_at, changed_by, note, interchange, assigned_to`

// chunkPubkeys is how many pubkeys one row of export_candidates or
// export_members holds, packed 48 bytes each (192,000 bytes). Lists are
// stored in chunks rather than a row per pubkey: a 100,000-key export is 25
// rows, not 100,000 rows and index entries.
const chunkPubkeys = 4000

const pubkeyBytes = store.PubkeyLen / 2

// Ledger is the SQLite implementation of store.Ledger: its own file, apart
// from the records file, with the same connection settings (WAL,
// synchronous=FULL, BEGIN IMMEDIATE, busy timeout) and error mapping. Every
// method that writes is one transaction.
type Ledger struct {
	db       *sql.DB
	path     string
	pageSize int
	closed   atomic.Bool
	readOnly bool
}

var _ store.Ledger = (*Ledger)(nil)

// LedgerSuffix is appended to the records file's path to name the ledger
// file by default.
const LedgerSuffix = ".ledger"

// LedgerPath returns the default ledger file of the records file at path:
// path + LedgerSuffix (ethkeygen.db -> ethkeygen.db.ledger).
func LedgerPath(path string) string { return path + LedgerSuffix }

// OpenLedger opens the ledger file at path, creating it (mode 0600) and its
// schema if needed, and migrates a version 1 ledger (adding top-up exports).
// It refuses a file that is not a ledger (a records file, a foreign
// database) and one of a newer ledger schema. The options are
// those of Open; WithPageSize sets how many rows Exports and Keys read per
// statement.
func OpenLedger(ctx context.Context, path string, opts ...Option) (*Ledger, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.readOnly {
		l := &Ledger{path: path, pageSize: o.pageSize, readOnly: true}
		db, err := openReadOnlyDB(ctx, path, o, func(db *sql.DB) error {
			l.db = db
			return l.checkSchema(ctx)
		})
		if err != nil {
			return nil, err
		}
		l.db = db
		return l, nil
	}
	db, err := openDB(path, o, false)
	if err != nil {
		return nil, err
	}
	l := &Ledger{db: db, path: path, pageSize: o.pageSize}
	if err := l.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return l, nil
}

func (l *Ledger) wrap(op string, err error) error { return wrapErr(op, l.path, l.closed.Load(), err) }

// migrate creates the schema in a new file and checks an existing one, in an
// IMMEDIATE transaction.
func (l *Ledger) migrate(ctx context.Context) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return l.wrap("open ledger", err)
	}
	defer tx.Rollback()
	var app int32
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA application_id").Scan(&app); err != nil {
		return l.wrap("open ledger", err)
	}
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return l.wrap("open ledger", err)
	}
	if app == ledgerAppID {
		switch {
		case v == ledgerVersion:
			return nil
		case v > ledgerVersion:
			return fmt.Errorf("store: %s: ledger schema version %d is newer than this build supports (%d)", l.path, v, ledgerVersion)
		case v == 1:
			if _, err := tx.ExecContext(ctx, ledgerMigrateV1); err != nil {
				return l.wrap("migrate ledger schema 1 to 2", err)
			}
			if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(ledgerVersion)); err != nil {
				return l.wrap("migrate ledger schema 1 to 2", err)
			}
			if err := tx.Commit(); err != nil {
				return l.wrap("migrate ledger schema 1 to 2", err)
			}
			return nil
		default:
			return fmt.Errorf("store: %s: unknown ledger schema version %d", l.path, v)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return l.wrap("open ledger", err)
	}
	if app != 0 || v != 0 || n != 0 {
		return fmt.Errorf("store: %s: not an ethkeygen ledger (application_id %#x, user_version %d, %d schema objects)", l.path, app, v, n)
	}
	if _, err := tx.ExecContext(ctx, ledgerSchemaV1+ledgerMigrateV1); err != nil {
		return l.wrap("create ledger schema", err)
	}
	if _, err := tx.ExecContext(ctx, "PRAGMA application_id = "+strconv.Itoa(int(ledgerAppID))); err != nil {
		return l.wrap("create ledger schema", err)
	}
	if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(ledgerVersion)); err != nil {
		return l.wrap("create ledger schema", err)
	}
	if err := tx.Commit(); err != nil {
		return l.wrap("create ledger schema", err)
	}
	return nil
}

// checkSchema checks, without writing, that the file is a ledger of this
// build's version (ReadOnly: a read-only ledger is never created or
// migrated).
func (l *Ledger) checkSchema(ctx context.Context) error {
	var app int32
	var v int
	if err := l.db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&app); err != nil {
		return err
	}
	if err := l.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	switch {
	case app != ledgerAppID:
		return fmt.Errorf("store: %s: not an ethkeygen ledger (application_id %#x)", l.path, app)
	case v < ledgerVersion:
		return fmt.Errorf("%w: %s: ledger schema version %d, this build's is %d", ErrNeedsMigration, l.path, v, ledgerVersion)
	case v != ledgerVersion:
		return fmt.Errorf("store: %s: ledger schema version %d is newer than this build supports (%d)", l.path, v, ledgerVersion)
	}
	return nil
}

// ErrNeedsMigration reports a file of an older schema opened ReadOnly: a
// read-only open never migrates; open it for writing once.
var ErrNeedsMigration = errors.New("sqlitestore: the file needs migrating to this build's schema")

func (l *Ledger) errReadOnly() error { return fmt.Errorf("%w: %s", store.ErrReadOnly, l.path) }

// Close closes the ledger file.
func (l *Ledger) Close() error {
	l.closed.Store(true)
	if err := l.db.Close(); err != nil {
		return l.wrap("close", err)
	}
	return nil
}

// insertList writes pubkeys into table (export_candidates or export_members)
// for exportID, in order, packed in chunks of chunkPubkeys.
func insertList(ctx context.Context, tx *sql.Tx, table, exportID string, pubkeys []string) error {
	for c := 0; c*chunkPubkeys < len(pubkeys); c++ {
		part := pubkeys[c*chunkPubkeys : min((c+1)*chunkPubkeys, len(pubkeys))]
		buf := make([]byte, 0, len(part)*pubkeyBytes)
		for _, pk := range part {
			var err error
			if buf, err = hex.AppendDecode(buf, []byte(pk)); err != nil {
				return fmt.Errorf("%w: pubkey %q: %v", store.ErrInvalid, pk, err)
			}
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+table+" (export_id, chunk, pubkeys) VALUES (?, ?, ?)", exportID, c, buf); err != nil {
			return err
		}
	}
	return nil
}

// CreateExport implements store.Ledger: the header and its candidates in one
// transaction.
func (l *Ledger) CreateExport(ctx context.Context, e *store.Export) (*store.Export, error) {
	if l.readOnly {
		return nil, l.errReadOnly()
	}
	if err := store.ValidateNewExport(e); err != nil {
		return nil, err
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, l.wrap("create export", err)
	}
	defer tx.Rollback()
	got, err := readExport(ctx, tx, e.ID)
	switch {
	case err == nil:
		return got, fmt.Errorf("%w: export %s", store.ErrExists, e.ID)
	case !errors.Is(err, store.ErrNotFound):
		return nil, l.wrapRead("create export", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO exports (id, created_at, network, withdrawal_credentials, claims, sealed, created_by,
		candidate_count, member_count, top_up_gwei) VALUES (?, ?, ?, ?, 0, 0, ?, ?, 0, ?)`,
		e.ID, store.FormatTime(e.CreatedAt), e.Network, e.WithdrawalCredentials, e.By, len(e.Candidates), int64(e.TopUpGwei))
	if err != nil {
		return nil, l.wrap("create export", err)
	}
	if err := insertList(ctx, tx, "export_candidates", e.ID, e.Candidates); err != nil {
		return nil, l.wrap("create export", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, l.wrap("create export", err)
	}
	out := *e
	out.CreatedAt = e.CreatedAt.UTC().Truncate(time.Millisecond)
	out.Candidates = append([]string(nil), e.Candidates...)
	out.Claims, out.Sealed, out.Members = 0, false, nil
	return &out, nil
}

// wrapRead wraps an error of readExport: the sentinel errors and decoding
// errors it made itself pass through.
func (l *Ledger) wrapRead(op string, err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, errDamaged) {
		return err
	}
	return l.wrap(op, err)
}

// errDamaged marks a row that does not decode.
var errDamaged = errors.New("store: damaged ledger row")

// querier is what readExport needs of a *sql.Tx or *sql.DB.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// readExport reads the export id: its header, candidates and, if sealed,
// members. Candidates are written with the header and members with the seal
// in one transaction each, and neither changes afterwards, so the reads need
// no common snapshot.
func readExport(ctx context.Context, q querier, id string) (*store.Export, error) {
	var (
		e                store.Export
		created          string
		sealed           int
		nCands, nMembers int
		topUp            int64
	)
	err := q.QueryRowContext(ctx, `SELECT id, created_at, network, withdrawal_credentials, claims, sealed, created_by,
		candidate_count, member_count, top_up_gwei FROM exports WHERE id = ?`, id).
		Scan(&e.ID, &created, &e.Network, &e.WithdrawalCredentials, &e.Claims, &sealed, &e.By, &nCands, &nMembers, &topUp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: export %s", store.ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	if e.CreatedAt, err = store.ParseTime(created); err != nil {
		return nil, fmt.Errorf("%w: export %s: bad created_at %q: %v", errDamaged, id, created, err)
	}
	e.Sealed = sealed == 1
	if topUp < 0 {
		return nil, fmt.Errorf("%w: export %s: negative top_up_gwei %d", errDamaged, id, topUp)
	}
	e.TopUpGwei = uint64(topUp)
	if e.Candidates, err = readList(ctx, q, "export_candidates", id, nCands); err != nil {
		return nil, err
	}
	if e.Sealed {
		if e.Members, err = readList(ctx, q, "export_members", id, nMembers); err != nil {
			return nil, err
		}
	}
	return &e, nil
}

func readList(ctx context.Context, q querier, table, id string, count int) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT chunk, pubkeys FROM `+table+` WHERE export_id = ? ORDER BY chunk`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	if count > 0 {
		out = make([]string, 0, count)
	}
	next := 0
	for rows.Next() {
		var (
			chunk int
			buf   []byte
		)
		if err := rows.Scan(&chunk, &buf); err != nil {
			return nil, err
		}
		if chunk != next || len(buf)%pubkeyBytes != 0 {
			return nil, fmt.Errorf("%w: export %s: %s chunk %d out of order or torn", errDamaged, id, table, chunk)
		}
		next++
		for i := 0; i < len(buf); i += pubkeyBytes {
			out = append(out, hex.EncodeToString(buf[i:i+pubkeyBytes]))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) != count {
		return nil, fmt.Errorf("%w: export %s: %s holds %d pubkeys, the header says %d", errDamaged, id, table, len(out), count)
	}
	return out, nil
}

// GetExport implements store.Ledger.
func (l *Ledger) GetExport(ctx context.Context, id string) (*store.Export, error) {
	if err := store.ValidateExportID(id); err != nil {
		return nil, err
	}
	e, err := readExport(ctx, l.db, id)
	if err != nil {
		return nil, l.wrapRead("get export", err)
	}
	return e, nil
}

// Exports implements store.Ledger, reading WithPageSize headers per
// statement in (created_at, id) order.
func (l *Ledger) Exports(ctx context.Context) iter.Seq2[*store.Export, error] {
	return func(yield func(*store.Export, error) bool) {
		lastTime, lastID := "", ""
		for {
			ids, times, err := l.exportPage(ctx, lastTime, lastID)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, id := range ids {
				e, err := readExport(ctx, l.db, id)
				if err != nil {
					yield(nil, l.wrapRead("exports", err))
					return
				}
				if !yield(e, nil) {
					return
				}
			}
			if len(ids) < l.pageSize {
				return
			}
			lastTime, lastID = times[len(times)-1], ids[len(ids)-1]
		}
	}
}

func (l *Ledger) exportPage(ctx context.Context, lastTime, lastID string) (ids, times []string, err error) {
	rows, err := l.db.QueryContext(ctx, `SELECT id, created_at FROM exports WHERE (created_at, id) > (?, ?)
		ORDER BY created_at, id LIMIT ?`, lastTime, lastID, l.pageSize)
	if err != nil {
		return nil, nil, l.wrap("exports", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, t string
		if err := rows.Scan(&id, &t); err != nil {
			return nil, nil, l.wrap("exports", err)
		}
		ids, times = append(ids, id), append(times, t)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, l.wrap("exports", err)
	}
	return ids, times, nil
}

// ClaimForExport implements store.Ledger in one transaction: check that the
// export exists and is not sealed, insert the key rows that are absent, add
// the number inserted to claims.
func (l *Ledger) ClaimForExport(ctx context.Context, exportID string, pubkeys []string, at time.Time, by string) ([]string, error) {
	if l.readOnly {
		return nil, l.errReadOnly()
	}
	if err := store.ValidateClaim(exportID, pubkeys, at); err != nil {
		return nil, err
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, l.wrap("claim for export", err)
	}
	defer tx.Rollback()
	var (
		sealed int
		topUp  int64
	)
	err = tx.QueryRowContext(ctx, `SELECT sealed, top_up_gwei FROM exports WHERE id = ?`, exportID).Scan(&sealed, &topUp)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("%w: export %s", store.ErrNotFound, exportID)
	case err != nil:
		return nil, l.wrap("claim for export", err)
	case topUp != 0:
		return nil, fmt.Errorf("%w: export %s is a top-up export: it claims no keys", store.ErrInvalid, exportID)
	case sealed != 0:
		return nil, fmt.Errorf("%w: export %s is sealed", store.ErrConflict, exportID)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO keys (`+keyColumns+`) VALUES (?, ?, ?, '', 1, ?, ?, '', NULL, '')
		ON CONFLICT (pubkey) DO NOTHING`)
	if err != nil {
		return nil, l.wrap("claim for export", err)
	}
	defer stmt.Close()
	updated := store.FormatTime(at)
	var claimed []string
	for _, pk := range pubkeys {
		res, err := stmt.ExecContext(ctx, pk, exportID, string(store.StatusExported), updated, by)
		if err != nil {
			return nil, l.wrap("claim for export", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, l.wrap("claim for export", err)
		}
		if n == 1 {
			claimed = append(claimed, pk)
		}
	}
	if len(claimed) > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE exports SET claims = claims + ? WHERE id = ? AND sealed = 0`,
			len(claimed), exportID); err != nil {
			return nil, l.wrap("claim for export", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, l.wrap("claim for export", err)
	}
	return claimed, nil
}

// SealExport implements store.Ledger in one transaction: a compare-and-set
// on (sealed = 0 AND claims = ?), then the members.
func (l *Ledger) SealExport(ctx context.Context, id string, members []string, claims int) error {
	if l.readOnly {
		return l.errReadOnly()
	}
	if err := store.ValidateExportID(id); err != nil {
		return err
	}
	if err := store.ValidatePubkeys("export "+id+" members", members); err != nil {
		return err
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return l.wrap("seal export", err)
	}
	defer tx.Rollback()
	e, err := readExport(ctx, tx, id)
	if err != nil {
		return l.wrapRead("seal export", err)
	}
	if e.Sealed || e.Claims != claims {
		return fmt.Errorf("%w: export %s: sealed %v with %d claims, want unsealed with %d", store.ErrConflict, id, e.Sealed, e.Claims, claims)
	}
	if err := store.ValidateMembers(id, e.Candidates, members); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE exports SET sealed = 1, member_count = ? WHERE id = ? AND sealed = 0 AND claims = ?`,
		len(members), id, claims)
	if err != nil {
		return l.wrap("seal export", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return l.wrap("seal export", err)
	} else if n != 1 {
		// Cannot happen inside the IMMEDIATE transaction that read the row.
		return fmt.Errorf("%w: export %s changed while sealing", store.ErrConflict, id)
	}
	if err := insertList(ctx, tx, "export_members", id, members); err != nil {
		return l.wrap("seal export", err)
	}
	if err := tx.Commit(); err != nil {
		return l.wrap("seal export", err)
	}
	return nil
}

// GetKey implements store.Ledger.
func (l *Ledger) GetKey(ctx context.Context, pubkey string) (*store.KeyState, error) {
	if !store.ValidPubkey(pubkey) {
		return nil, fmt.Errorf("%w: pubkey %q is not %d lowercase hex characters", store.ErrInvalid, pubkey, store.PubkeyLen)
	}
	rows, err := l.db.QueryContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE pubkey = ?`, pubkey)
	if err != nil {
		return nil, l.wrap("get key", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, l.wrap("get key", err)
		}
		return nil, fmt.Errorf("%w: key %s", store.ErrNotFound, pubkey)
	}
	return scanKey(rows)
}

func scanKey(rows *sql.Rows) (*store.KeyState, error) {
	var (
		ks          store.KeyState
		state       string
		updated     string
		interchange []byte
	)
	if err := rows.Scan(&ks.Pubkey, &ks.ExportID, &state, &ks.Signer, &ks.Version, &updated, &ks.By, &ks.Note, &interchange, &ks.AssignedTo); err != nil {
		return nil, fmt.Errorf("store: read key state: %w", err)
	}
	ks.State = store.Status(state)
	var err error
	if ks.UpdatedAt, err = store.ParseTime(updated); err != nil {
		return nil, fmt.Errorf("%w: key %s: bad updated_at %q: %v", errDamaged, ks.Pubkey, updated, err)
	}
	if len(interchange) > 0 {
		ks.Interchange = interchange
	}
	if err := ks.Validate(); err != nil {
		// Damage, not the caller's invalid argument: no ErrInvalid.
		return nil, fmt.Errorf("%w: key %s: %s", errDamaged, ks.Pubkey, strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": "))
	}
	return &ks, nil
}

// PutKey implements store.Ledger with a compare-and-set on version (and on
// export_id, which never changes) in one transaction.
func (l *Ledger) PutKey(ctx context.Context, ks *store.KeyState) error {
	if l.readOnly {
		return l.errReadOnly()
	}
	if err := ks.Validate(); err != nil {
		return err
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return l.wrap("put key", err)
	}
	defer tx.Rollback()
	var (
		version  int64
		exportID string
	)
	err = tx.QueryRowContext(ctx, `SELECT version, export_id FROM keys WHERE pubkey = ?`, ks.Pubkey).Scan(&version, &exportID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		version = 0
		exportID = ks.ExportID
	case err != nil:
		return l.wrap("put key", err)
	}
	if version != ks.Version-1 {
		return fmt.Errorf("%w: key %s: stored version %d, want %d", store.ErrConflict, ks.Pubkey, version, ks.Version-1)
	}
	if exportID != ks.ExportID {
		return fmt.Errorf("%w: key %s: export id %q cannot change to %q", store.ErrConflict, ks.Pubkey, exportID, ks.ExportID)
	}
	var interchange any
	if len(ks.Interchange) > 0 {
		interchange = ks.Interchange
	}
	args := []any{ks.Pubkey, ks.ExportID, string(ks.State), ks.Signer, ks.Version, store.FormatTime(ks.UpdatedAt), ks.By, ks.Note, interchange, ks.AssignedTo}
	var res sql.Result
	if version == 0 {
		res, err = tx.ExecContext(ctx, `INSERT INTO keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (pubkey) DO NOTHING`, args...)
	} else {
		res, err = tx.ExecContext(ctx, `UPDATE keys SET export_id = ?2, state = ?3, signer = ?4, version = ?5, updated_at = ?6,
			changed_by = ?7, note = ?8, interchange = ?9, assigned_to = ?10 WHERE pubkey = ?1 AND version = ?11 AND export_id = ?2`,
			append(args, version)...)
	}
	if err != nil {
		return l.wrap("put key", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return l.wrap("put key", err)
	} else if n != 1 {
		return fmt.Errorf("%w: key %s changed while writing", store.ErrConflict, ks.Pubkey)
	}
	if err := tx.Commit(); err != nil {
		return l.wrap("put key", err)
	}
	return nil
}

// Keys implements store.Ledger, in pubkey order, WithPageSize rows per
// statement.
func (l *Ledger) Keys(ctx context.Context) iter.Seq2[*store.KeyState, error] {
	return func(yield func(*store.KeyState, error) bool) {
		last := ""
		for {
			page, err := l.keyPage(ctx, last)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, ks := range page {
				if !yield(ks, nil) {
					return
				}
			}
			if len(page) < l.pageSize {
				return
			}
			last = page[len(page)-1].Pubkey
		}
	}
}

func (l *Ledger) keyPage(ctx context.Context, last string) ([]*store.KeyState, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE pubkey > ? ORDER BY pubkey LIMIT ?`, last, l.pageSize)
	if err != nil {
		return nil, l.wrap("keys", err)
	}
	page, err := scanAll(rows, scanKey)
	if err != nil {
		return nil, l.wrap("keys", err)
	}
	return page, nil
}

// Pin implements store.Ledger: insert if absent, then read, in one
// transaction.
func (l *Ledger) Pin(ctx context.Context, name, value string) (string, error) {
	if err := store.ValidatePin(name, value); err != nil {
		return "", err
	}
	if l.readOnly {
		// Read-only: the stored value, or value where none is stored yet
		// (nothing is pinned; a writing command pins it).
		var got string
		err := l.db.QueryRowContext(ctx, `SELECT value FROM pins WHERE name = ?`, name).Scan(&got)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return value, nil
		case err != nil:
			return "", l.wrap("pin", err)
		}
		return got, nil
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return "", l.wrap("pin", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO pins (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
		return "", l.wrap("pin", err)
	}
	var got string
	if err := tx.QueryRowContext(ctx, `SELECT value FROM pins WHERE name = ?`, name).Scan(&got); err != nil {
		return "", l.wrap("pin", err)
	}
	if err := tx.Commit(); err != nil {
		return "", l.wrap("pin", err)
	}
	return got, nil
}
