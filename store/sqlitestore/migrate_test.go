package sqlitestore

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/storetest"
)

// TestMigrateV1File opens a copy of testdata/v1.db, written by the schema
// version 1 code (see testdata/SOURCE), and checks that every record reads
// back as it was written, that the file is now version 2, and that the new
// columns and statuses can be written.
func TestMigrateV1File(t *testing.T) {
	raw, err := os.ReadFile("testdata/v1.db")
	if err != nil {
		t.Fatal(err)
	}
	var want []*store.Record
	b, err := os.ReadFile("testdata/v1.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != 5 {
		t.Fatalf("v1.json holds %d records, want 5", len(want))
	}
	for _, w := range want {
		if string(w.DepositData) == "null" { // json.Marshal of a nil RawMessage
			w.DepositData = nil
		}
	}
	path := filepath.Join(t.TempDir(), "ethkeygen.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if v := userVersion(t, path); v != 1 {
		t.Fatalf("testdata/v1.db has user_version %d, want 1", v)
	}
	s := open(t, path)
	checkMigrated(t, s, want)
	if got, err := s.CreateRequest(t.Context(), store.Request{ID: "req-v1", Fingerprint: "other", CreatedAt: time.Now()}); err == nil || got.Fingerprint != "sha256:v1" || got.Count != 5 {
		t.Errorf("request of the v1 file: %+v, %v", got, err)
	}
	s.Close()
	if v := userVersion(t, path); v != schemaVersion {
		t.Errorf("user_version after Open = %d, want %d", v, schemaVersion)
	}
	// Reopening a migrated file changes nothing.
	checkMigrated(t, open(t, path), want)
}

// TestMigrateV1Schema builds a version 1 file from schemaV1 (the SQL the
// version 1 code ran) with rows in every v1 status, and migrates it.
func TestMigrateV1Schema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ethkeygen.db")
	o, err := buildOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := openDB(path, o, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(schemaV1 + "PRAGMA user_version = 1;"); err != nil {
		t.Fatal(err)
	}
	var want []*store.Record
	for i, st := range []store.Status{store.StatusGenerated, store.StatusExported, store.StatusDeposited, store.StatusRetired} {
		r := storetest.NewRecord(t, "req", i)
		r.Status = st
		r.Origin, r.Auth, r.AuthKeyID = "", nil, "" // v1 has none
		if i == 1 {
			r.SealedMnemonic = nil
		}
		var mnemonic any
		if r.SealedMnemonic != nil {
			mnemonic = r.SealedMnemonic
		}
		if _, err := db.Exec(`INSERT INTO records (`+recordColumnsV1+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Pubkey, r.RequestID, r.Slot, r.Network, r.WithdrawalCredentials, string(r.DepositData),
			r.Sealed, mnemonic, string(r.Status), store.FormatTime(r.CreatedAt),
			r.Provenance.Version, r.Provenance.BuildHash); err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
	}
	// The v1 CHECK refuses the new statuses: that is why the table is rebuilt.
	bad := storetest.NewRecord(t, "req", 9)
	if _, err := db.Exec(`INSERT INTO records (`+recordColumnsV1+`) VALUES (?, 'req', 9, '', '', '', x'00', NULL, 'imported', ?, '', '')`,
		bad.Pubkey, store.FormatTime(bad.CreatedAt)); err == nil || !strings.Contains(err.Error(), "CHECK") {
		t.Fatalf("v1 schema accepted status imported: %v", err)
	}
	db.Close()

	s := open(t, path)
	checkMigrated(t, s, want)
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name IN ('records_v2')`).Scan(&n); err != nil || n != 0 {
		t.Errorf("temporary table left behind: %d, %v", n, err)
	}
	var check string
	if err := s.db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check = %q, %v", check, err)
	}
}

// TestMigrateConcurrentOpen opens one v1 file from several goroutines at
// once: one migrates, all succeed, no row is lost.
func TestMigrateConcurrentOpen(t *testing.T) {
	raw, err := os.ReadFile("testdata/v1.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ethkeygen.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	done := make(chan struct{})
	for i := range stores {
		go func() {
			stores[i], errs[i] = Open(t.Context(), path)
			done <- struct{}{}
		}()
	}
	for range stores {
		<-done
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	c := 0
	for _, err := range stores[n-1].Query(t.Context(), store.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		c++
	}
	if c != 5 {
		t.Errorf("%d records after concurrent migration, want 5", c)
	}
}

func userVersion(t *testing.T, path string) int {
	t.Helper()
	o, _ := buildOptions(nil)
	db, err := openDB(path, o, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkMigrated checks that s holds exactly want (v1 records: no origin, no
// authenticator) and accepts records of schema 2.
func checkMigrated(t *testing.T, s *Store, want []*store.Record) {
	t.Helper()
	for _, w := range want {
		got, err := s.Get(t.Context(), w.Pubkey)
		if err != nil {
			t.Fatalf("Get(%s) after migration: %v", w.Pubkey, err)
		}
		if !jsonSame(t, got.DepositData, w.DepositData) {
			t.Errorf("record %s: deposit data %s, want %s", w.Pubkey, got.DepositData, w.DepositData)
		}
		g, e := *got, *w
		g.DepositData, e.DepositData = nil, nil
		e.CreatedAt = e.CreatedAt.UTC().Truncate(time.Millisecond)
		if len(e.SealedMnemonic) == 0 {
			e.SealedMnemonic = nil
		}
		if !reflect.DeepEqual(g, e) {
			t.Errorf("record %s after migration:\n got %+v\nwant %+v", w.Pubkey, g, e)
		}
		if got.Origin != "" || got.Auth != nil || got.AuthKeyID != "" {
			t.Errorf("record %s: migrated with origin %q auth %x key %q", w.Pubkey, got.Origin, got.Auth, got.AuthKeyID)
		}
	}
	n := 0
	for _, err := range s.Query(t.Context(), store.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	// Status queries still use the rebuilt index.
	for _, st := range []store.Status{store.StatusGenerated, store.StatusExported} {
		for r, err := range s.Query(t.Context(), store.Filter{Status: st}) {
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != st {
				t.Errorf("Query(%s) yielded status %s", st, r.Status)
			}
		}
	}
	// Schema 2 writes: origin, auth, the new statuses, a new slot of the old request.
	r := storetest.NewRecord(t, want[0].RequestID, 100+n)
	r.Status, r.Origin = store.StatusImported, store.OriginImported
	r2 := storetest.NewRecord(t, want[0].RequestID, 101+n)
	r2.Status = store.StatusExitSigned
	if err := s.Put(t.Context(), r, r2); err != nil {
		t.Fatalf("Put after migration: %v", err)
	}
	for _, w := range []*store.Record{r, r2} {
		got, err := s.Get(t.Context(), w.Pubkey)
		if err != nil || got.Origin != w.Origin || !reflect.DeepEqual(got.Auth, w.Auth) || got.AuthKeyID != w.AuthKeyID || got.Status != w.Status {
			t.Errorf("schema 2 record after migration: %+v, %v", got, err)
		}
	}
	// The old (request, slot) uniqueness survived the rebuild.
	dup := storetest.NewRecord(t, want[0].RequestID, want[0].Slot)
	if err := s.Put(t.Context(), dup); err == nil {
		t.Error("Put of a taken slot succeeded after migration")
	}
}

func jsonSame(t *testing.T, a, b []byte) bool {
	t.Helper()
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// TestMigrateLedgerV1 builds a version 1 ledger from ledgerSchemaV1 (the
// SQL the version 1 code ran) holding a sealed export and its key, opens
// it, and checks that it is now version 2, that the export and key read
// back as written (an export of generated deposits: TopUpGwei 0), that a
// top-up export can be stored, and that reopening changes nothing.
func TestMigrateLedgerV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ethkeygen.db.ledger")
	o, err := buildOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := openDB(path, o, false)
	if err != nil {
		t.Fatal(err)
	}
	pk := storetest.Pubkey(t)
	raw, _ := hex.DecodeString(pk)
	wc := "01" + strings.Repeat("0", 22) + "8943545177806ed17b9f23f0a21ee5948ecaa776"
	created := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	if _, err := db.Exec(ledgerSchemaV1 + "PRAGMA application_id = " + strconv.Itoa(int(ledgerAppID)) + "; PRAGMA user_version = 1;"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO exports (id, created_at, network, withdrawal_credentials, claims, sealed, created_by,
		candidate_count, member_count) VALUES ('exp-v1', ?, 'hoodi', ?, 1, 1, 'v1@host', 1, 1)`, store.FormatTime(created), wc); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"export_candidates", "export_members"} {
		if _, err := db.Exec(`INSERT INTO `+table+` (export_id, chunk, pubkeys) VALUES ('exp-v1', 0, ?)`, raw); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO keys (pubkey, export_id, state, signer, version, updated_at, changed_by, note, interchange) VALUES (?, 'exp-v1', 'exported', '', 1, ?, 'v1@host', '', NULL)`,
		pk, store.FormatTime(created)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// A read-only open never migrates: it names the need.
	if _, err := OpenLedger(t.Context(), path, ReadOnly()); !errors.Is(err, ErrNeedsMigration) {
		t.Fatalf("read-only open of a v1 ledger: %v, want ErrNeedsMigration", err)
	}

	want := &store.Export{ID: "exp-v1", CreatedAt: created, Network: "hoodi", WithdrawalCredentials: wc,
		Candidates: []string{pk}, Claims: 1, Sealed: true, Members: []string{pk}, By: "v1@host"}
	check := func(l *Ledger) {
		t.Helper()
		got, err := l.GetExport(t.Context(), "exp-v1")
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("export of the v1 ledger: %+v, %v; want %+v", got, err, want)
		}
		if ks, err := l.GetKey(t.Context(), pk); err != nil || ks.ExportID != "exp-v1" || ks.State != store.StatusExported {
			t.Fatalf("key of the v1 ledger: %+v, %v", ks, err)
		}
	}
	l := openLedger(t, path)
	check(l)
	tu := storetest.NewTopUpExport(t, []string{pk}, 5_000_000_000)
	if _, err := l.CreateExport(t.Context(), tu); err != nil {
		t.Fatal(err)
	}
	if got, err := l.GetExport(t.Context(), tu.ID); err != nil || got.TopUpGwei != 5_000_000_000 {
		t.Fatalf("top-up export in the migrated ledger: %+v, %v", got, err)
	}
	l.Close()
	if v := userVersion(t, path); v != ledgerVersion || ledgerVersion != 2 {
		t.Errorf("ledger user_version after OpenLedger = %d, want %d (2)", v, ledgerVersion)
	}
	check(openLedger(t, path))
}
