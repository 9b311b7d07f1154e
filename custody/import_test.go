//go:build !ethkeygen_fuzzonly

package custody

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/web3signer"
)

func testSeed(t *testing.T) *keygen.Bytes {
	t.Helper()
	m, err := keygen.ParseMnemonic("test test test test test test test test test test test waste")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy()
	return m.Seed("")
}

// TestImportStoresVerifiedKeys: imported keys are stored sealed, signed by
// the generator, open to their keys, and load with an empty history; a
// repeat stores nothing twice; a bad keystore or mnemonic claim is refused.
func TestImportStoresVerifiedKeys(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	seed := testSeed(t)
	defer seed.Destroy()
	keys, err := KeysFromMnemonic(seed, 2, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.gen.Import(ctx, depositdata.Hoodi, keys)
	if err != nil || res.Created != 2 || !strings.HasPrefix(res.RequestID, "import-") {
		t.Fatalf("import: %+v %v", res, err)
	}
	again, err := f.gen.Import(ctx, depositdata.Hoodi, keys)
	if err != nil || again.Created != 0 || again.RequestID != res.RequestID {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	for i, pk := range res.Pubkeys() {
		rec, ks, err := f.cust.Get(ctx, pk)
		if err != nil || rec.Origin != OriginImported || StateOf(rec, ks) != store.StatusImported || rec.Slot != i {
			t.Fatalf("record %d: %+v %+v %v", i, rec, ks, err)
		}
		s, err := f.opener.OpenRecord(ctx, rec)
		if err != nil || s.Index != uint32(2+i) {
			t.Fatalf("open: %v", err)
		}
		s.Destroy()
	}
	// Loaded without export (imported), with an empty history.
	cl, err := f.cust.ClaimForSigner(ctx, LoadRequest{Signer: "a", Pubkeys: res.Pubkeys()})
	if err != nil {
		t.Fatal(err)
	}
	ic, err := cl.Interchange(depositdata.Hoodi.GenesisValidatorsRoot, nil, false)
	if err != nil || strings.Count(string(ic), `"signed_blocks":[]`) != 2 {
		t.Fatalf("interchange %s %v", ic, err)
	}

	// A mnemonic that does not derive the claimed key.
	if _, err := KeysFromMnemonic(seed, 0, 1, []string{res.Pubkeys()[0]}); !errors.Is(err, ErrImport) {
		t.Fatalf("wrong claim: %v", err)
	}
	// A keystore with a wrong password, and one claiming another pubkey.
	sk := keys[0].Secret
	ks, _ := keystore.Encrypt(rand.Reader, sk.UnsafeBytes(), []byte("password 123456"), keystore.WithPubkey(sk.PublicKey()),
		keystore.WithKDF(keystore.PBKDF2), keystore.WithInsecureCost(t, 2))
	js, _ := ks.Marshal()
	if _, err := KeyFromKeystore(ctx, js, []byte("password 654321")); !errors.Is(err, ErrImport) || !errors.Is(err, keystore.ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	ks.Pubkey = keys[1].Pubkey
	js, _ = ks.Marshal()
	if _, err := KeyFromKeystore(ctx, js, []byte("password 123456")); !errors.Is(err, ErrImport) {
		t.Fatalf("pubkey mismatch: %v", err)
	}
	// The same key under another import (another key set): refused, it
	// is in the store already.
	more, err := KeysFromMnemonic(seed, 3, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.gen.Import(ctx, depositdata.Hoodi, more); !errors.Is(err, ErrImport) || !strings.Contains(err.Error(), "in the store already") {
		t.Fatalf("overlapping import: %v", err)
	}
	for _, k := range more {
		k.Destroy()
	}
	for _, k := range keys {
		k.Destroy()
	}
}

// TestTakeoverNeedsHistory: a key live on a signer moves to another only
// with a history: the ledger's (stored at release) or one given; the
// union of both travels.
func TestTakeoverNeedsHistory(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	seed := testSeed(t)
	defer seed.Destroy()
	keys, err := KeysFromMnemonic(seed, 0, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.gen.Import(ctx, depositdata.Hoodi, keys)
	if err != nil {
		t.Fatal(err)
	}
	pks := res.Pubkeys()
	if err := f.cust.RecordLive(ctx, "old", pks); err != nil {
		t.Fatal(err)
	}
	root := depositdata.Hoodi.GenesisValidatorsRoot
	req := LoadRequest{Signer: "new", Pubkeys: pks[:1], Takeover: true}
	if err := f.cust.CheckInterchange(ctx, req, root, nil, false); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("takeover without history: %v", err)
	}
	if err := f.cust.CheckInterchange(ctx, req, root, nil, true); err != nil {
		t.Fatalf("with the operator's word: %v", err)
	}
	hist := func(pk, target string) []byte {
		return []byte(`{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + web3signer.RootString(root) + `"},` +
			`"data":[{"pubkey":"0x` + pk + `","signed_blocks":[],"signed_attestations":[{"source_epoch":"1","target_epoch":"` + target + `"}]}]}`)
	}
	// Another key's history does not count for this one.
	if err := f.cust.CheckInterchange(ctx, req, root, hist(pks[1], "5"), false); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("another key's history: %v", err)
	}
	// Another network's history is refused.
	if err := f.cust.CheckInterchange(ctx, req, depositdata.Mainnet.GenesisValidatorsRoot, hist(pks[0], "5"), false); !errors.Is(err, web3signer.ErrGenesisRoot) {
		t.Fatalf("another network: %v", err)
	}
	// Released with its history: the next signer gets it from the ledger,
	// merged with a file given.
	if _, err := f.cust.ReleaseWithInterchange(ctx, pks[0], "old", root, hist(pks[0], "7")); err != nil {
		t.Fatal(err)
	}
	cl, err := f.cust.ClaimForSigner(ctx, LoadRequest{Signer: "new", Pubkeys: pks[:1]})
	if err != nil {
		t.Fatal(err)
	}
	if cl.Items[0].TakenOver() {
		t.Fatal("a released key counts as taken over")
	}
	ic, err := cl.Interchange(root, hist(pks[0], "9"), false)
	if err != nil || !strings.Contains(string(ic), `"target_epoch":"7"`) || !strings.Contains(string(ic), `"target_epoch":"9"`) {
		t.Fatalf("merged history %s %v", ic, err)
	}
	// Now live on "new" with the stored history: a takeover from there
	// needs no file.
	if err := f.cust.CheckInterchange(ctx, LoadRequest{Signer: "third", Pubkeys: pks[:1], Takeover: true}, root, nil, false); err != nil {
		t.Fatalf("takeover with the stored history: %v", err)
	}
	// Per-key release undoes only the named key's claim.
	cl2, err := f.cust.ClaimForSigner(ctx, LoadRequest{Signer: "third", Pubkeys: pks, Takeover: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl2.ReleaseKeys(ctx, pks[1:]); err != nil {
		t.Fatal(err)
	}
	if _, ks, _ := f.cust.Get(ctx, pks[0]); ks.Signer != "third" {
		t.Fatalf("kept claim: %+v", ks)
	}
	if _, ks, _ := f.cust.Get(ctx, pks[1]); ks.Signer != "old" {
		t.Fatalf("released claim: %+v", ks)
	}
	for _, k := range keys {
		k.Destroy()
	}
}
