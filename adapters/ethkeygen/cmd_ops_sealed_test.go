package main

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ethkeygen/ethkeygen/beacon"
	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/backend"
	"github.com/ethkeygen/ethkeygen/internal/opscheck"
	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/ops"
	"github.com/ethkeygen/ethkeygen/store/dynamostore"
)

// listEntry is one line of list --json.
type listEntry struct {
	Pubkey                string `json:"pubkey"`
	Status                string `json:"status"`
	RequestID             string `json:"request_id"`
	Slot                  int    `json:"slot"`
	WithdrawalCredentials string `json:"withdrawal_credentials"`
	Signer                string `json:"signer"`
	Origin                string `json:"origin"`
	SlashingHistory       bool   `json:"slashing_history"`
}

func listJSON(t *testing.T, backendArgs ...string) map[string]listEntry {
	t.Helper()
	r := mustRun(t, append([]string{"list", "--json"}, backendArgs...)...)
	out := map[string]listEntry{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e listEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("list: %v: %s", err, l)
		}
		out[e.Pubkey] = e
	}
	return out
}

func pubkeysOf(g generateOutput) []string {
	out := make([]string, len(g.Validators))
	for i, v := range g.Validators {
		out[i] = v.Pubkey
	}
	return out
}

// checkExitFiles reads the exit files of dir (one per validator), checks
// each with ops.VerifyExit against the pubkey it is for, and hands them to
// the independent checker's list.
func checkExitFiles(t *testing.T, o *cliOutputs, dir string, byIndex map[uint64]string, epoch uint64, n depositdata.Network) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(byIndex) {
		t.Fatalf("%d files in %s, want %d", len(entries), dir, len(byIndex))
	}
	re := regexp.MustCompile(`^signed_exit_transaction-(\d+)-\d{10}\.json$`)
	for _, en := range entries {
		m := re.FindStringSubmatch(en.Name())
		if m == nil {
			t.Fatalf("file name %s", en.Name())
		}
		vi, _ := strconv.ParseUint(m[1], 10, 64)
		pk, ok := byIndex[vi]
		if !ok {
			t.Fatalf("exit for validator %d, not asked for", vi)
		}
		b, _ := os.ReadFile(filepath.Join(dir, en.Name()))
		x, err := ops.ParseExit(b)
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := hex.DecodeString(pk)
		if err := ops.VerifyExit(x, pub, n); err != nil || uint64(x.Message.Epoch) != epoch || uint64(x.Message.ValidatorIndex) != vi {
			t.Fatalf("%s: %v (%s)", en.Name(), err, b)
		}
		o.exit(t, b, n, "0x"+pk)
	}
}

// checkBLSChangeFile checks a bls-change file: every entry verifies, names
// the wanted validator index, and its key hashes to that key's recorded
// 0x00 credentials; it goes to the independent checker too.
func checkBLSChangeFile(t *testing.T, o *cliOutputs, path string, want []uint64, creds []string, withMetadata bool, n depositdata.Network) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ops.ParseBLSChanges(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(entries), len(want))
	}
	if _, err := ops.VerifyBLSChangeFile(b, n); err != nil {
		t.Fatal(err)
	}
	for i, en := range entries {
		c := en.Change.BLSToExecutionChange
		if (en.Metadata != nil) != withMetadata {
			t.Fatalf("entry %d metadata %v", i, en.Metadata)
		}
		if uint64(c.ValidatorIndex) != want[i] {
			t.Fatalf("entry %d for validator %d, want %d", i, c.ValidatorIndex, want[i])
		}
		cb, _ := hex.DecodeString(creds[i])
		if err := ops.CheckBLSCredentials([32]byte(cb), c.FromBLSPubKey[:]); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		addr, _ := depositdata.ParseAddress(testAddress, false)
		if [20]byte(c.ToExecutionAddress) != [20]byte(addr) {
			t.Fatalf("entry %d pays %x", i, c.ToExecutionAddress)
		}
	}
	o.blsChanges(t, b, n)
}

// refused runs args and requires exit code, one line on stderr that
// mentions mention, and no file in out.
func refused(t *testing.T, out string, code int, mention string, args ...string) {
	t.Helper()
	r := runCLI(t, args...)
	lines := nonDebugLines(r.stderr)
	if r.code != code || len(lines) != 1 || !strings.Contains(lines[0], mention) {
		t.Fatalf("%v: exit %d (want %d), stderr %q (want one line mentioning %q)", args[:1], r.code, code, r.stderr, mention)
	}
	if entries, err := os.ReadDir(out); err == nil && len(entries) != 0 {
		t.Fatalf("%v left files %v", args[:1], entries)
	}
}

// neverExported stores one validator through custody without the export
// generate makes, as an interrupted generate leaves it.
func neverExported(t *testing.T, db string) string {
	t.Helper()
	ctx := context.Background()
	cfg := backend.Config{DBPath: db}
	st, err := cfg.OpenStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sealer, _, err := cfg.Sealers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := cfg.GeneratorSigner(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g, err := custody.NewGenerator(st, sealer, signer)
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.Generate(ctx, custody.Request{ID: "never-exported", Count: 1, Network: depositdata.Hoodi, Format: custody.FormatRaw}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.Validators[0].Pubkey
}

// TestSealedOpsEmbedded is the life of 0x00 validators on the embedded
// default: generate (raw and keystore secrets, several keys per mnemonic),
// export, bls-change and exit from the sealed records; every file verifies
// (ops and the independent Node checker), the exited keys are exit-signed,
// and every refusal is one line, the right exit code and no file.
func TestSealedOpsEmbedded(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	dbArgs := []string{"--db", db}
	hoodi := depositdata.Hoodi
	// Two keys of one mnemonic (indices 0 and 1), raw; one keystore.
	a := generateJSON(t, "--count", "2", "--keys-per-mnemonic", "2", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir,
		"--secret-format", "raw", "--request-id", "so-a")
	b := generateJSON(t, "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir,
		"--secret-format", "keystore", "--kdf", "pbkdf2", "--request-id", "so-b")
	mustRun(t, "export-deposits", "--request-id", "so-a", "--bls-withdrawal", "--db", db, "--out", filepath.Join(dir, "exp"))
	mustRun(t, "export-deposits", "--request-id", "so-b", "--bls-withdrawal", "--db", db, "--out", filepath.Join(dir, "exp"))
	pa, pb := pubkeysOf(a), pubkeysOf(b)
	recs := listJSON(t, dbArgs...)
	var o cliOutputs

	// BLS changes: the request's keys in slot order, then the keystore
	// one in the beacon API form.
	out := filepath.Join(dir, "bls-a")
	r := mustRun(t, "bls-change", "--request-id", "so-a", "--validator-index", "100,101", "--withdrawal-address", testAddress,
		"--out", out, "--db", db, "--json")
	var res struct {
		File string `json:"file"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || !regexp.MustCompile(`^bls_to_execution_change-\d{10}\.json$`).MatchString(filepath.Base(res.File)) {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	checkBLSChangeFile(t, &o, res.File, []uint64{100, 101}, []string{recs[pa[0]].WithdrawalCredentials, recs[pa[1]].WithdrawalCredentials}, true, hoodi)
	out = filepath.Join(dir, "bls-b")
	mustRun(t, "bls-change", "--pubkey", "0x"+pb[0], "--validator-index", "200", "--withdrawal-address", testAddress,
		"--beacon-api", "--out", out, "--db", db)
	name, _ := onlyFile(t, out, `^bls_to_execution_change-\d{10}\.json$`)
	checkBLSChangeFile(t, &o, filepath.Join(out, name), []uint64{200}, []string{recs[pb[0]].WithdrawalCredentials}, false, hoodi)
	if st := listJSON(t, dbArgs...); st[pa[0]].Status != "exported" {
		t.Fatalf("a BLS change moved the state: %+v", st[pa[0]])
	}

	// Top-up of an exported key (before its exit): a verified deposit file.
	topup := filepath.Join(dir, "topup", "deposit_data-topup.json")
	mustRun(t, "top-up", "--pubkey", pa[0], "--amount-gwei", "1000000000", "--out", topup, "--db", db)
	tb, _ := os.ReadFile(topup)
	if deps, errs := depositdata.VerifyFile(tb, &hoodi); len(errs) != 0 || len(deps) != 1 || deps[0].Pubkey != pa[0] || deps[0].Amount != 1e9 {
		t.Fatalf("top-up file: %v %s", errs, tb)
	}

	// Exits: typed indices, then an indices file; the keys become exit-signed.
	out = filepath.Join(dir, "exit-a")
	mustRun(t, "exit", "--request-id", "so-a", "--validator-index", "100", "--validator-index", "101", "--epoch", "5", "--out", out, "--db", db)
	checkExitFiles(t, &o, out, map[uint64]string{100: pa[0], 101: pa[1]}, 5, hoodi)
	idx := writeFile(t, dir, "indices.txt", "200\n")
	out = filepath.Join(dir, "exit-b")
	mustRun(t, "exit", "--pubkey", pb[0], "--indices-file", idx, "--out", out, "--db", db)
	checkExitFiles(t, &o, out, map[uint64]string{200: pb[0]}, 0, hoodi)
	for pk, e := range listJSON(t, dbArgs...) {
		if e.Status != "exit-signed" {
			t.Fatalf("0x%s is %s after its exit", pk, e.Status)
		}
	}
	// Signing again for an exit-signed key gives the same exit.
	out = filepath.Join(dir, "exit-again")
	mustRun(t, "exit", "--pubkey", pb[0], "--validator-index", "200", "--out", out, "--db", db)
	_, again := onlyFile(t, out, `^signed_exit_transaction-200-\d{10}\.json$`)
	_, first := onlyFile(t, filepath.Join(dir, "exit-b"), `^signed_exit_transaction-200-\d{10}\.json$`)
	if string(again) != string(first) {
		t.Fatal("the same exit signed twice differs")
	}

	// Refusals: one line, the right exit code, no file.
	c := generateJSON(t, "--count", "2", "--chain", "hoodi", "--withdrawal-address", testAddress, "--db", db, "--out", dir,
		"--secret-format", "raw", "--request-id", "so-c")
	pc := pubkeysOf(c)
	never := neverExported(t, db)
	mustRun(t, "retire", "--pubkey", pa[1], "--reason", "test", "--db", db)
	bad := filepath.Join(dir, "refused")
	exitArgs := func(kv ...string) []string {
		return append([]string{"exit", "--out", bad, "--db", db}, kv...)
	}
	blsArgs := func(kv ...string) []string {
		return append([]string{"bls-change", "--withdrawal-address", testAddress, "--out", bad, "--db", db}, kv...)
	}
	refused(t, bad, 1, "retired", exitArgs("--pubkey", pa[1], "--validator-index", "101")...)
	refused(t, bad, 1, "retired", blsArgs("--pubkey", pa[1], "--validator-index", "101")...)
	refused(t, bad, 1, "retired", "top-up", "--pubkey", pa[1], "--amount-gwei", "1000000000", "--out", filepath.Join(bad, "t.json"), "--db", db)
	refused(t, bad, 1, "exit-signed", "top-up", "--pubkey", pb[0], "--amount-gwei", "1000000000", "--out", filepath.Join(bad, "t.json"), "--db", db)
	refused(t, bad, 1, "never exported", "top-up", "--pubkey", never, "--amount-gwei", "1000000000", "--out", filepath.Join(bad, "t.json"), "--db", db)
	refused(t, bad, 1, "retired", exitArgs("--request-id", "so-a", "--validator-index", "100,101")...)
	refused(t, bad, 1, "never exported", exitArgs("--pubkey", never, "--validator-index", "300")...)
	refused(t, bad, 1, "never exported", blsArgs("--pubkey", never, "--validator-index", "300")...)
	refused(t, bad, 1, "only 0x00", blsArgs("--request-id", "so-c", "--validator-index", "400,401")...)
	refused(t, bad, 2, "2 validator index(es) for 1 key", exitArgs("--pubkey", pc[0], "--validator-index", "400,401")...)
	refused(t, bad, 2, "1 validator index(es) for 2 key", exitArgs("--request-id", "so-c", "--validator-index", "400")...)
	refused(t, bad, 2, "1 validator index(es) for 2 key", blsArgs("--request-id", "so-c", "--validator-index", "400")...)
	refused(t, bad, 2, "--submit needs --beacon-node", exitArgs("--pubkey", pc[0], "--validator-index", "400", "--submit")...)
	refused(t, bad, 2, "--epoch", exitArgs("--pubkey", pc[0], "--validator-index", "400", "--epoch", "-1")...)
	refused(t, bad, 2, "EIP-55", "bls-change", "--withdrawal-address", strings.ToLower(testAddress), "--out", bad, "--db", db,
		"--pubkey", pb[0], "--validator-index", "200")
	// A forged record: so-c's sealed secrets swapped behind the store's back.
	sdb, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.Exec(`UPDATE records SET sealed = (SELECT sealed FROM records WHERE pubkey = ?) WHERE pubkey = ?`, pc[1], pc[0]); err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	refused(t, bad, 1, "authenticator", exitArgs("--pubkey", pc[0], "--validator-index", "400")...)
	refused(t, bad, 1, "authenticator", "top-up", "--pubkey", pc[0], "--amount-gwei", "1000000000", "--out", filepath.Join(bad, "t.json"), "--db", db)
	if st := listJSON(t, dbArgs...); st[pc[0]].Status != "forged" || st[never].Status != "generated" || st[pa[1]].Status != "retired" {
		t.Fatalf("states after refusals: %+v %+v %+v", st[pc[0]], st[never], st[pa[1]])
	}
	// --all leaves out the retired, forged and never-exported keys, and
	// says so; the rest (pubkey order) are signed.
	out = filepath.Join(dir, "exit-all")
	signable := []string{pa[0], pb[0], pc[1]}
	slices.Sort(signable)
	byIndex := map[uint64]string{}
	var ixs []string
	for i, pk := range signable {
		byIndex[uint64(500+i)] = pk
		ixs = append(ixs, strconv.Itoa(500+i))
	}
	r = mustRun(t, "exit", "--all", "--validator-index", strings.Join(ixs, ","), "--out", out, "--db", db)
	if strings.Count(r.stderr, "leaving out") != 3 {
		t.Fatalf("--all: %s", r.stderr)
	}
	checkExitFiles(t, &o, out, byIndex, 0, hoodi)
	if t.Failed() {
		return
	}
	opscheck.RequireValid(t, o.items)
}

// fakeBeacon implements the validators lookup and the two pool endpoints
// as the beacon API documents them (as beacon's tests do).
type fakeBeacon struct {
	mu      sync.Mutex
	network depositdata.Network
	vals    []beacon.Validator
	exits   []*ops.SignedVoluntaryExit
	changes []*ops.SignedBLSToExecutionChange
}

func (f *fakeBeacon) writeErr(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg})
}

func (f *fakeBeacon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/eth/v1/beacon/states/head/validators":
		data := []map[string]any{}
		for _, id := range strings.Split(r.URL.Query().Get("id"), ",") {
			for _, v := range f.vals {
				if id == "0x"+hex.EncodeToString(v.Pubkey[:]) {
					data = append(data, map[string]any{
						"index": strconv.FormatUint(v.Index, 10), "balance": "32000000000", "status": "active_ongoing",
						"validator": map[string]any{
							"pubkey": id, "withdrawal_credentials": "0x" + hex.EncodeToString(v.WithdrawalCredentials[:]),
							"effective_balance": "32000000000", "slashed": false, "activation_eligibility_epoch": "0",
							"activation_epoch": "0", "exit_epoch": "18446744073709551615", "withdrawable_epoch": "18446744073709551615",
						},
					})
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"execution_optimistic": false, "finalized": false, "data": data})
	case r.Method == http.MethodPost && r.URL.Path == "/eth/v1/beacon/pool/voluntary_exits":
		b, _ := io.ReadAll(r.Body)
		e, err := ops.ParseExit(b)
		if err != nil {
			f.writeErr(w, 400, "Invalid voluntary exit: "+err.Error())
			return
		}
		for _, v := range f.vals {
			if v.Index == uint64(e.Message.ValidatorIndex) {
				if ops.VerifyExit(e, v.Pubkey[:], f.network) != nil {
					f.writeErr(w, 400, "Invalid voluntary exit")
					return
				}
				f.exits = append(f.exits, e)
				return
			}
		}
		f.writeErr(w, 400, "unknown validator")
	case r.Method == http.MethodPost && r.URL.Path == "/eth/v1/beacon/pool/bls_to_execution_changes":
		b, _ := io.ReadAll(r.Body)
		entries, err := ops.ParseBLSChanges(b)
		if err != nil {
			f.writeErr(w, 400, "Invalid request body: "+err.Error())
			return
		}
		for _, en := range entries {
			c := en.Change
			ok := false
			for _, v := range f.vals {
				if v.Index == uint64(c.BLSToExecutionChange.ValidatorIndex) &&
					ops.CheckBLSCredentials(v.WithdrawalCredentials, c.BLSToExecutionChange.FromBLSPubKey[:]) == nil && ops.VerifyBLSChange(c, f.network) == nil {
					ok = true
				}
			}
			if !ok {
				f.writeErr(w, 400, "Some BLS to execution changes failed validation")
				return
			}
		}
		for _, en := range entries {
			f.changes = append(f.changes, en.Change)
		}
	default:
		f.writeErr(w, 404, "not found")
	}
}

// TestSealedOpsBeaconNode: --beacon-node looks the indices (and current
// credentials) up by pubkey, refuses given indices that differ, and
// --submit posts what was signed to the pools.
func TestSealedOpsBeaconNode(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	g := generateJSON(t, "--count", "2", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir,
		"--secret-format", "raw", "--request-id", "bn")
	pks := pubkeysOf(g)
	recs := listJSON(t, "--db", db)
	node := &fakeBeacon{network: depositdata.Hoodi}
	for i, pk := range pks {
		pb, _ := hex.DecodeString(pk)
		cb, _ := hex.DecodeString(recs[pk].WithdrawalCredentials)
		node.vals = append(node.vals, beacon.Validator{Index: uint64(700 + i), Pubkey: [48]byte(pb), WithdrawalCredentials: [32]byte(cb)})
	}
	srv := httptest.NewServer(node)
	defer srv.Close()
	var o cliOutputs

	bad := filepath.Join(dir, "refused")
	refused(t, bad, 1, "the beacon node says index 700, not 9", "exit", "--request-id", "bn", "--validator-index", "9,10",
		"--beacon-node", srv.URL, "--out", bad, "--db", db)
	out := filepath.Join(dir, "bls")
	r := mustRun(t, "bls-change", "--request-id", "bn", "--beacon-node", srv.URL, "--submit", "--withdrawal-address", testAddress,
		"--out", out, "--db", db, "--json")
	var res struct {
		File string `json:"file"`
	}
	_ = json.Unmarshal([]byte(r.stdout), &res)
	checkBLSChangeFile(t, &o, res.File, []uint64{700, 701}, []string{recs[pks[0]].WithdrawalCredentials, recs[pks[1]].WithdrawalCredentials}, true, depositdata.Hoodi)
	out = filepath.Join(dir, "exits")
	mustRun(t, "exit", "--request-id", "bn", "--validator-index", "700,701", "--beacon-node", srv.URL, "--submit", "--out", out, "--db", db)
	checkExitFiles(t, &o, out, map[uint64]string{700: pks[0], 701: pks[1]}, 0, depositdata.Hoodi)
	node.mu.Lock()
	if len(node.exits) != 2 || len(node.changes) != 2 {
		t.Fatalf("the node received %d exits and %d BLS changes", len(node.exits), len(node.changes))
	}
	// The chain moved validator 700 to 0x01 credentials: a BLS change
	// for it is refused (one line, no file), the node's word ruling.
	addr, _ := depositdata.ParseAddress(testAddress, false)
	node.vals[0].WithdrawalCredentials = depositdata.ExecutionCredentials(addr, false)
	node.mu.Unlock()
	refused(t, bad, 1, "only 0x00", "bls-change", "--pubkey", pks[0], "--beacon-node", srv.URL, "--withdrawal-address", testAddress,
		"--out", bad, "--db", db)
	// A node that does not know the key.
	node.mu.Lock()
	node.vals = node.vals[1:]
	node.mu.Unlock()
	refused(t, bad, 1, "not found", "exit", "--pubkey", pks[0], "--beacon-node", srv.URL, "--out", bad, "--db", db)
	if t.Failed() {
		return
	}
	opscheck.RequireValid(t, o.items)
}

// TestSealedOpsOnAWSStandIns: generate under local-kms into DynamoDB Local,
// then bls-change and exit from the sealed records with --kms.
func TestSealedOpsOnAWSStandIns(t *testing.T) {
	kmsEP := testenv.KMSEndpoint(t)
	ddbEP := testenv.DynamoDBEndpoint(t)
	keyARN := testenv.NewKMSKey(t, testenv.AWSConfig(t, kmsEP))
	table := "cli-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + randomSuffix(t)
	ddb := dynamodb.NewFromConfig(testenv.AWSConfig(t, ddbEP))
	if err := dynamostore.CreateTable(context.Background(), ddb, table); err != nil {
		t.Fatal(err)
	}
	if err := dynamostore.CreateLedgerTable(context.Background(), ddb, table+"-ledger"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL_KMS", kmsEP)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", ddbEP)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "eu-west-1")
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	g := generateJSON(t, "--count", "2", "--chain", "hoodi", "--bls-withdrawal", "--kms-key-id", keyARN, "--dynamodb-table", table,
		"--out", dir, "--secret-format", "raw", "--request-id", "aws-ops")
	mustRun(t, "export-deposits", "--request-id", "aws-ops", "--bls-withdrawal", "--dynamodb-table", table, "--out", filepath.Join(dir, "exp"))
	pks := pubkeysOf(g)
	recs := listJSON(t, "--dynamodb-table", table)
	var o cliOutputs
	out := filepath.Join(dir, "bls")
	r := mustRun(t, "bls-change", "--request-id", "aws-ops", "--validator-index", "10,11", "--withdrawal-address", testAddress,
		"--kms", "--dynamodb-table", table, "--out", out, "--json")
	var res struct {
		File string `json:"file"`
	}
	_ = json.Unmarshal([]byte(r.stdout), &res)
	checkBLSChangeFile(t, &o, res.File, []uint64{10, 11}, []string{recs[pks[0]].WithdrawalCredentials, recs[pks[1]].WithdrawalCredentials}, true, depositdata.Hoodi)
	out = filepath.Join(dir, "exits")
	mustRun(t, "exit", "--request-id", "aws-ops", "--validator-index", "10,11", "--kms", "--dynamodb-table", table, "--out", out)
	checkExitFiles(t, &o, out, map[uint64]string{10: pks[0], 11: pks[1]}, 0, depositdata.Hoodi)
	for pk, e := range listJSON(t, "--dynamodb-table", table) {
		if e.Status != "exit-signed" {
			t.Fatalf("0x%s is %s after its exit", pk, e.Status)
		}
	}
	// A retired key is refused here too.
	mustRun(t, "retire", "--pubkey", pks[1], "--reason", "test", "--dynamodb-table", table)
	bad := filepath.Join(dir, "refused")
	refused(t, bad, 1, "retired", "exit", "--pubkey", pks[1], "--validator-index", "11", "--kms", "--dynamodb-table", table, "--out", bad)
	if t.Failed() {
		return
	}
	opscheck.RequireValid(t, o.items)
}

// sealedOpsBadInputCases are the cases of TestBadInputPerCommand for exit,
// bls-change and top-up on the world's sealed (exported, 0x00) validator.
func sealedOpsBadInputCases(w *badInputWorld) []struct {
	name    string
	args    []string
	mention string
} {
	out := filepath.Join(w.dir, "sealed-ops-out")
	pk := "0x" + w.pubkey
	unknown := "0x" + strings.Repeat("ab", 48)
	exit := func(kv ...string) []string { return append([]string{"exit", "--out", out, "--db", w.db}, kv...) }
	bls := func(kv ...string) []string {
		return append([]string{"bls-change", "--out", out, "--db", w.db, "--withdrawal-address", testAddress}, kv...)
	}
	topUp := func(kv ...string) []string { return append([]string{"top-up", "--db", w.db}, kv...) }
	return []struct {
		name    string
		args    []string
		mention string
	}{
		{"exit/no selection", exit("--validator-index", "1"), "select the validators"},
		{"exit/two selections", exit("--pubkey", pk, "--all", "--validator-index", "1"), "select the validators"},
		{"exit/index count", exit("--pubkey", pk, "--validator-index", "1,2"), "2 validator index(es) for 1 key"},
		{"exit/no index", exit("--pubkey", pk), "give the validators' indices"},
		{"exit/index twice", exit("--pubkey", pk, "--validator-index", "1", "--validator-index", "1"), "appears twice"},
		{"exit/indices twice", exit("--pubkey", pk, "--validator-index", "1", "--indices-file", filepath.Join(w.dir, "empty.txt")), "not both"},
		{"exit/negative epoch", exit("--pubkey", pk, "--validator-index", "1", "--epoch", "-1"), "--epoch"},
		{"exit/unknown key", exit("--pubkey", unknown, "--validator-index", "1"), "not found"},
		{"exit/submit without node", exit("--pubkey", pk, "--validator-index", "1", "--submit"), "--submit needs --beacon-node"},
		{"exit/bad node URL", exit("--pubkey", pk, "--beacon-node", "ftp://node"), "node URL"},
		{"exit/devnet flags on a known network", exit("--pubkey", pk, "--validator-index", "1", "--capella-fork-version", "0x40000038",
			"--genesis-validators-root", "0x"+strings.Repeat("11", 32)), "known network"},
		{"bls-change/lowercase address", []string{"bls-change", "--out", out, "--db", w.db, "--pubkey", pk, "--validator-index", "1",
			"--withdrawal-address", strings.ToLower(testAddress)}, "checksum"},
		{"bls-change/no address", []string{"bls-change", "--out", out, "--db", w.db, "--pubkey", pk, "--validator-index", "1"}, "--withdrawal-address"},
		{"bls-change/index count", bls("--pubkey", pk, "--validator-index", "1,2"), "2 validator index(es) for 1 key"},
		{"bls-change/both mnemonic openers", bls("--pubkey", pk, "--validator-index", "1", "--mnemonic-kms", "--mnemonic-identity-file", "x"), "not both"},
		{"top-up/amount below 1 ETH", topUp("--pubkey", pk, "--amount-gwei", "999999999", "--out", filepath.Join(out, "t.json")), "amount"},
		{"top-up/no pubkey", topUp("--amount-gwei", "1000000000", "--out", filepath.Join(out, "t.json")), "--pubkey"},
		{"top-up/existing file", topUp("--pubkey", pk, "--amount-gwei", "1000000000", "--out", filepath.Join(w.dir, "existing-deposits.json")), "other content"},
		{"top-up/no amount", topUp("--pubkey", pk, "--out", filepath.Join(out, "t.json")), "--amount-gwei"},
		{"top-up/33 ETH on 0x00", topUp("--pubkey", pk, "--amount-gwei", "33000000000", "--out", filepath.Join(out, "t.json")), "amount"},
		{"top-up/unknown request id", topUp("--request-id", "nope", "--out", filepath.Join(out, "t.json")), "no top-up topup-nope"},
		{"top-up/out is a directory", topUp("--pubkey", pk, "--amount-gwei", "1000000000", "--out", w.dir), "is a directory"},
	}
}

// TestSealedBLSChangeSeparateMnemonic: records whose mnemonics are sealed
// to a separate recipient: bls-change opens them only with that key's
// identity (--mnemonic-identity-file); the signing side's identity alone
// opens nothing and writes nothing.
func TestSealedBLSChangeSeparateMnemonic(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	mid, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	midFile := writeFile(t, dir, "mnemonic-identity.txt", mid.String()+"\n")
	g := generateJSON(t, "--count", "2", "--keys-per-mnemonic", "2", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir,
		"--secret-format", "raw", "--request-id", "sep", "--mnemonic-recipient", mid.Recipient().String())
	pks := pubkeysOf(g)
	recs := listJSON(t, "--db", db)
	bad := filepath.Join(dir, "refused")
	refused(t, bad, 2, "--mnemonic-identity-file", "bls-change", "--request-id", "sep", "--validator-index", "1,2",
		"--withdrawal-address", testAddress, "--out", bad, "--db", db)
	refused(t, bad, 1, "mnemonic", "bls-change", "--request-id", "sep", "--validator-index", "1,2",
		"--withdrawal-address", testAddress, "--out", bad, "--db", db, "--mnemonic-identity-file", filepath.Join(dir, "home", "identity.txt"))
	out := filepath.Join(dir, "bls")
	mustRun(t, "bls-change", "--request-id", "sep", "--validator-index", "1,2", "--withdrawal-address", testAddress,
		"--out", out, "--db", db, "--mnemonic-identity-file", midFile)
	name, _ := onlyFile(t, out, `^bls_to_execution_change-\d{10}\.json$`)
	var o cliOutputs
	checkBLSChangeFile(t, &o, filepath.Join(out, name), []uint64{1, 2}, []string{recs[pks[0]].WithdrawalCredentials, recs[pks[1]].WithdrawalCredentials}, true, depositdata.Hoodi)
	if t.Failed() {
		return
	}
	opscheck.RequireValid(t, o.items)
}

// TestSealedExitLedgerFirst: the exit-signed state is recorded before the
// file is written. A run whose file cannot be written (the name is taken)
// leaves the key exit-signed and no file of its own; the re-run writes the
// same exit.
func TestSealedExitLedgerFirst(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	g := generateJSON(t, "--count", "1", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir,
		"--secret-format", "raw", "--request-id", "lf")
	pk := g.Validators[0].Pubkey
	out := filepath.Join(dir, "exits")
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	for ts := now; ts < now+30; ts++ {
		writeFile(t, out, ops.ExitFileName(900, ts), "taken")
	}
	r := runCLI(t, "exit", "--pubkey", pk, "--validator-index", "900", "--out", out, "--db", db)
	if r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("exit over a taken name: %+v", r)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 30 {
		t.Fatalf("%d files, want the 30 placeholders", len(entries))
	}
	if st := listJSON(t, "--db", db)[pk].Status; st != "exit-signed" {
		t.Fatalf("state %s: the ledger was not written before the file", st)
	}
	out2 := filepath.Join(dir, "exits-2")
	mustRun(t, "exit", "--pubkey", pk, "--validator-index", "900", "--out", out2, "--db", db)
	var o cliOutputs
	checkExitFiles(t, &o, out2, map[uint64]string{900: pk}, 0, depositdata.Hoodi)
}

// topUpResult is top-up --json.
type topUpResult struct {
	DepositData string `json:"deposit_data"`
	Count       int    `json:"count"`
	AmountGwei  uint64 `json:"amount_gwei"`
	ExportID    string `json:"export_id"`
	Resumed     bool   `json:"resumed"`
	Written     bool   `json:"written"`
}

func topUpJSON(t *testing.T, args ...string) (topUpResult, result) {
	t.Helper()
	r := mustRun(t, append([]string{"top-up", "--json"}, args...)...)
	var res topUpResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("top-up --json: %v: %s", err, r.stdout)
	}
	return res, r
}

// TestSealedTopUpOnce: a top-up goes through an export: the same command
// twice is one top-up (the same bytes, a FILE holding them left alone, one
// export in list --exports); a new --request-id is a second top-up of the
// same keys; the same --request-id with another amount is refused; the
// file of a top-up is not written by export-deposits; every pubkey is in
// one file per top-up id, whatever the runs.
func TestSealedTopUpOnce(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	g := generateJSON(t, "--count", "3", "--chain", "hoodi", "--bls-withdrawal", "--db", db, "--out", dir,
		"--secret-format", "raw", "--request-id", "tu")
	mustRun(t, "export-deposits", "--request-id", "tu", "--bls-withdrawal", "--db", db, "--out", filepath.Join(dir, "exp"))
	pks := pubkeysOf(g)
	recs := listJSON(t, "--db", db)
	files := filepath.Join(dir, "topups")
	args := func(out string, kv ...string) []string {
		return append([]string{"--pubkey", pks[1], "--pubkey", "0x" + pks[0], "--amount-gwei", "2000000000", "--out", filepath.Join(files, out), "--db", db}, kv...)
	}

	first, _ := topUpJSON(t, args("a.json")...)
	if first.Resumed || !first.Written || first.Count != 2 || first.AmountGwei != 2e9 || !strings.HasPrefix(first.ExportID, "topup-") {
		t.Fatalf("first top-up: %+v", first)
	}
	fb, _ := os.ReadFile(first.DepositData)
	deps, errs := depositdata.VerifyFile(fb, &depositdata.Hoodi)
	if len(errs) != 0 || len(deps) != 2 {
		t.Fatalf("top-up file: %v %s", errs, fb)
	}
	for i, pk := range []string{pks[1], pks[0]} {
		if deps[i].Pubkey != pk || deps[i].Amount != 2e9 || deps[i].WithdrawalCredentials != recs[pk].WithdrawalCredentials {
			t.Fatalf("entry %d: %+v", i, deps[i])
		}
	}
	// The same command again: the file is there with its bytes.
	st, _ := os.Stat(first.DepositData)
	again, r := topUpJSON(t, args("a.json")...)
	st2, _ := os.Stat(first.DepositData)
	if again.Written || !again.Resumed || again.ExportID != first.ExportID || !st.ModTime().Equal(st2.ModTime()) {
		t.Fatalf("the same top-up again: %+v (mtime %v -> %v)", again, st.ModTime(), st2.ModTime())
	}
	r = mustRun(t, append([]string{"top-up"}, args("a.json")...)...)
	if !strings.Contains(r.stderr, "written before") || !strings.Contains(r.stderr, "--request-id") {
		t.Fatalf("the same top-up again says: %s", r.stderr)
	}
	// Elsewhere: the same bytes, and it says so.
	r = mustRun(t, append([]string{"top-up"}, args("b.json")...)...)
	if !strings.Contains(r.stderr, "made before") || !strings.Contains(r.stderr, "not a second top-up") {
		t.Fatalf("the same top-up elsewhere says: %s", r.stderr)
	}
	if bb, _ := os.ReadFile(filepath.Join(files, "b.json")); string(bb) != string(fb) {
		t.Fatal("the same top-up wrote other bytes")
	}
	// A second intended top-up: a new --request-id, then by that id alone.
	second, _ := topUpJSON(t, args("c.json", "--request-id", "second")...)
	if second.ExportID != "topup-second" || second.Resumed || !second.Written {
		t.Fatalf("second top-up: %+v", second)
	}
	byID, _ := topUpJSON(t, "--request-id", "second", "--out", filepath.Join(files, "d.json"), "--db", db)
	if byID.ExportID != "topup-second" || !byID.Resumed || byID.Count != 2 {
		t.Fatalf("top-up by request id: %+v", byID)
	}
	// Refusals: one line, nothing written.
	bad := filepath.Join(dir, "refused")
	refused(t, bad, 2, "new request id", append([]string{"top-up"}, args("x.json", "--request-id", "second", "--amount-gwei", "3000000000")...)...)
	refused(t, bad, 2, "new request id", "top-up", "--request-id", "second", "--pubkey", pks[2], "--amount-gwei", "2000000000", "--out", filepath.Join(bad, "x.json"), "--db", db)
	if err := os.MkdirAll(bad, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, bad, "other.json", "[]")
	r = runCLI(t, append([]string{"top-up"}, args("../refused/other.json")...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "other content") {
		t.Fatalf("top-up over another file: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(bad, "other.json")); string(b) != "[]" {
		t.Fatal("a file of other content was replaced")
	}
	os.Remove(filepath.Join(bad, "other.json"))
	refused(t, bad, 2, "top-up --request-id second", "export-deposits", "--export-id", "topup-second", "--bls-withdrawal", "--out", bad, "--db", db)

	// list --exports: the export of the generated deposits and two top-ups.
	r = mustRun(t, "list", "--exports", "--json", "--db", db)
	kinds := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var x struct {
			ID       string `json:"export_id"`
			Kind     string `json:"kind"`
			State    string `json:"state"`
			Deposits int    `json:"deposits"`
			TopUp    uint64 `json:"top_up_gwei"`
		}
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			t.Fatal(err)
		}
		kinds[x.ID] = x.Kind
		if x.Kind == "top-up" && (x.TopUp != 2e9 || x.Deposits != 2 || x.State != "sealed") {
			t.Errorf("list --exports: %s", l)
		}
	}
	if len(kinds) != 3 || kinds["req-tu"] != "deposits" || kinds[first.ExportID] != "top-up" || kinds["topup-second"] != "top-up" {
		t.Fatalf("list --exports: %s", r.stdout)
	}
	r = mustRun(t, "list", "--exports", "--db", db)
	if !strings.Contains(r.stdout, "2 top-up deposits of 2000000000 gwei") || !strings.Contains(r.stdout, "top-up --request-id second") {
		t.Fatalf("list --exports: %s", r.stdout)
	}

	// Campaign-style count: every pubkey once per top-up id across the
	// files written.
	perID := map[string]map[string]int{}
	ids := map[string]string{"a.json": first.ExportID, "b.json": first.ExportID, "c.json": "topup-second", "d.json": "topup-second"}
	for name, id := range ids {
		b, err := os.ReadFile(filepath.Join(files, name))
		if err != nil {
			t.Fatal(err)
		}
		deps, errs := depositdata.VerifyFile(b, &depositdata.Hoodi)
		if len(errs) != 0 {
			t.Fatal(errs)
		}
		if perID[id] == nil {
			perID[id] = map[string]int{}
		}
		for _, d := range deps {
			perID[id][d.Pubkey]++
		}
	}
	entries, _ := os.ReadDir(files)
	if len(entries) != len(ids) {
		t.Fatalf("%d files written, want %d", len(entries), len(ids))
	}
	for id, count := range perID {
		// Two files per id: each holds each key once, with the same bytes.
		if len(count) != 2 || count[pks[0]] != 2 || count[pks[1]] != 2 {
			t.Errorf("top-up %s: pubkey counts %v", id, count)
		}
	}
	// An exit-signed key is topped up no more, not even by its earlier top-up.
	mustRun(t, "exit", "--pubkey", pks[0], "--validator-index", "7", "--out", filepath.Join(dir, "exits"), "--db", db)
	refused(t, bad, 1, "exit-signed", "top-up", "--request-id", "second", "--out", filepath.Join(bad, "y.json"), "--db", db)
}
