//go:build !ethkeygen_fuzzonly

package custody

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"filippo.io/age"

	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store"
)

// countKDF replaces keystoreKey with a counting wrapper for the test.
func countKDF(t *testing.T) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	orig := keystoreKey
	keystoreKey = func(ctx context.Context, ks *keystore.Keystore, pw []byte) (*keygen.SecretKey, error) {
		n.Add(1)
		return orig(ctx, ks, pw)
	}
	t.Cleanup(func() { keystoreKey = orig })
	return &n
}

// openPlain opens a record's sealed document with the fixture's identity
// (the bytes parseSecret sees).
func openPlain(t *testing.T, op envelope.Opener, rec *store.Record) []byte {
	t.Helper()
	plain, err := op.Open(context.Background(), rec.Sealed, sealContext(rec, PurposeSecret))
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

// TestKeystoreDocumentOpensWithoutKDF: a keystore-format record sealed by
// the generator carries the raw key beside the keystore and opens without
// one run of the keystore's KDF; the key is the one the sealed keystore
// holds (checked here with the KDF, outside the counted path).
func TestKeystoreDocumentOpensWithoutKDF(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res, err := f.gen.Generate(ctx, hoodiRequest("fast-open", 3), nil)
	if err != nil {
		t.Fatal(err)
	}
	runs := countKDF(t)
	var recs []*store.Record
	for _, v := range res.Validators {
		rec, err := f.store.Get(ctx, v.Pubkey)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	secrets, err := f.opener.OpenRecords(ctx, recs, DefaultMaxMemory, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := runs.Load(); n != 0 {
		t.Fatalf("opening %d keystore-format records ran the keystore KDF %d times, want 0", len(recs), n)
	}
	for i, s := range secrets {
		if s.Format != FormatKeystore || s.Keystore == nil || len(s.UnsafePassword()) == 0 {
			t.Fatalf("record %d: format %q, keystore %v", i, s.Format, s.Keystore != nil)
		}
		if hex.EncodeToString(s.SigningKey().PublicKey()) != recs[i].Pubkey {
			t.Fatalf("record %d: the key does not derive its pubkey", i)
		}
		inKS, err := s.Keystore.DecryptKey(s.UnsafePassword())
		if err != nil {
			t.Fatalf("record %d: the sealed keystore does not open with its password: %v", i, err)
		}
		if !bytes.Equal(inKS.UnsafeBytes(), s.SigningKey().UnsafeBytes()) {
			t.Fatalf("record %d: the sealed keystore holds another key than the one beside it", i)
		}
		inKS.Destroy()
		s.Destroy()
	}
	if n := runs.Load(); n != 0 {
		t.Fatalf("%d counted KDF runs", n)
	}
}

// TestLegacyKeystoreDocumentOpens: records sealed by the generator before
// documents carried the raw key (testdata/legacy, made at commit dd6e2c1)
// still open, through one run of the keystore's KDF each.
func TestLegacyKeystoreDocumentOpens(t *testing.T) {
	dir := filepath.Join("testdata", "legacy")
	js, err := os.ReadFile(filepath.Join(dir, "records.json"))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*store.Record
	if err := json.Unmarshal(js, &recs); err != nil {
		t.Fatal(err)
	}
	idText, err := os.ReadFile(filepath.Join(dir, "identity-test-only.txt"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.ParseX25519Identity(strings.TrimSpace(string(idText)))
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := provenance.LoadLocalVerifier(dir)
	if err != nil {
		t.Fatal(err)
	}
	op := envelope.NewLocalOpener(id)
	if len(recs) != 2 {
		t.Fatalf("%d legacy records, want 2", len(recs))
	}
	for _, rec := range recs {
		plain := openPlain(t, op, rec)
		if bytes.Contains(plain, []byte(`"secret_key"`)) || !bytes.Contains(plain, []byte(`"format":"keystore"`)) {
			t.Fatal("the fixture is not a legacy keystore document")
		}
		keygen.Wipe(plain)
	}
	runs := countKDF(t)
	secrets, err := NewOpener(nil, op, verifier).OpenRecords(context.Background(), recs, DefaultMaxMemory, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := runs.Load(); n != int64(len(recs)) {
		t.Fatalf("%d KDF runs for %d legacy records, want one each", n, len(recs))
	}
	for i, s := range secrets {
		if s.Format != FormatKeystore || hex.EncodeToString(s.SigningKey().PublicKey()) != recs[i].Pubkey {
			t.Fatalf("legacy record %d opened to format %q or another key", i, s.Format)
		}
		s.Destroy()
	}
}

// TestKeystoreDocumentDisagreement: a document whose raw key and keystore
// disagree in what can be checked without the KDF (the key's pubkey, the
// pubkey and path the keystore names) is refused, without a KDF run, both
// parsed directly and sealed into a signed record.
func TestKeystoreDocumentDisagreement(t *testing.T) {
	pubkey, _ := fuzzSecretDocs(t)
	m, _ := keygen.ParseMnemonic(fuzzSecretMnemonic)
	seed := m.Seed("")
	sk0, _ := keygen.DeriveKey(seed, keygen.SigningPath(0))
	sk1, _ := keygen.DeriveKey(seed, keygen.SigningPath(1))
	m.Destroy()
	seed.Destroy()
	defer sk0.Destroy()
	defer sk1.Destroy()
	password := []byte("fuzz-password-0123")
	mkKS := func(pk []byte, path string) []byte {
		ks, err := keystore.Encrypt(bytes.NewReader(make([]byte, 128)), sk0.UnsafeBytes(), password,
			keystore.WithKDF(keystore.PBKDF2), keystore.WithInsecureCost(t, 2), keystore.WithPubkey(pk), keystore.WithPath(path))
		if err != nil {
			t.Fatal(err)
		}
		js, _ := ks.Marshal()
		return js
	}
	good := mkKS(sk0.PublicKey(), keygen.SigningPath(0))
	runs := countKDF(t)
	ok := secretDoc{pubkey: pubkey, format: FormatKeystore, keystore: good, password: password, key: sk0.UnsafeBytes()}
	s, err := parseSecret(context.Background(), ok.marshal(), pubkey)
	if err != nil {
		t.Fatalf("consistent document refused: %v", err)
	}
	s.Destroy()
	for name, d := range map[string]secretDoc{
		"raw key of another validator": {pubkey: pubkey, format: FormatKeystore, keystore: good, password: password, key: sk1.UnsafeBytes()},
		"keystore names another pubkey": {pubkey: pubkey, format: FormatKeystore, keystore: mkKS(sk1.PublicKey(), keygen.SigningPath(0)),
			password: password, key: sk0.UnsafeBytes()},
		"keystore names no pubkey":   {pubkey: pubkey, format: FormatKeystore, keystore: mkKS(nil, keygen.SigningPath(0)), password: password, key: sk0.UnsafeBytes()},
		"keystore of another path":   {pubkey: pubkey, format: FormatKeystore, keystore: mkKS(sk0.PublicKey(), keygen.SigningPath(1)), password: password, key: sk0.UnsafeBytes()},
		"index of another path":      {pubkey: pubkey, format: FormatKeystore, index: 1, keystore: good, password: password, key: sk0.UnsafeBytes()},
		"secret_key not 32 bytes":    {pubkey: pubkey, format: FormatKeystore, keystore: good, password: password, key: sk0.UnsafeBytes()[:31]},
		"secret_key is not a scalar": {pubkey: pubkey, format: FormatKeystore, keystore: good, password: password, key: bytes.Repeat([]byte{0xff}, 32)},
	} {
		s, err := parseSecret(context.Background(), d.marshal(), pubkey)
		if !errors.Is(err, ErrSecret) || s != nil {
			t.Errorf("%s: %v, want ErrSecret", name, err)
			s.Destroy()
		}
	}
	if n := runs.Load(); n != 0 {
		t.Fatalf("%d KDF runs, want none", n)
	}

	// The same through the envelope: a generated record whose sealed raw
	// key is replaced by another validator's (resealed under its context
	// and re-signed, as only a holder of both keys could) is refused.
	f := newFixture(t)
	ctx := context.Background()
	res, err := f.gen.Generate(ctx, hoodiRequest("disagree", 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.store.Get(ctx, res.Validators[0].Pubkey)
	b, _ := f.store.Get(ctx, res.Validators[1].Pubkey)
	pa, pb := openPlain(t, envelope.NewLocalOpener(f.identity), a), openPlain(t, envelope.NewLocalOpener(f.identity), b)
	var da, db rawDoc
	if err := json.Unmarshal(pa, &da); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(pb, &db); err != nil {
		t.Fatal(err)
	}
	if da.SecretKey == nil {
		t.Fatal("a generated keystore document carries no raw key")
	}
	forged := bytes.Replace(pa, da.SecretKey, db.SecretKey, 1)
	if bytes.Equal(forged, pa) {
		t.Fatal("the raw key was not replaced")
	}
	if a.Sealed, err = envelope.NewLocalSealer(f.identity.Recipient()).Seal(ctx, forged, sealContext(a, PurposeSecret)); err != nil {
		t.Fatal(err)
	}
	if err := signRecord(ctx, f.signer, a); err != nil {
		t.Fatal(err)
	}
	if _, err := f.opener.OpenRecord(ctx, a); !errors.Is(err, ErrSecret) {
		t.Fatalf("record with another validator's raw key beside its keystore: %v, want ErrSecret", err)
	}
	if n := runs.Load(); n != 0 {
		t.Fatalf("%d KDF runs, want none", n)
	}
}
