package custody

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/internal/version"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store"
)

// MaxKeysPerMnemonic bounds how many validators share one mnemonic: they are
// stored in one atomic write, and DynamoDB transactions hold 100 items (two
// per record).
const MaxKeysPerMnemonic = 50

// ErrRequestReused reports a request id that was used before with other
// parameters.
var ErrRequestReused = errors.New("custody: request id already used with different parameters")

// GenerateStore is what Generate needs of a store.
type GenerateStore interface {
	CreateRequest(ctx context.Context, r store.Request) (store.Request, error)
	Put(ctx context.Context, recs ...*store.Record) error
	Get(ctx context.Context, pubkey string) (*store.Record, error)
	GetSlot(ctx context.Context, requestID string, slot int) (*store.Record, error)
	Query(ctx context.Context, f store.Filter) iter.Seq2[*store.Record, error]
}

var _ GenerateStore = store.Store(nil)

// Request asks for Count new validators. Repeating a request with the same
// ID returns the same validators and creates none twice; a request
// interrupted half way is completed by repeating it.
type Request struct {
	ID              string // required; the idempotency key
	Count           int
	Network         depositdata.Network
	Withdrawal      Withdrawal
	Amount          uint64       // gwei; 0 means 32 ETH
	Format          SecretFormat // default FormatKeystore
	KDF             keystore.KDF // for FormatKeystore; default scrypt
	KeysPerMnemonic int          // validators per fresh mnemonic; default 1
}

func (r *Request) normalize() error {
	if r.ID == "" || len(r.ID) > 200 {
		return fmt.Errorf("%w: request id must be 1 to 200 characters", ErrRequest)
	}
	if r.Count < 1 || r.Count > MaxCount {
		return fmt.Errorf("%w: count %d (want 1 to %d)", ErrRequest, r.Count, MaxCount)
	}
	if r.Amount == 0 {
		r.Amount = depositdata.MaxAmount
	}
	if r.Format == "" {
		r.Format = FormatKeystore
	}
	if r.Format != FormatKeystore && r.Format != FormatRaw {
		return fmt.Errorf("%w: secret format %q (want keystore or raw)", ErrRequest, r.Format)
	}
	if r.KDF == "" {
		r.KDF = keystore.Scrypt
	}
	if r.KDF != keystore.Scrypt && r.KDF != keystore.PBKDF2 {
		return fmt.Errorf("%w: kdf %q", ErrRequest, r.KDF)
	}
	if r.KeysPerMnemonic == 0 {
		r.KeysPerMnemonic = 1
	}
	if r.KeysPerMnemonic < 1 || r.KeysPerMnemonic > MaxKeysPerMnemonic {
		return fmt.Errorf("%w: keys per mnemonic %d (want 1 to %d)", ErrRequest, r.KeysPerMnemonic, MaxKeysPerMnemonic)
	}
	if r.Network.Name == "" {
		return fmt.Errorf("%w: network is required", ErrRequest)
	}
	return r.Withdrawal.check(r.Amount)
}

// keyIDs names the keys this generator seals and signs with (for the
// request fingerprint): resuming a request under another key would leave
// its secrets split between two keys.
func (g *Generator) keyIDs() []string {
	ids := []string{g.sealer.KeyID(), "", g.signer.KeyID()}
	if g.mnemonicSealer != nil {
		ids[1] = g.mnemonicSealer.KeyID()
	}
	return ids
}

func (r *Request) fingerprint(keyIDs []string) string {
	var addr string
	if r.Withdrawal.Address != nil {
		addr = r.Withdrawal.Address.String()
	}
	b, _ := json.Marshal([]any{r.Count, r.Network.Name, hex.EncodeToString(r.Network.ForkVersion[:]), addr, r.Withdrawal.Compounding,
		r.Amount, r.Format, r.KDF, r.KeysPerMnemonic, keyIDs})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Validator is the public part of one stored validator, as VerifyRecord
// and Custodian.Check read it.
type Validator struct {
	Slot    int
	Pubkey  string
	Deposit *depositdata.Deposit
	Status  store.Status
}

// Stored is one validator of a request as Generate returns it: which slot
// holds which key. Its deposit is handed out only through an export
// (Custodian.Export), never by Generate.
type Stored struct {
	Slot   int
	Pubkey string
}

// Result is what Generate returns: public data only, and no deposit.
type Result struct {
	RequestID  string
	Validators []Stored // in slot order
	Created    int      // validators created by this call (the rest existed)
}

// Pubkeys are the result's pubkeys, in slot order.
func (r *Result) Pubkeys() []string {
	out := make([]string, len(r.Validators))
	for i, v := range r.Validators {
		out[i] = v.Pubkey
	}
	return out
}

// Generator makes validators and stores them sealed. It can seal but holds
// nothing that opens what it sealed.
type Generator struct {
	store          GenerateStore
	sealer         envelope.Sealer
	signer         provenance.Signer
	mnemonicSealer envelope.Sealer
	ledger         store.Ledger // optional: pins the keys on first use
	replaceKeys    bool
	random         io.Reader
	maxMemory      int64
	provenance     store.Provenance
	keystoreOpts   []keystore.Option
	now            func() time.Time
	afterSeal      func(slot int) // test hook: called before each Put
}

// Option configures a Generator.
type Option interface{ apply(*Generator) error }

type optionFunc func(*Generator) error

func (f optionFunc) apply(g *Generator) error { return f(g) }

// WithMnemonicSealer seals each mnemonic under a separate key (a second KMS
// key or recipient), so the side that opens signing keys never sees it.
func WithMnemonicSealer(s envelope.Sealer) Option {
	return optionFunc(func(g *Generator) error { g.mnemonicSealer = s; return nil })
}

// WithLedger makes Generate check the store's key pins in ledger first:
// the sealing key (recipient or KMS key), the mnemonic key and the
// generator's signing key are pinned on first use, and a run with another
// key is refused (a replaced recipient.txt would seal new validators to
// whoever wrote it) unless replace says the change is deliberate.
func WithLedger(l store.Ledger, replace bool) Option {
	return optionFunc(func(g *Generator) error { g.ledger, g.replaceKeys = l, replace; return nil })
}

// WithRandom replaces crypto/rand (it must be safe for concurrent use).
func WithRandom(r io.Reader) Option {
	return optionFunc(func(g *Generator) error { g.random = r; return nil })
}

// WithMaxMemory bounds the memory of key generation (bytes).
func WithMaxMemory(n int64) Option {
	return optionFunc(func(g *Generator) error {
		if n < 0 {
			return errors.New("custody: negative memory bound")
		}
		g.maxMemory = n
		return nil
	})
}

// WithInsecureKDFCost lowers the keystore KDF cost. Tests only.
func WithInsecureKDFCost(t testing.TB, cost int) Option {
	return optionFunc(func(g *Generator) error {
		g.keystoreOpts = append(g.keystoreOpts, keystore.WithInsecureCost(t, cost))
		return nil
	})
}

// NewGenerator makes a Generator that seals with sealer, authenticates each
// record with signer (the generator's key: exports and loads refuse any
// record it did not sign) and writes to st.
func NewGenerator(st GenerateStore, sealer envelope.Sealer, signer provenance.Signer, opts ...Option) (*Generator, error) {
	if st == nil || sealer == nil || signer == nil {
		return nil, errors.New("custody: a store, a sealer and a signing key are required")
	}
	g := &Generator{store: st, sealer: sealer, signer: signer, random: rand.Reader, now: time.Now,
		provenance: store.Provenance{Version: version.Version, BuildHash: version.BuildHash()}}
	for _, o := range opts {
		if err := o.apply(g); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Generate makes the validators of req that are not stored yet, stores each
// group sealed and atomically, and returns every validator of the request
// as read back from the store. progress, when set, is called with the
// number of stored validators of the request.
//
// For each validator: a fresh mnemonic (or one per KeysPerMnemonic
// validators), EIP-2333 derivation, the keystore (verified without a
// second KDF run) or the raw key, the deposit (verified with an independent
// BLS implementation), the sealed document, then the store write. Only what
// the store holds is returned, so no deposit is ever returned for a secret
// that is not stored.
func (g *Generator) Generate(ctx context.Context, req Request, progress func(done, total int)) (*Result, error) {
	if err := req.normalize(); err != nil {
		return nil, err
	}
	if g.ledger != nil {
		pins := [][2]string{{PinSealingKey, g.sealer.KeyID()}, {PinGeneratorKey, g.signer.KeyID()}}
		if g.mnemonicSealer != nil {
			pins = append(pins, [2]string{PinMnemonicKey, g.mnemonicSealer.KeyID()})
		}
		for _, p := range pins {
			if err := CheckPin(ctx, g.ledger, p[0], p[1], g.replaceKeys); err != nil {
				return nil, err
			}
		}
	}
	fp := req.fingerprint(g.keyIDs())
	existing, err := g.store.CreateRequest(ctx, store.Request{ID: req.ID, Fingerprint: fp, Count: req.Count, CreatedAt: g.now()})
	have := &slotSet{m: map[int]Stored{}}
	switch {
	case errors.Is(err, store.ErrExists):
		if existing.Fingerprint != fp || existing.Count != req.Count {
			return nil, fmt.Errorf("%w (or with another sealing key): %q", ErrRequestReused, req.ID)
		}
		// A repeat or a resume: read what is stored. Query may lag on
		// DynamoDB (its indexes are eventually consistent), so every slot
		// it does not show is looked up with a consistent read.
		if err := g.readSlots(ctx, &req, have); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("custody: recording request: %w", err)
	}
	k := req.KeysPerMnemonic
	var groups []int
	for start := 0; start < req.Count; start += k {
		for s := start; s < min(start+k, req.Count); s++ {
			if !have.has(s) {
				groups = append(groups, start)
				break
			}
		}
	}
	var done atomic.Int64
	done.Store(int64(have.len()))
	if progress != nil {
		progress(have.len(), req.Count)
	}
	perWorker := int64(16 << 20)
	if req.Format == FormatKeystore {
		perWorker = kdfMemory(req.KDF)
	}
	workers := Workers(g.maxMemory, perWorker)
	if req.Format == FormatRaw {
		workers *= 2 // little CPU each: overlap the store round trips
	}
	// One job per validator, so that even a single shared-mnemonic group
	// uses every core. A group's mnemonic is made when its first job starts
	// and wiped when the group is stored; jobs are handed out in order, so
	// only about `workers` mnemonics exist at once.
	type job struct {
		grp   *group
		index int // within the group
	}
	var jobs []job
	all := make([]*group, len(groups))
	for i, start := range groups {
		all[i] = &group{start: start, n: min(k, req.Count-start)}
		all[i].recs = make([]*store.Record, all[i].n)
		all[i].left.Store(int32(all[i].n))
		for j := range all[i].n {
			jobs = append(jobs, job{all[i], j})
		}
	}
	defer func() {
		for _, grp := range all {
			grp.wipe()
		}
	}()
	created := atomic.Int64{}
	err = forEach(ctx, len(jobs), workers, func(ctx context.Context, i int) error {
		grp, j := jobs[i].grp, jobs[i].index
		mnemonic, seed, err := grp.secrets(g.random)
		if err != nil {
			return err
		}
		rec, err := g.makeValidator(ctx, &req, seed, mnemonic, grp.start+j, uint32(j))
		if err != nil {
			return err
		}
		grp.recs[j] = rec
		if grp.left.Add(-1) != 0 {
			return nil // the group's last validator stores it
		}
		grp.wipe()
		if g.afterSeal != nil {
			g.afterSeal(grp.start)
		}
		n, err := g.put(ctx, grp.recs)
		if err != nil {
			return err
		}
		if n > 0 {
			for _, rec := range grp.recs {
				have.add(Stored{Slot: rec.Slot, Pubkey: rec.Pubkey})
			}
		} else if err := g.lookupSlots(ctx, &req, have, grp.start, grp.start+grp.n); err != nil {
			return err // another run stored this group first: read its records
		}
		created.Add(int64(n))
		total := done.Add(int64(grp.n))
		if progress != nil {
			progress(int(total), req.Count)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := g.lookupSlots(ctx, &req, have, 0, req.Count); err != nil {
		return nil, err
	}
	res := &Result{RequestID: req.ID, Created: int(created.Load())}
	for slot := 0; slot < req.Count; slot++ {
		v, ok := have.get(slot)
		if !ok {
			return nil, fmt.Errorf("custody: request %q: slot %d missing after generation", req.ID, slot)
		}
		res.Validators = append(res.Validators, v)
	}
	return res, nil
}

// slotSet is the stored validators of a request, by slot.
type slotSet struct {
	mu sync.Mutex
	m  map[int]Stored
}

func (s *slotSet) add(v Stored) { s.mu.Lock(); s.m[v.Slot] = v; s.mu.Unlock() }

func (s *slotSet) has(slot int) bool {
	_, ok := s.get(slot)
	return ok
}

func (s *slotSet) len() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.m) }

func (s *slotSet) get(slot int) (Stored, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[slot]
	return v, ok
}

// readSlots reads a request's stored validators: Query, then a consistent
// read of every slot Query did not show.
func (g *Generator) readSlots(ctx context.Context, req *Request, have *slotSet) error {
	for rec, err := range g.store.Query(ctx, store.Filter{RequestID: req.ID}) {
		if err != nil {
			return fmt.Errorf("custody: reading request %q: %w", req.ID, err)
		}
		v, err := g.checkStored(req, rec)
		if err != nil {
			return err
		}
		have.add(v)
	}
	return g.lookupSlots(ctx, req, have, 0, req.Count)
}

// lookupSlots fills the slots in [from, to) that have is missing with
// consistent reads; a slot nobody stored stays missing.
func (g *Generator) lookupSlots(ctx context.Context, req *Request, have *slotSet, from, to int) error {
	for slot := from; slot < to; slot++ {
		if have.has(slot) {
			continue
		}
		rec, err := g.store.GetSlot(ctx, req.ID, slot)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("custody: reading request %q slot %d: %w", req.ID, slot, err)
		}
		v, err := g.checkStored(req, rec)
		if err != nil {
			return err
		}
		have.add(v)
	}
	return nil
}

// checkStored checks a record read back from the store before it counts
// as a slot of the request: it is signed by this generator's key and its
// deposit verifies and pays the request's amount to the request's kind of
// credentials (and address). Export checks the authenticator itself.
func (g *Generator) checkStored(req *Request, rec *store.Record) (Stored, error) {
	if rec.AuthKeyID != g.signer.KeyID() || len(rec.Auth) == 0 {
		return Stored{}, fmt.Errorf("%w: 0x%s (request %s slot %d) is not signed by this generator's key", ErrForged, rec.Pubkey, rec.RequestID, rec.Slot)
	}
	v, err := ValidatorOf(rec)
	if err != nil {
		return Stored{}, err
	}
	d := v.Deposit
	if err := d.Verify(req.Network); err != nil {
		return Stored{}, fmt.Errorf("custody: stored deposit of 0x%s does not verify: %w", rec.Pubkey, err)
	}
	if d.Amount != req.Amount || d.WithdrawalCredentials != rec.WithdrawalCredentials {
		return Stored{}, fmt.Errorf("custody: stored deposit of 0x%s does not match its request (amount or credentials)", rec.Pubkey)
	}
	if req.Withdrawal.Address != nil {
		want := depositdata.ExecutionCredentials(*req.Withdrawal.Address, req.Withdrawal.Compounding)
		if d.WithdrawalCredentials != hex.EncodeToString(want[:]) {
			return Stored{}, fmt.Errorf("custody: stored deposit of 0x%s pays to other withdrawal credentials than its request", rec.Pubkey)
		}
	} else if !strings.HasPrefix(d.WithdrawalCredentials, "00") {
		return Stored{}, fmt.Errorf("custody: stored deposit of 0x%s has execution credentials where its request has BLS ones", rec.Pubkey)
	}
	return Stored{Slot: rec.Slot, Pubkey: rec.Pubkey}, nil
}

// VerifyRecord is ValidatorOf plus the checks a Launchpad file needs: the
// deposit verifies (signature, roots) for the record's network and carries
// the record's withdrawal credentials.
func VerifyRecord(rec *store.Record) (Validator, error) {
	v, err := ValidatorOf(rec)
	if err != nil {
		return Validator{}, err
	}
	network, err := depositdata.NetworkByName(rec.Network)
	if err != nil {
		network, err = depositdata.CustomNetwork(rec.Network, v.Deposit.ForkVersion)
	}
	if err == nil {
		err = v.Deposit.Verify(network)
	}
	if err != nil {
		return Validator{}, fmt.Errorf("custody: stored deposit of 0x%s does not verify: %w", rec.Pubkey, err)
	}
	if v.Deposit.WithdrawalCredentials != rec.WithdrawalCredentials {
		return Validator{}, fmt.Errorf("custody: stored deposit of 0x%s does not carry its record's credentials", rec.Pubkey)
	}
	return v, nil
}

// ValidatorOf reads the public part of a stored record.
func ValidatorOf(rec *store.Record) (Validator, error) {
	var d depositdata.Deposit
	if err := json.Unmarshal(rec.DepositData, &d); err != nil || d.Pubkey != rec.Pubkey {
		return Validator{}, fmt.Errorf("custody: record %s has malformed deposit data", rec.Pubkey)
	}
	return Validator{Slot: rec.Slot, Pubkey: rec.Pubkey, Deposit: &d, Status: rec.Status}, nil
}

// group is the validators that share one fresh mnemonic; they are stored
// in one atomic write.
type group struct {
	start, n int
	recs     []*store.Record
	left     atomic.Int32 // validators not built yet

	once     sync.Once
	mnemonic *keygen.Mnemonic
	seed     *keygen.Bytes
	err      error
}

// secrets makes the group's mnemonic and seed on first use.
func (grp *group) secrets(random io.Reader) (*keygen.Mnemonic, *keygen.Bytes, error) {
	grp.once.Do(func() {
		grp.mnemonic, grp.err = keygen.NewMnemonic(random, keygen.English)
		if grp.err == nil {
			grp.seed = grp.mnemonic.Seed("")
		}
	})
	return grp.mnemonic, grp.seed, grp.err
}

// wipe clears the group's mnemonic and seed once all its validators are
// built (or the run is over; no job runs then). Safe to call twice.
func (grp *group) wipe() {
	grp.mnemonic.Destroy()
	grp.seed.Destroy()
}

func (g *Generator) makeValidator(ctx context.Context, req *Request, seed *keygen.Bytes, mnemonic *keygen.Mnemonic, slot int, index uint32) (*store.Record, error) {
	v, err := keygen.DeriveValidator(seed, index)
	if err != nil {
		return nil, err
	}
	defer v.Destroy()
	creds := req.Withdrawal.Credentials(v)
	dep, err := depositdata.Build(v.Signing, creds, req.Amount, req.Network)
	if err != nil {
		return nil, err
	}
	depJSON, err := json.Marshal(dep)
	if err != nil {
		return nil, err
	}
	doc := secretDoc{pubkey: dep.Pubkey, format: req.Format, index: index}
	if g.mnemonicSealer == nil {
		doc.mnemonic = []byte(mnemonic.UnsafeString())
	}
	switch req.Format {
	case FormatKeystore:
		password, err := keystore.RandomPassword(g.random)
		if err != nil {
			return nil, err
		}
		defer password.Destroy()
		opts := append([]keystore.Option{keystore.WithKDF(req.KDF), keystore.WithPubkey(v.Signing.PublicKey()),
			keystore.WithPath(keygen.SigningPath(index))}, g.keystoreOpts...)
		ks, err := keystore.Encrypt(g.random, v.Signing.UnsafeBytes(), password.UnsafeBytes(), opts...)
		if err != nil {
			return nil, err
		}
		if doc.keystore, err = ks.Marshal(); err != nil {
			return nil, err
		}
		doc.password = password.UnsafeBytes()
		// The raw key too, so that opening needs no KDF run: whoever
		// opens this document holds the keystore's password anyway.
		doc.key = v.Signing.UnsafeBytes()
	case FormatRaw:
		doc.key = v.Signing.UnsafeBytes()
	}
	rec := &store.Record{
		Pubkey: dep.Pubkey, RequestID: req.ID, Slot: slot, Network: req.Network.Name,
		WithdrawalCredentials: dep.WithdrawalCredentials, DepositData: depJSON, Origin: OriginGenerated,
		Status: store.StatusGenerated, CreatedAt: g.now().UTC().Truncate(time.Millisecond), Provenance: g.provenance,
	}
	plain := doc.marshal()
	sealed, err := g.sealer.Seal(ctx, plain, sealContext(rec, PurposeSecret))
	keygen.Wipe(plain)
	keygen.Wipe(doc.mnemonic)
	if err != nil {
		return nil, fmt.Errorf("custody: sealing: %w", err)
	}
	rec.Sealed = sealed
	if g.mnemonicSealer != nil {
		md := secretDoc{pubkey: dep.Pubkey, format: "mnemonic", index: index, mnemonic: []byte(mnemonic.UnsafeString())}
		plain := md.marshal()
		rec.SealedMnemonic, err = g.mnemonicSealer.Seal(ctx, plain, sealContext(rec, PurposeMnemonic))
		keygen.Wipe(plain)
		keygen.Wipe(md.mnemonic)
		if err != nil {
			return nil, fmt.Errorf("custody: sealing mnemonic: %w", err)
		}
	}
	if err := signRecord(ctx, g.signer, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// putAttempts bounds retries of a store write whose outcome is unknown.
const putAttempts = 4

// put stores one group atomically. A slot already taken means a concurrent
// run of the same request stored its own group first: ours is dropped
// (never stored, so nothing is orphaned). After ErrUnavailable the outcome
// is unknown, so put checks with Get before retrying.
func (g *Generator) put(ctx context.Context, recs []*store.Record) (int, error) {
	var err error
	for attempt := range putAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
			}
			got, gerr := g.store.Get(ctx, recs[0].Pubkey)
			if gerr == nil && slices.Equal(got.Sealed, recs[0].Sealed) {
				return len(recs), nil // the earlier write landed
			}
			if gerr != nil && !errors.Is(gerr, store.ErrNotFound) {
				err = gerr
				continue
			}
		}
		err = g.store.Put(ctx, recs...)
		switch {
		case err == nil:
			return len(recs), nil
		case errors.Is(err, store.ErrExists):
			return 0, nil
		case !errors.Is(err, store.ErrUnavailable):
			return 0, fmt.Errorf("custody: storing: %w", err)
		}
	}
	return 0, fmt.Errorf("custody: storing (gave up after %d attempts; run the same request again to complete it): %w", putAttempts, err)
}
