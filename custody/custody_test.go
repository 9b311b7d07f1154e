//go:build !ethkeygen_fuzzonly

package custody

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/envelope/envelopetest"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
)

type fixture struct {
	store    store.Store
	ledger   store.Ledger
	identity *age.X25519Identity
	signer   provenance.Signer
	verifier provenance.Verifier
	gen      *Generator
	opener   *Opener
	cust     *Custodian
}

func newFixture(t *testing.T, opts ...Option) *fixture {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "ethkeygen.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newFixtureOn(t, st, opts...)
}

func newFixtureOn(t *testing.T, st store.Store, opts ...Option) *fixture {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	signer, _, err := provenance.LoadOrCreateLocalSigner(keys)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := provenance.LoadLocalVerifier(keys)
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := sqlitestore.OpenLedger(context.Background(), filepath.Join(t.TempDir(), "ethkeygen.db.ledger"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	opts = append([]Option{WithInsecureKDFCost(t, 16)}, opts...)
	g, err := NewGenerator(st, envelope.NewLocalSealer(id.Recipient()), signer, opts...)
	if err != nil {
		t.Fatal(err)
	}
	cust, err := NewCustodian(st, ledger, verifier, WithActor("test"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{store: st, ledger: ledger, identity: id, signer: signer, verifier: verifier, gen: g,
		opener: NewOpener(st, envelope.NewLocalOpener(id), verifier), cust: cust}
}

// testKeys is a fresh generator key pair.
func testKeys(t testing.TB) (provenance.Signer, provenance.Verifier) {
	t.Helper()
	dir := t.TempDir()
	s, _, err := provenance.LoadOrCreateLocalSigner(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := provenance.LoadLocalVerifier(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func hoodiRequest(id string, count int) Request {
	return Request{ID: id, Count: count, Network: depositdata.Hoodi}
}

// checkAll opens every validator of res and checks it end to end.
func checkAll(t *testing.T, f *fixture, res *Result, count int) {
	t.Helper()
	if len(res.Validators) != count {
		t.Fatalf("%d validators, want %d", len(res.Validators), count)
	}
	seen := map[string]bool{}
	for i, v := range res.Validators {
		if v.Slot != i || seen[v.Pubkey] {
			t.Fatalf("slot %d: %+v (duplicate or out of order)", i, v)
		}
		seen[v.Pubkey] = true
		rec, err := f.store.Get(context.Background(), v.Pubkey)
		if err != nil {
			t.Fatal(err)
		}
		checked, err := f.cust.Check(rec)
		if err != nil {
			t.Fatal(err)
		}
		if err := checked.Deposit.Verify(depositdata.Hoodi); err != nil {
			t.Fatal(err)
		}
		s, _, err := f.opener.Open(context.Background(), v.Pubkey)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if hex.EncodeToString(s.SigningKey().PublicKey()) != v.Pubkey {
			t.Fatal("opened key is not the validator's")
		}
		s.Destroy()
	}
}

func TestGenerateAndOpen(t *testing.T) {
	for _, format := range []SecretFormat{FormatKeystore, FormatRaw} {
		t.Run(string(format), func(t *testing.T) {
			f := newFixture(t)
			req := hoodiRequest("req-"+string(format), 5)
			req.Format = format
			res, err := f.gen.Generate(context.Background(), req, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Created != 5 {
				t.Fatalf("created %d", res.Created)
			}
			checkAll(t, f, res, 5)
			s, _, _ := f.opener.Open(context.Background(), res.Validators[0].Pubkey)
			defer s.Destroy()
			if s.Format != format || s.Index != 0 || len(s.UnsafeMnemonic()) == 0 {
				t.Fatalf("secret %v %d", s.Format, s.Index)
			}
			if format == FormatKeystore {
				if s.Keystore == nil || len(s.UnsafePassword()) != 32 {
					t.Fatal("keystore format without keystore and random password")
				}
				k, err := s.Keystore.DecryptKey(s.UnsafePassword())
				if err != nil || !bytes.Equal(k.UnsafeBytes(), s.SigningKey().UnsafeBytes()) {
					t.Fatal("sealed keystore does not open with its password")
				}
			}
			// One fresh mnemonic per validator by default.
			s2, _, _ := f.opener.Open(context.Background(), res.Validators[1].Pubkey)
			defer s2.Destroy()
			if bytes.Equal(s.UnsafeMnemonic(), s2.UnsafeMnemonic()) {
				t.Fatal("two validators share a mnemonic")
			}
			if fmt.Sprintf("%v %+v %#v", s, s, s) != strings.Repeat(keygen.Redacted+" ", 2)+keygen.Redacted {
				t.Fatal("secret does not redact itself")
			}
		})
	}
}

func TestGenerateIsIdempotent(t *testing.T) {
	f := newFixture(t)
	req := hoodiRequest("same-id", 4)
	req.Format = FormatRaw
	first, err := f.gen.Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.gen.Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if second.Created != 0 {
		t.Fatalf("repeat created %d", second.Created)
	}
	for i := range first.Validators {
		if first.Validators[i].Pubkey != second.Validators[i].Pubkey {
			t.Fatal("repeat returned other validators")
		}
	}
	other := req
	other.Count = 5
	if _, err := f.gen.Generate(context.Background(), other, nil); !errors.Is(err, ErrRequestReused) {
		t.Fatalf("reused id with another count: %v", err)
	}
	other = req
	other.Network = depositdata.Mainnet
	if _, err := f.gen.Generate(context.Background(), other, nil); !errors.Is(err, ErrRequestReused) {
		t.Fatalf("reused id on another network: %v", err)
	}
	if n := countRecords(t, f.store, store.Filter{}); n != 4 {
		t.Fatalf("%d records", n)
	}
}

func countRecords(t *testing.T, st store.Store, filter store.Filter) int {
	t.Helper()
	n := 0
	for _, err := range st.Query(context.Background(), filter) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func TestInterruptedRunResumes(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	var puts atomic.Int32
	f.gen.afterSeal = func(int) {
		if puts.Add(1) == 3 {
			cancel() // the process dies between sealing and storing
		}
	}
	req := hoodiRequest("resume", 8)
	req.Format = FormatRaw
	if _, err := f.gen.Generate(ctx, req, nil); err == nil {
		t.Fatal("interrupted run reported success")
	}
	stored := countRecords(t, f.store, store.Filter{})
	if stored >= 8 {
		t.Fatalf("%d stored: the interruption did not interrupt", stored)
	}
	f.gen.afterSeal = nil
	res, err := f.gen.Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 8-stored {
		t.Fatalf("resume created %d, want %d", res.Created, 8-stored)
	}
	checkAll(t, f, res, 8)
	if n := countRecords(t, f.store, store.Filter{}); n != 8 {
		t.Fatalf("%d records after resume", n)
	}
}

func TestConcurrentRunsOfOneRequest(t *testing.T) {
	f := newFixture(t)
	req := hoodiRequest("racing", 6)
	req.Format = FormatRaw
	var wg sync.WaitGroup
	results := make([]*Result, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := f.gen.Generate(context.Background(), req, nil)
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = res
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, r := range results[1:] {
		for i := range r.Validators {
			if r.Validators[i].Pubkey != results[0].Validators[i].Pubkey {
				t.Fatal("concurrent runs disagree")
			}
		}
	}
	if n := countRecords(t, f.store, store.Filter{}); n != 6 {
		t.Fatalf("%d records", n)
	}
}

func TestKeysPerMnemonic(t *testing.T) {
	f := newFixture(t)
	req := hoodiRequest("kpm", 7)
	req.Format = FormatRaw
	req.KeysPerMnemonic = 3
	res, err := f.gen.Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkAll(t, f, res, 7)
	var mnemonics [][]byte
	for i, v := range res.Validators {
		s, _, err := f.opener.Open(context.Background(), v.Pubkey)
		if err != nil {
			t.Fatal(err)
		}
		if s.Index != uint32(i%3) {
			t.Fatalf("slot %d has index %d", i, s.Index)
		}
		mnemonics = append(mnemonics, bytes.Clone(s.UnsafeMnemonic()))
		s.Destroy()
	}
	if !bytes.Equal(mnemonics[0], mnemonics[2]) || bytes.Equal(mnemonics[2], mnemonics[3]) || !bytes.Equal(mnemonics[3], mnemonics[5]) || bytes.Equal(mnemonics[5], mnemonics[6]) {
		t.Fatal("groups of 3 must share a mnemonic, and only within the group")
	}
}

func TestSeparateMnemonicKey(t *testing.T) {
	mnID, _ := age.GenerateX25519Identity()
	f := newFixture(t, WithMnemonicSealer(envelope.NewLocalSealer(mnID.Recipient())))
	req := hoodiRequest("sep", 2)
	req.Format = FormatRaw
	res, err := f.gen.Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, rec, err := f.opener.Open(context.Background(), res.Validators[1].Pubkey)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	if s.UnsafeMnemonic() != nil {
		t.Fatal("the signing side saw the mnemonic")
	}
	if _, _, err := OpenMnemonic(context.Background(), envelope.NewLocalOpener(f.identity), f.verifier, rec); !errors.Is(err, envelope.ErrAuth) {
		t.Fatalf("signing key opened the mnemonic: %v", err)
	}
	m, idx, err := OpenMnemonic(context.Background(), envelope.NewLocalOpener(mnID), f.verifier, rec)
	if err != nil || idx != 0 || m.Len() == 0 {
		t.Fatalf("mnemonic: %v", err)
	}
	m.Destroy()
}

// TestSwappedSecretsFailToOpen: a sealed secret moved to another record
// does not open (the encryption context binds it to its pubkey).
func TestSwappedSecretsFailToOpen(t *testing.T) {
	f := newFixture(t)
	req := hoodiRequest("swap", 2)
	req.Format = FormatRaw
	res, err := f.gen.Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.store.Get(context.Background(), res.Validators[0].Pubkey)
	b, _ := f.store.Get(context.Background(), res.Validators[1].Pubkey)
	a.Sealed = b.Sealed
	if _, err := f.opener.OpenRecord(context.Background(), a); !errors.Is(err, ErrForged) {
		t.Fatalf("swapped secret: %v", err)
	}
	// With the authenticator taken out of the way, the encryption context
	// still refuses it.
	if err := signRecord(context.Background(), f.signer, a); err != nil {
		t.Fatal(err)
	}
	if _, err := f.opener.OpenRecord(context.Background(), a); !errors.Is(err, envelope.ErrAuth) {
		t.Fatalf("swapped secret, re-signed: %v", err)
	}
	other, _ := age.GenerateX25519Identity()
	if _, _, err := NewOpener(f.store, envelope.NewLocalOpener(other), f.verifier).Open(context.Background(), b.Pubkey); !errors.Is(err, envelope.ErrAuth) {
		t.Fatalf("wrong identity: %v", err)
	}
}

// flakyStore fails Put as a store that is down would: before or after the
// write lands.
type flakyStore struct {
	store.Store
	mu        sync.Mutex
	puts      int
	failFrom  int  // first Put (1-based) that fails
	failCount int  // how many fail
	landed    bool // the failing Put still writes (lost reply)
}

func (s *flakyStore) Put(ctx context.Context, recs ...*store.Record) error {
	s.mu.Lock()
	s.puts++
	fail := s.puts >= s.failFrom && s.puts < s.failFrom+s.failCount
	s.mu.Unlock()
	if !fail {
		return s.Store.Put(ctx, recs...)
	}
	if s.landed {
		_ = s.Store.Put(ctx, recs...)
	}
	return fmt.Errorf("%w: injected outage", store.ErrUnavailable)
}

func (s *flakyStore) Query(ctx context.Context, f store.Filter) iter.Seq2[*store.Record, error] {
	return s.Store.Query(ctx, f)
}

func TestStoreFaults(t *testing.T) {
	for _, c := range []struct {
		name      string
		failCount int
		landed    bool
		wantErr   bool
	}{
		{"brief outage is retried", 2, false, false},
		{"lost reply is not written twice", 1, true, false},
		{"long outage fails, re-run completes", 100, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			base, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
			if err != nil {
				t.Fatal(err)
			}
			defer base.Close()
			fl := &flakyStore{Store: base, failFrom: 3, failCount: c.failCount, landed: c.landed}
			f := newFixtureOn(t, fl)
			req := hoodiRequest("faults", 20)
			req.Format = FormatRaw
			res, err := f.gen.Generate(context.Background(), req, nil)
			if c.wantErr != (err != nil) {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				if res != nil {
					t.Fatal("a failed run returned deposits")
				}
				fl.mu.Lock()
				fl.failCount = 0
				fl.mu.Unlock()
				if res, err = f.gen.Generate(context.Background(), req, nil); err != nil {
					t.Fatal(err)
				}
			}
			checkAll(t, f, res, 20)
			if n := countRecords(t, base, store.Filter{}); n != 20 {
				t.Fatalf("%d records", n)
			}
		})
	}
}

func TestKMSFaults(t *testing.T) {
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fake := envelopetest.NewKMS()
	arn := fake.CreateKey()
	signer, verifier := testKeys(t)
	g, err := NewGenerator(st, envelope.NewKMSSealer(fake, arn), signer, WithInsecureKDFCost(t, 16))
	if err != nil {
		t.Fatal(err)
	}
	req := hoodiRequest("kms", 20)
	req.Format = FormatRaw
	// KMS refuses part way through the run: first throttling (after the
	// SDK's own retries), then a denied permission.
	for _, fault := range []error{envelopetest.Throttling(), envelopetest.AccessDenied()} {
		fake.ClearFailures()
		var sealed atomic.Int32
		g.afterSeal = func(int) {
			if sealed.Add(1) == 5 {
				fake.Fail(envelopetest.OpGenerateDataKey, -1, fault)
			}
		}
		res, err := g.Generate(context.Background(), req, nil)
		if err == nil || res != nil {
			t.Fatalf("KMS fault %v: run reported success", fault)
		}
		var code string
		if strings.Contains(err.Error(), "Throttling") {
			code = "Throttling"
		} else if strings.Contains(err.Error(), "AccessDenied") {
			code = "AccessDenied"
		}
		if code == "" || strings.Contains(err.Error(), "\n") {
			t.Fatalf("error does not name the KMS fault in one line: %v", err)
		}
		// Every stored record opens: no record without its secret.
		for rec, err := range st.Query(context.Background(), store.Filter{RequestID: "kms"}) {
			if err != nil {
				t.Fatal(err)
			}
			if len(rec.Sealed) == 0 {
				t.Fatal("record without a sealed secret")
			}
		}
	}
	g.afterSeal = nil
	fake.ClearFailures()
	res, err := g.Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := NewOpener(st, envelope.NewKMSOpener(fake), verifier)
	for _, v := range res.Validators {
		s, _, err := o.Open(context.Background(), v.Pubkey)
		if err != nil {
			t.Fatal(err)
		}
		s.Destroy()
	}
	if n := countRecords(t, st, store.Filter{}); n != 20 {
		t.Fatalf("%d records", n)
	}
}

func TestRequestValidation(t *testing.T) {
	f := newFixture(t)
	a, _ := depositdata.ParseAddress("0x0f51bb10119727a7e5eA3538074fb341F56B09Ad", false)
	for name, req := range map[string]Request{
		"no id":        {Count: 1, Network: depositdata.Hoodi},
		"count 0":      {ID: "x", Network: depositdata.Hoodi},
		"count huge":   {ID: "x", Count: MaxCount + 1, Network: depositdata.Hoodi},
		"no network":   {ID: "x", Count: 1},
		"bad format":   {ID: "x", Count: 1, Network: depositdata.Hoodi, Format: "pem"},
		"kpm too big":  {ID: "x", Count: 1, Network: depositdata.Hoodi, KeysPerMnemonic: 51},
		"amount low":   {ID: "x", Count: 1, Network: depositdata.Hoodi, Amount: 1},
		"amount high":  {ID: "x", Count: 1, Network: depositdata.Hoodi, Amount: 33 * depositdata.GweiPerETH},
		"0x02 no addr": {ID: "x", Count: 1, Network: depositdata.Hoodi, Withdrawal: Withdrawal{Compounding: true}},
		"0x02 > 2048":  {ID: "x", Count: 1, Network: depositdata.Hoodi, Withdrawal: Withdrawal{Address: &a, Compounding: true}, Amount: 2049 * depositdata.GweiPerETH},
	} {
		if _, err := f.gen.Generate(context.Background(), req, nil); !errors.Is(err, ErrRequest) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := countRecords(t, f.store, store.Filter{}); n != 0 {
		t.Fatal("invalid requests stored something")
	}
	_ = rand.Reader
}

func TestSpec(t *testing.T) {
	good := `{"request_id":"r1","count":3,"chain":"hoodi","withdrawal_address":"0x0f51bb10119727a7e5eA3538074fb341F56B09Ad","compounding":true,"amount_gwei":64000000000}`
	s, err := ParseSpec([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Request()
	if err != nil || r.Count != 3 || r.Network != depositdata.Hoodi || !r.Withdrawal.Compounding || r.Amount != 64e9 || r.Format != FormatKeystore {
		t.Fatalf("%+v %v", r, err)
	}
	for name, bad := range map[string]string{
		"unknown field": `{"request_id":"r","count":1,"chain":"hoodi","extra":1}`,
		"trailing":      `{"request_id":"r","count":1,"chain":"hoodi"} {}`,
		"not json":      `{`,
		"count string":  `{"request_id":"r","count":"1","chain":"hoodi"}`,
		"huge":          `{"request_id":"` + strings.Repeat("a", MaxSpecSize) + `"}`,
	} {
		if _, err := ParseSpec([]byte(bad)); !errors.Is(err, ErrRequest) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, bad := range map[string]Spec{
		"no chain":     {RequestID: "r", Count: 1},
		"bad chain":    {RequestID: "r", Count: 1, Chain: "goerli"},
		"bad checksum": {RequestID: "r", Count: 1, Chain: "hoodi", WithdrawalAddress: "0x0F51bb10119727a7e5eA3538074fb341F56B09Ad"},
		"count 0":      {RequestID: "r", Chain: "hoodi"},
	} {
		if _, err := bad.Request(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// concurrencySealer records how many Seal calls run at once.
type concurrencySealer struct {
	envelope.Sealer
	now, peak atomic.Int32
}

func (c *concurrencySealer) Seal(ctx context.Context, p []byte, ec envelope.Context) ([]byte, error) {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for {
		peak := c.peak.Load()
		if n <= peak || c.peak.CompareAndSwap(peak, n) {
			break
		}
	}
	time.Sleep(5 * time.Millisecond)
	return c.Sealer.Seal(ctx, p, ec)
}

// TestOneGroupUsesEveryWorker: validators sharing one mnemonic are still
// built in parallel, and stored together.
func TestOneGroupUsesEveryWorker(t *testing.T) {
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id, _ := age.GenerateX25519Identity()
	cs := &concurrencySealer{Sealer: envelope.NewLocalSealer(id.Recipient())}
	signer, _ := testKeys(t)
	g, err := NewGenerator(st, cs, signer)
	if err != nil {
		t.Fatal(err)
	}
	req := hoodiRequest("one-group", 8)
	req.Format, req.KeysPerMnemonic = FormatRaw, 8
	res, err := g.Generate(context.Background(), req, nil)
	if err != nil || len(res.Validators) != 8 {
		t.Fatalf("%v", err)
	}
	if cs.peak.Load() < 2 {
		t.Fatalf("at most %d validator(s) of the group were built at once", cs.peak.Load())
	}
}

// staleStore answers Query as a lagging DynamoDB index might: with nothing.
type staleStore struct{ store.Store }

func (s staleStore) Query(context.Context, store.Filter) iter.Seq2[*store.Record, error] {
	return func(func(*store.Record, error) bool) {}
}

// TestStaleIndexIsNotTrusted: with Query seeing nothing (an index that has
// not caught up), a repeated request still finds every stored validator by
// consistent reads, and creates none again.
func TestStaleIndexIsNotTrusted(t *testing.T) {
	f := newFixture(t)
	req := hoodiRequest("stale", 5)
	req.Format = FormatRaw
	first, err := f.gen.Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(staleStore{f.store}, envelope.NewLocalSealer(f.identity.Recipient()), f.signer)
	if err != nil {
		t.Fatal(err)
	}
	again, err := g.Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created != 0 || len(again.Validators) != 5 || again.Validators[4].Pubkey != first.Validators[4].Pubkey {
		t.Fatalf("%+v", again)
	}
	if n := countRecords(t, f.store, store.Filter{}); n != 5 {
		t.Fatalf("%d records", n)
	}
}

// TestResumeUnderAnotherKeyIsRefused: a request cannot be continued with a
// different sealing key (its secrets would need two keys to open).
func TestResumeUnderAnotherKeyIsRefused(t *testing.T) {
	f := newFixture(t)
	req := hoodiRequest("one-key", 2)
	req.Format = FormatRaw
	if _, err := f.gen.Generate(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	g, _ := NewGenerator(f.store, envelope.NewLocalSealer(other.Recipient()), f.signer)
	if _, err := g.Generate(context.Background(), req, nil); !errors.Is(err, ErrRequestReused) {
		t.Fatalf("resume under another key: %v", err)
	}
}

// tamperStore rewrites what it reads back, as someone with write access
// to the table could.
type tamperStore struct {
	store.Store
	edit func(*store.Record)
}

func (s tamperStore) GetSlot(ctx context.Context, id string, slot int) (*store.Record, error) {
	r, err := s.Store.GetSlot(ctx, id, slot)
	if err == nil {
		s.edit(r)
	}
	return r, err
}

func (s tamperStore) Query(ctx context.Context, f store.Filter) iter.Seq2[*store.Record, error] {
	return func(yield func(*store.Record, error) bool) {
		for r, err := range s.Store.Query(ctx, f) {
			if err == nil {
				s.edit(r)
			}
			if !yield(r, err) {
				return
			}
		}
	}
}

// TestAlteredStoredDepositIsRefused: a deposit changed in the store (other
// amount, other credentials, a signature that does not verify) is not
// passed on.
func TestAlteredStoredDepositIsRefused(t *testing.T) {
	f := newFixture(t)
	a, _ := depositdata.ParseAddress("0x0f51bb10119727a7e5eA3538074fb341F56B09Ad", false)
	req := hoodiRequest("tamper", 2)
	req.Format, req.Withdrawal = FormatRaw, Withdrawal{Address: &a}
	if _, err := f.gen.Generate(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*store.Record){
		"amount": func(r *store.Record) {
			r.DepositData = []byte(strings.Replace(string(r.DepositData), `"amount":32000000000`, `"amount":31000000000`, 1))
		},
		"credentials": func(r *store.Record) {
			r.DepositData = []byte(strings.Replace(string(r.DepositData), "0f51bb10119727a7e5ea3538074fb341f56b09ad", "1111111111111111111111111111111111111111", 1))
		},
		"record credentials": func(r *store.Record) { r.WithdrawalCredentials = strings.Repeat("0", 64) },
	} {
		t.Run(name, func(t *testing.T) {
			g, _ := NewGenerator(tamperStore{f.store, edit}, envelope.NewLocalSealer(f.identity.Recipient()), f.signer)
			if res, err := g.Generate(context.Background(), req, nil); err == nil || res != nil {
				t.Fatalf("altered deposit passed: %v", err)
			}
		})
	}
}
