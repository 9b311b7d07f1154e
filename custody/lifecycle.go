package custody

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store"
)

// The life of a validator key, as custody keeps it. A record is made once
// (generated, or imported) and never changes; every later state lives in
// the ledger, which custody alone writes, with a compare-and-set made
// before the side effect it licenses:
//
//	generated ──Export──▶ exported ──ClaimForSigner──▶ deposited ──MarkExitSigned──▶ exit-signed
//	imported ─────────────────────────ClaimForSigner──▶ deposited
//	exported / imported ──Assign(S)──▶ the same, assigned to S (only S may claim it; see assign.go)
//	any state ──Retire──▶ retired (final: never loaded, exported or signed for again)
//
// A deposit is handed out only through an export, and a key belongs to at
// most one export of its generated deposit (a top-up export, TopUp, hands
// out further deposits of keys already on chain, each top-up once); a key
// is live on at most one signer, and moves only by ReleaseFromSigner (with
// its slashing-protection history) or a takeover.

// Lifecycle errors. Each is wrapped with the pubkey or export it concerns.
var (
	// ErrState reports an operation the key's state does not allow
	// (loading a retired key, exporting an imported one, ...).
	ErrState = errors.New("custody: not allowed in the key's state")
	// ErrClaimed reports a key that is live on another signer (or was
	// claimed by another loader first).
	ErrClaimed = errors.New("custody: key already claimed by another signer")
	// ErrTarget reports a record whose withdrawal credentials are not the
	// ones the operator stated.
	ErrTarget = errors.New("custody: withdrawal credentials differ from the stated target")
	// ErrExportOpen reports an export that was interrupted before its
	// members were frozen: finish it (by its id) before starting another.
	ErrExportOpen = errors.New("custody: an earlier export was interrupted")
	// ErrNothingToExport reports a selection whose deposits are all in
	// exports already (or that selects nothing).
	ErrNothingToExport = errors.New("custody: no deposit to hand out")
)

// Records is what the lifecycle reads of the record store.
type Records interface {
	Get(ctx context.Context, pubkey string) (*store.Record, error)
	GetSlot(ctx context.Context, requestID string, slot int) (*store.Record, error)
	Query(ctx context.Context, f store.Filter) iter.Seq2[*store.Record, error]
}

var _ Records = store.Store(nil)

// IdentityChecker is implemented by record stores that can tell whether
// they still are the store their caller named (the embedded file was not
// deleted or replaced while it was open). Export calls it before it hands
// out a file.
type IdentityChecker interface {
	CheckIdentity(ctx context.Context) error
}

// Custodian keeps the lifecycle of the keys of one store. It holds no
// secret: it verifies records with the generator's public key and writes
// the ledger.
type Custodian struct {
	records  Records
	ledger   store.Ledger
	verifier provenance.Verifier
	by       string
	now      func() time.Time
}

// CustodianOption configures a Custodian.
type CustodianOption interface{ applyCustodian(*Custodian) error }

type custodianOptionFunc func(*Custodian) error

func (f custodianOptionFunc) applyCustodian(c *Custodian) error { return f(c) }

// WithActor names who makes the changes (user@host, a role ARN); it is
// recorded with every state change.
func WithActor(by string) CustodianOption {
	return custodianOptionFunc(func(c *Custodian) error { c.by = by; return nil })
}

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) CustodianOption {
	return custodianOptionFunc(func(c *Custodian) error { c.now = now; return nil })
}

// NewCustodian makes a Custodian over records and ledger that accepts only
// records authenticated by v (the generator's verification key).
func NewCustodian(records Records, ledger store.Ledger, v provenance.Verifier, opts ...CustodianOption) (*Custodian, error) {
	if records == nil || ledger == nil || v == nil {
		return nil, errors.New("custody: a record store, a ledger and the generator's verification key are required")
	}
	c := &Custodian{records: records, ledger: ledger, verifier: v, now: time.Now}
	for _, o := range opts {
		if err := o.applyCustodian(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Custodian) clock() time.Time { return c.now().UTC().Truncate(time.Millisecond) }

// Check reads a record as every operation must: its authenticator verifies
// under the generator's key, and its deposit (if it has one) names its
// pubkey and carries its credentials. The deposit's BLS signature and roots
// were verified, with an implementation independent of the signer's, by the
// generator before it signed the record, and the authenticator covers every
// byte of the deposit: re-verifying them here would cost a pairing per
// key and add nothing (VerifyRecord does it for records of unknown origin).
func (c *Custodian) Check(rec *store.Record) (Validator, error) { return CheckRecord(c.verifier, rec) }

// CheckRecord is Custodian.Check with the generator's verification key v.
func CheckRecord(v provenance.Verifier, rec *store.Record) (Validator, error) {
	if err := checkAuth(v, rec); err != nil {
		return Validator{}, err
	}
	if rec.Origin == OriginImported && len(rec.DepositData) == 0 {
		return Validator{Slot: rec.Slot, Pubkey: rec.Pubkey, Status: store.StatusImported}, nil
	}
	val, err := ValidatorOf(rec)
	if err != nil {
		return Validator{}, err
	}
	if val.Deposit.WithdrawalCredentials != rec.WithdrawalCredentials {
		return Validator{}, fmt.Errorf("custody: stored deposit of 0x%s does not carry its record's credentials", rec.Pubkey)
	}
	return val, nil
}

// Get returns the verified record of pubkey and its ledger state (nil when
// the ledger holds none: generated or imported).
func (c *Custodian) Get(ctx context.Context, pubkey string) (*store.Record, *store.KeyState, error) {
	rec, err := c.records.Get(ctx, pubkey)
	if err != nil {
		return nil, nil, fmt.Errorf("custody: reading 0x%s: %w", pubkey, err)
	}
	if _, err := c.Check(rec); err != nil {
		return nil, nil, err
	}
	ks, err := c.key(ctx, pubkey)
	return rec, ks, err
}

func (c *Custodian) key(ctx context.Context, pubkey string) (*store.KeyState, error) {
	ks, err := c.ledger.GetKey(ctx, pubkey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("custody: reading the state of 0x%s: %w", pubkey, err)
	}
	return ks, nil
}

// StateOf is the effective status of a record with ledger state ks.
func StateOf(rec *store.Record, ks *store.KeyState) store.Status {
	if ks != nil {
		return ks.State
	}
	if rec.Origin == OriginImported {
		return store.StatusImported
	}
	return store.StatusGenerated
}

// Entry is one key as List shows it: public data only.
type Entry struct {
	Record *store.Record
	Key    *store.KeyState // nil: no ledger state yet
	Status store.Status
	Err    error // the record failed its checks (forged or altered); it is shown, never used
}

// List yields every record matching f (f.Status is the effective status)
// with its state. Records that fail their checks are yielded with Err set.
func (c *Custodian) List(ctx context.Context, f store.Filter) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		want := f.Status
		f.Status = ""
		for rec, err := range c.records.Query(ctx, f) {
			if err != nil {
				yield(Entry{}, err)
				return
			}
			ks, err := c.key(ctx, rec.Pubkey)
			if err != nil {
				yield(Entry{}, err)
				return
			}
			e := Entry{Record: rec, Key: ks, Status: StateOf(rec, ks)}
			if _, err := c.Check(rec); err != nil {
				e.Err = err
			}
			if want != "" && e.Status != want {
				continue
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

// ---- exports ----------------------------------------------------------------

// ExportRequest says which deposits to hand out and where the operator
// says their money must go.
type ExportRequest struct {
	// ID names the export. Empty: RequestExportID(RequestID) when the selection
	// is one request (so repeating it re-writes the same file), else a new
	// id. An existing id resumes (or re-writes) that export.
	ID string
	// The selection: one request's records (RequestID; Pubkeys may then
	// list them, as the caller read them with consistent reads), these
	// pubkeys (Pubkeys alone: each must still be free to hand out), or
	// every record not exported yet (All). Exactly one, unless ID names an
	// existing export.
	RequestID string
	Pubkeys   []string
	All       bool
	// SkipExported makes Pubkeys a run's validators (a fan-out over
	// several requests): keys already in another export are left out
	// instead of refused.
	SkipExported bool
	// Network, when set, must be every selected record's network.
	Network string
	// The stated withdrawal target: an execution address (0x01, or 0x02
	// with Compounding), or BLSWithdrawal for 0x00 credentials. Required.
	Withdrawal    Withdrawal
	BLSWithdrawal bool
}

// ExportResult is a sealed export and its Launchpad file.
type ExportResult struct {
	Export   *store.Export
	Deposits []*depositdata.Deposit // the file's entries, in file order
	FileName string                 // ExportFileName of the export
	File     []byte                 // the Launchpad file; nil when the export holds no deposit
	Resumed  bool                   // the export existed before this call
	Summary  []TargetSummary        // deposits per credentials and amount
}

// TargetSummary counts an export's deposits per credentials and amount, for
// the operator to check before uploading.
type TargetSummary struct {
	WithdrawalCredentials string
	AmountGwei            uint64
	Count                 int
}

// target is the stated target in comparable form.
func (r *ExportRequest) target() (string, error) {
	switch {
	case r.BLSWithdrawal && r.Withdrawal.Address != nil:
		return "", fmt.Errorf("%w: give a withdrawal address or BLS withdrawal credentials, not both", ErrRequest)
	case r.BLSWithdrawal:
		return store.BLSTarget, nil
	case r.Withdrawal.Address != nil:
		cr := depositdata.ExecutionCredentials(*r.Withdrawal.Address, r.Withdrawal.Compounding)
		return hex.EncodeToString(cr[:]), nil
	}
	return "", fmt.Errorf("%w: state where the deposits pay: a withdrawal address, or BLS (0x00) withdrawal credentials explicitly", ErrRequest)
}

func matchesTarget(creds, target string) bool {
	if target == store.BLSTarget {
		return strings.HasPrefix(creds, "00")
	}
	return creds == target
}

// RequestExportID is the export id of a request's deposits: generate and
// export-deposits --request-id share it, so either re-writes the other's
// file instead of making a new one. It is "req-<request id>" when the id
// fits an export id, else "req-" and a hash of it.
func RequestExportID(requestID string) string {
	id := "req-" + requestID
	if store.ValidateExportID(id) == nil {
		return id
	}
	sum := sha256.Sum256([]byte(requestID))
	return "req-" + hex.EncodeToString(sum[:16])
}

// Export hands out deposits. It claims each selected record for the export
// in the ledger (a key belongs to at most one export, whatever runs at the
// same time), freezes the export's members, and only then builds the file,
// a pure function of the frozen export: re-running an interrupted export
// (same id) returns the same bytes and never a new entry.
//
// Every selected record must be authenticated by the generator, verify,
// and pay the stated withdrawal target; otherwise nothing is claimed and
// the error names the pubkey.
func (c *Custodian) Export(ctx context.Context, req ExportRequest) (*ExportResult, error) {
	target, err := req.target()
	if err != nil {
		return nil, err
	}
	if err := c.checkIdentity(ctx); err != nil {
		return nil, err
	}
	if req.ID == "" && req.RequestID != "" && !req.All {
		req.ID = RequestExportID(req.RequestID)
	}
	if req.ID != "" {
		e, err := c.ledger.GetExport(ctx, req.ID)
		switch {
		case err == nil:
			if e.TopUp() {
				return nil, errTopUpExport(e)
			}
			if err := checkExportTarget(e, target, req.Network); err != nil {
				return nil, err
			}
			return c.finish(ctx, e, true)
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("custody: reading export %q: %w", req.ID, err)
		}
	}
	selections := 0
	for _, b := range []bool{req.RequestID != "", req.RequestID == "" && len(req.Pubkeys) > 0, req.All} {
		if b {
			selections++
		}
	}
	if selections != 1 {
		if req.ID != "" && selections == 0 {
			return nil, fmt.Errorf("custody: export %q: %w", req.ID, store.ErrNotFound)
		}
		return nil, fmt.Errorf("%w: select the deposits by one of request id, pubkeys or all", ErrRequest)
	}
	if req.ID == "" {
		// A new export of a free selection: an interrupted one must be
		// finished first, or its keys would look handed out and be in no file.
		// (A top-up claims no key: TopUp finishes its own.)
		for e, err := range c.ledger.Exports(ctx) {
			if err != nil {
				return nil, fmt.Errorf("custody: listing exports: %w", err)
			}
			if !e.Sealed && !e.TopUp() {
				return nil, fmt.Errorf("%w: export %s was not finished; finish it first (export-deposits --export-id %s)", ErrExportOpen, e.ID, e.ID)
			}
		}
		req.ID = newExportID(c.clock())
	}
	cands, network, err := c.candidates(ctx, &req, target)
	if err != nil {
		return nil, err
	}
	e := &store.Export{ID: req.ID, CreatedAt: c.clock(), Network: network, WithdrawalCredentials: target,
		Candidates: cands, By: c.by}
	stored, err := c.ledger.CreateExport(ctx, e)
	resumed := false
	switch {
	case errors.Is(err, store.ErrExists):
		// Another run of the same request made it first: its candidates rule.
		if stored.TopUp() {
			return nil, errTopUpExport(stored)
		}
		if err := checkExportTarget(stored, target, req.Network); err != nil {
			return nil, err
		}
		e, resumed = stored, true
	case err != nil:
		return nil, fmt.Errorf("custody: recording export %q: %w", req.ID, err)
	}
	res, err := c.finish(ctx, e, resumed)
	return res, err
}

func checkExportTarget(e *store.Export, target, network string) error {
	if e.WithdrawalCredentials != target {
		return fmt.Errorf("%w: export %s pays withdrawal credentials 0x%s, not the target given", ErrTarget, e.ID, e.WithdrawalCredentials)
	}
	if network != "" && e.Network != network {
		return fmt.Errorf("%w: export %s is for %s, not %s", ErrRequest, e.ID, e.Network, network)
	}
	return nil
}

func newExportID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "exp-" + t.Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// candidates selects and checks the records of a new export: those not in
// any export yet, each authenticated, verified and paying the target.
func (c *Custodian) candidates(ctx context.Context, req *ExportRequest, target string) ([]string, string, error) {
	var recs []*store.Record
	strict := req.RequestID == "" && len(req.Pubkeys) > 0 && !req.SkipExported // named keys: each must be free
	switch {
	case len(req.Pubkeys) > 0:
		seen := map[string]bool{}
		for _, pk := range req.Pubkeys {
			if seen[pk] {
				continue
			}
			seen[pk] = true
			rec, err := c.records.Get(ctx, pk)
			if err != nil {
				return nil, "", fmt.Errorf("custody: reading 0x%s: %w", pk, err)
			}
			if req.RequestID != "" && rec.RequestID != req.RequestID {
				return nil, "", fmt.Errorf("%w: 0x%s is not a validator of request %s", ErrRequest, pk, req.RequestID)
			}
			recs = append(recs, rec)
		}
	default:
		f := store.Filter{RequestID: req.RequestID}
		for rec, err := range c.records.Query(ctx, f) {
			if err != nil {
				return nil, "", fmt.Errorf("custody: reading the store: %w", err)
			}
			recs = append(recs, rec)
		}
	}
	network := req.Network
	var out []string
	for _, rec := range recs {
		ks, err := c.key(ctx, rec.Pubkey)
		if err != nil {
			return nil, "", err
		}
		if ks != nil {
			if strict {
				return nil, "", fmt.Errorf("%w: 0x%s is %s (export %s): its deposit was handed out already", ErrState, rec.Pubkey, ks.State, ks.ExportID)
			}
			continue // handed out already (or retired): not this export's
		}
		if rec.Origin == OriginImported {
			if strict {
				return nil, "", fmt.Errorf("%w: 0x%s was imported: its deposit was made elsewhere", ErrState, rec.Pubkey)
			}
			continue
		}
		if _, err := c.Check(rec); err != nil {
			return nil, "", err
		}
		if !matchesTarget(rec.WithdrawalCredentials, target) {
			return nil, "", fmt.Errorf("%w: 0x%s pays withdrawal credentials 0x%s", ErrTarget, rec.Pubkey, rec.WithdrawalCredentials)
		}
		switch {
		case network == "":
			network = rec.Network
		case rec.Network != network:
			return nil, "", fmt.Errorf("%w: the selection holds %s and %s deposits: choose one network", ErrRequest, network, rec.Network)
		}
		out = append(out, rec.Pubkey)
	}
	if len(out) == 0 {
		return nil, "", fmt.Errorf("%w: every selected validator is in an export already (or none is stored)", ErrNothingToExport)
	}
	return out, network, nil
}

// exportAttempts bounds the claim-and-seal rounds lost to concurrent
// claimers of the same export.
const exportAttempts = 16

// finish claims e's candidates, freezes its members (unless frozen), and
// builds its file.
func (c *Custodian) finish(ctx context.Context, e *store.Export, resumed bool) (*ExportResult, error) {
	for attempt := 0; !e.Sealed; attempt++ {
		if attempt == exportAttempts {
			return nil, fmt.Errorf("custody: export %s: could not freeze its members (%d rounds lost to concurrent claims); run it again", e.ID, exportAttempts)
		}
		if _, err := c.ledger.ClaimForExport(ctx, e.ID, e.Candidates, c.clock(), c.by); err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("custody: export %s: claiming: %w", e.ID, err)
		}
		cur, err := c.ledger.GetExport(ctx, e.ID)
		if err != nil {
			return nil, fmt.Errorf("custody: export %s: %w", e.ID, err)
		}
		if cur.Sealed {
			e = cur
			break
		}
		var members []string
		for _, pk := range e.Candidates {
			ks, err := c.key(ctx, pk)
			if err != nil {
				return nil, err
			}
			if ks != nil && ks.ExportID == e.ID {
				members = append(members, pk)
			}
		}
		if len(members) != cur.Claims {
			continue // a claim is still landing (or raced): count again
		}
		err = c.ledger.SealExport(ctx, e.ID, members, cur.Claims)
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("custody: export %s: freezing its members: %w", e.ID, err)
		}
		if e, err = c.ledger.GetExport(ctx, e.ID); err != nil {
			return nil, fmt.Errorf("custody: export %s: %w", e.ID, err)
		}
	}
	res, err := c.build(ctx, e)
	if err != nil {
		return nil, err
	}
	res.Resumed = resumed
	return res, nil
}

// ExportFile rebuilds the file of a frozen export (export-deposits
// --export-id): the same bytes every time, each member checked again. A
// top-up export is refused: its deposits are signed with the keys (TopUp).
func (c *Custodian) ExportFile(ctx context.Context, id string) (*ExportResult, error) {
	e, err := c.ledger.GetExport(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("custody: export %q: %w", id, err)
	}
	if e.TopUp() {
		return nil, errTopUpExport(e)
	}
	if !e.Sealed {
		return c.finish(ctx, e, true)
	}
	res, err := c.build(ctx, e)
	if err != nil {
		return nil, err
	}
	res.Resumed = true
	return res, nil
}

// build makes the file of a frozen export from its members' records, each
// authenticated and verified again and paying the export's target.
func (c *Custodian) build(ctx context.Context, e *store.Export) (*ExportResult, error) {
	if e.TopUp() {
		return nil, errTopUpExport(e)
	}
	if err := c.checkIdentity(ctx); err != nil {
		return nil, err
	}
	res := &ExportResult{Export: e, FileName: ExportFileName(e)}
	sums := map[[2]string]*TargetSummary{}
	for _, pk := range e.Members {
		rec, err := c.records.Get(ctx, pk)
		if err != nil {
			return nil, fmt.Errorf("custody: export %s: reading 0x%s: %w", e.ID, pk, err)
		}
		v, err := c.Check(rec)
		if err != nil {
			return nil, err
		}
		if !matchesTarget(rec.WithdrawalCredentials, e.WithdrawalCredentials) || rec.Network != e.Network {
			return nil, fmt.Errorf("%w: 0x%s pays 0x%s on %s, not what export %s states", ErrTarget, pk, rec.WithdrawalCredentials, rec.Network, e.ID)
		}
		res.Deposits = append(res.Deposits, v.Deposit)
		creds := v.Deposit.WithdrawalCredentials
		if e.WithdrawalCredentials == store.BLSTarget {
			creds = store.BLSTarget // each its own 0x00 credentials: one line for all
		}
		k := [2]string{creds, fmt.Sprint(v.Deposit.Amount)}
		if sums[k] == nil {
			sums[k] = &TargetSummary{WithdrawalCredentials: creds, AmountGwei: v.Deposit.Amount}
		}
		sums[k].Count++
	}
	for _, s := range sums {
		res.Summary = append(res.Summary, *s)
	}
	slices.SortFunc(res.Summary, func(a, b TargetSummary) int { return strings.Compare(a.WithdrawalCredentials, b.WithdrawalCredentials) })
	if len(res.Deposits) > 0 {
		b, err := depositdata.MarshalFile(res.Deposits)
		if err != nil {
			return nil, err
		}
		res.File = b
	}
	return res, nil
}

func (c *Custodian) checkIdentity(ctx context.Context) error {
	if ic, ok := c.records.(IdentityChecker); ok {
		if err := ic.CheckIdentity(ctx); err != nil {
			return fmt.Errorf("custody: the store is not the one this run opened (nothing handed out): %w", err)
		}
	}
	return nil
}

// ExportFileName is the name of an export's Launchpad file:
// deposit_data-<unix>-<export id>.json, staking-deposit-cli's name with the
// export's creation time and its id, so two exports never share a name and
// the same export always has the same one.
func ExportFileName(e *store.Export) string {
	return fmt.Sprintf("deposit_data-%d-%s.json", e.CreatedAt.Unix(), e.ID)
}

// Exports yields every export.
func (c *Custodian) Exports(ctx context.Context) iter.Seq2[*store.Export, error] {
	return c.ledger.Exports(ctx)
}

// ---- signers ----------------------------------------------------------------

// LoadRequest asks to make keys live on a signer.
type LoadRequest struct {
	Signer  string   // which signer (required): e.g. "web3signer:<dir>", "keymanager:<url>", "enclave:<cid>"
	Pubkeys []string // lowercase hex
	// Takeover allows keys live on another signer: the caller has stopped
	// that signer for good and carries its slashing-protection history.
	Takeover bool
}

// Claim is one key claimed for a signer.
type Claim struct {
	Record   *store.Record
	Key      *store.KeyState // the state after the claim
	Previous *store.KeyState // the state before it (nil: none)
	Fresh    bool            // this call changed the ledger (else the key was live on this signer already)
}

// Claims are the keys of one load. Release them if the load fails.
type Claims struct {
	c     *Custodian
	Items []Claim
}

// Records are the claimed records, in request order.
func (cl *Claims) Records() []*store.Record {
	out := make([]*store.Record, len(cl.Items))
	for i, it := range cl.Items {
		out[i] = it.Record
	}
	return out
}

// ClaimForSigner claims keys for a signer BEFORE they are opened or
// loaded, each with a compare-and-set on its ledger state, so that of two
// loaders racing for a key exactly one wins and the other loads nothing.
// A key is claimed only if it was handed out through an export (or
// imported) and is not retired; one live on another signer only with
// Takeover. On error nothing stays claimed.
func (c *Custodian) ClaimForSigner(ctx context.Context, req LoadRequest) (*Claims, error) {
	if req.Signer == "" {
		return nil, fmt.Errorf("%w: a signer name is required", ErrRequest)
	}
	if len(req.Pubkeys) == 0 {
		return nil, fmt.Errorf("%w: no key to load", ErrRequest)
	}
	cl := &Claims{c: c}
	fail := func(err error) (*Claims, error) {
		return nil, errors.Join(err, cl.Release(context.WithoutCancel(ctx)))
	}
	seen := map[string]bool{}
	for _, pk := range req.Pubkeys {
		if seen[pk] {
			continue
		}
		seen[pk] = true
		rec, ks, err := c.Get(ctx, pk)
		if err != nil {
			return fail(err)
		}
		next, err := c.signerState(rec, ks, req)
		if err != nil {
			return fail(err)
		}
		if next == nil { // live on this signer already
			cl.Items = append(cl.Items, Claim{Record: rec, Key: ks, Previous: ks})
			continue
		}
		if err := c.ledger.PutKey(ctx, next); err != nil {
			if errors.Is(err, store.ErrConflict) {
				err = fmt.Errorf("%w: 0x%s changed state since it was read (another loader?)", ErrClaimed, pk)
			}
			return fail(fmt.Errorf("custody: claiming 0x%s: %w", pk, err))
		}
		cl.Items = append(cl.Items, Claim{Record: rec, Key: next, Previous: ks, Fresh: true})
	}
	return cl, nil
}

// signerState is the ledger state that claims rec for req.Signer, or nil
// when the key is live there already.
func (c *Custodian) signerState(rec *store.Record, ks *store.KeyState, req LoadRequest) (*store.KeyState, error) {
	next := &store.KeyState{Pubkey: rec.Pubkey, State: store.StatusDeposited, Signer: req.Signer,
		Version: 1, UpdatedAt: c.clock(), By: c.by}
	if ks == nil {
		if rec.Origin != OriginImported {
			return nil, fmt.Errorf("%w: 0x%s was never exported: its deposit was never handed out (export it first)", ErrState, rec.Pubkey)
		}
		return next, nil
	}
	next.Version = ks.Version + 1
	next.ExportID, next.Interchange = ks.ExportID, ks.Interchange
	// An assignment names the one signer the key may be claimed for while
	// it is not live; the claim uses it up (next.AssignedTo is empty).
	if ks.AssignedTo != "" && ks.AssignedTo != req.Signer {
		return nil, fmt.Errorf("%w: 0x%s is assigned to %s, not %s: load it there, or reassign it first (ethkeygen assign)", ErrAssigned, rec.Pubkey, ks.AssignedTo, req.Signer)
	}
	switch ks.State {
	case store.StatusRetired:
		return nil, fmt.Errorf("%w: 0x%s is retired: refusing to load it into a signer", ErrState, rec.Pubkey)
	case store.StatusExported, store.StatusImported:
		return next, nil
	case store.StatusDeposited, store.StatusExitSigned:
		if ks.Signer == req.Signer {
			return nil, nil
		}
		if ks.Signer != "" && !req.Takeover {
			return nil, fmt.Errorf("%w: 0x%s is live on %s; loading it twice is slashable (take it over only once that signer is stopped for good)", ErrClaimed, rec.Pubkey, ks.Signer)
		}
		next.State = ks.State
		return next, nil
	}
	return nil, fmt.Errorf("%w: 0x%s has state %q", ErrState, rec.Pubkey, ks.State)
}

// Release undoes the claims this load made, each only if the ledger still
// holds what the claim wrote (nothing another process did is undone). Safe
// to call more than once.
func (cl *Claims) Release(ctx context.Context) error {
	if cl == nil {
		return nil
	}
	var errs []error
	for i := range cl.Items {
		it := &cl.Items[i]
		if !it.Fresh {
			continue
		}
		var back *store.KeyState
		if it.Previous != nil {
			p := *it.Previous
			back = &p
		} else {
			// An imported key never claimed before: no state means "imported".
			// The ledger cannot delete, so it records the release explicitly.
			back = &store.KeyState{Pubkey: it.Key.Pubkey, State: store.StatusImported}
		}
		back.Version = it.Key.Version + 1
		back.UpdatedAt, back.By = cl.c.clock(), cl.c.by
		if err := cl.c.ledger.PutKey(ctx, back); err != nil {
			errs = append(errs, fmt.Errorf("releasing 0x%s: %w", it.Key.Pubkey, err))
			continue
		}
		it.Fresh = false
	}
	return errors.Join(errs...)
}

// ReleaseFromSigner records that a key was removed from signer (Keymanager
// DELETE, a stopped key directory), with the slashing-protection
// interchange that signer returned, so the next signer starts from it.
func (c *Custodian) ReleaseFromSigner(ctx context.Context, pubkey, signer string, interchange []byte) (*store.KeyState, error) {
	_, ks, err := c.Get(ctx, pubkey)
	if err != nil {
		return nil, err
	}
	if ks == nil || (ks.State != store.StatusDeposited && ks.State != store.StatusExitSigned) || ks.Signer != signer {
		return nil, fmt.Errorf("%w: 0x%s is not live on %s", ErrState, pubkey, signer)
	}
	next := *ks
	next.State, next.Signer = store.StatusExported, ""
	if ks.ExportID == "" {
		next.State = store.StatusImported
	}
	if ks.State == store.StatusExitSigned {
		next.State = store.StatusExitSigned
	}
	if interchange != nil {
		next.Interchange = interchange
	}
	next.Version, next.UpdatedAt, next.By = ks.Version+1, c.clock(), c.by
	if err := c.ledger.PutKey(ctx, &next); err != nil {
		return nil, fmt.Errorf("custody: releasing 0x%s: %w", pubkey, err)
	}
	return &next, nil
}

// Retire marks a key never to be loaded, exported or signed for again,
// recording who and when (and why, in note). Retiring a retired key
// changes nothing.
func (c *Custodian) Retire(ctx context.Context, pubkey, note string) (*store.KeyState, error) {
	_, ks, err := c.Get(ctx, pubkey)
	if err != nil {
		return nil, err
	}
	if ks != nil && ks.State == store.StatusRetired {
		return ks, nil
	}
	next := &store.KeyState{Pubkey: pubkey, State: store.StatusRetired, Version: 1, UpdatedAt: c.clock(), By: c.by, Note: note}
	if ks != nil {
		next.Version, next.ExportID, next.Interchange = ks.Version+1, ks.ExportID, ks.Interchange
	}
	if err := c.ledger.PutKey(ctx, next); err != nil {
		return nil, fmt.Errorf("custody: retiring 0x%s: %w", pubkey, err)
	}
	return next, nil
}

// CheckSignable refuses a key no operation may sign for: retired, forged,
// or never handed out (not exported, not imported).
func (c *Custodian) CheckSignable(ctx context.Context, pubkey string) (*store.Record, *store.KeyState, error) {
	rec, ks, err := c.Get(ctx, pubkey)
	if err != nil {
		return nil, nil, err
	}
	if err := CheckSignableState(rec, ks); err != nil {
		return nil, nil, err
	}
	return rec, ks, nil
}

// CheckSignableState is CheckSignable's rule on a record and its ledger
// state (nil: none) already read and authenticated: protected compute
// that is handed both (the enclave) asks it too.
func CheckSignableState(rec *store.Record, ks *store.KeyState) error {
	switch {
	case ks != nil && ks.State == store.StatusRetired:
		return fmt.Errorf("%w: 0x%s is retired", ErrState, rec.Pubkey)
	case ks == nil && rec.Origin != OriginImported:
		return fmt.Errorf("%w: 0x%s was never exported: it cannot be on chain", ErrState, rec.Pubkey)
	}
	return nil
}

// CheckExitRecorded is the rule for a signed exit leaving protected
// compute that does not write the ledger itself (the enclave): the
// ledger must already say exit-signed (MarkExitSigned, by the caller,
// first).
func CheckExitRecorded(rec *store.Record, ks *store.KeyState) error {
	if err := CheckSignableState(rec, ks); err != nil {
		return err
	}
	if ks == nil || ks.State != store.StatusExitSigned {
		return fmt.Errorf("%w: 0x%s is not marked exit-signed: the ledger records the exit before it is signed", ErrState, rec.Pubkey)
	}
	return nil
}

// MarkExitSigned records that a voluntary exit was signed for pubkey. Call
// it BEFORE the signed exit leaves protected compute; a retired key is
// refused.
func (c *Custodian) MarkExitSigned(ctx context.Context, pubkey string) (*store.KeyState, error) {
	_, ks, err := c.CheckSignable(ctx, pubkey)
	if err != nil {
		return nil, err
	}
	next := &store.KeyState{Pubkey: pubkey, State: store.StatusExitSigned, Version: 1, UpdatedAt: c.clock(), By: c.by}
	if ks != nil {
		if ks.State == store.StatusExitSigned {
			return ks, nil
		}
		next.Version, next.ExportID, next.Signer, next.Interchange = ks.Version+1, ks.ExportID, ks.Signer, ks.Interchange
		next.AssignedTo = ks.AssignedTo // where the key goes does not change
	}
	if err := c.ledger.PutKey(ctx, next); err != nil {
		return nil, fmt.Errorf("custody: recording the exit of 0x%s: %w", pubkey, err)
	}
	return next, nil
}

// ---- pins -------------------------------------------------------------------

// Pin names in the ledger.
const (
	PinSealingKey   = "sealing-key"
	PinMnemonicKey  = "mnemonic-key"
	PinGeneratorKey = "generator-key"
)

// ErrPin reports a key other than the one the store was first used with:
// a replaced recipient.txt or generator key, or another KMS key.
var ErrPin = errors.New("custody: not the key this store was first used with")

// CheckPin pins name to value on first use and refuses another value
// afterwards unless replace is set (an operator's deliberate key change),
// in which case the pin is not moved: the check is skipped for this run.
func CheckPin(ctx context.Context, l store.Ledger, name, value string, replace bool) error {
	if value == "" {
		return nil
	}
	got, err := l.Pin(ctx, name, value)
	if err != nil {
		return fmt.Errorf("custody: reading the store's %s pin: %w", name, err)
	}
	if got != value && !replace {
		return fmt.Errorf("%w: the store's %s is %s, this run has %s", ErrPin, name, got, value)
	}
	return nil
}

// Opener returns an Opener over this custodian's records that decrypts with
// op and accepts only records the generator's key authenticated.
func (c *Custodian) Opener(op envelope.Opener) *Opener { return NewOpener(c.records, op, c.verifier) }
