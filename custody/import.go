package custody

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/store"
)

// ErrImport reports input to Import that does not prove the keys it
// claims: a keystore that does not open with its password or opens to
// another key than its pubkey, a mnemonic that does not derive the keys
// claimed, a key given twice, or a key the store holds from elsewhere.
var ErrImport = errors.New("custody: import refused")

// ImportedKey is one validator key made elsewhere, to bring under custody.
// Make it with KeyFromKeystore or KeysFromMnemonic, which verify it.
type ImportedKey struct {
	Pubkey string            // 96 lowercase hex, no 0x
	Secret *keygen.SecretKey // the signing key; its public key is Pubkey
	Index  uint32            // EIP-2334 validator index (0 when unknown)
}

// Destroy clears the secret.
func (k *ImportedKey) Destroy() {
	if k != nil {
		k.Secret.Destroy()
	}
}

// KeyFromKeystore opens an EIP-2335 keystore with its password and checks
// that the key it holds is the one its pubkey field claims (a keystore
// without a pubkey is refused: nothing would say which validator it is).
func KeyFromKeystore(ctx context.Context, ksJSON, password []byte) (*ImportedKey, error) {
	ks, err := keystore.Parse(ksJSON)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrImport, err)
	}
	if ks.Pubkey == "" {
		return nil, fmt.Errorf("%w: the keystore names no pubkey", ErrImport)
	}
	sk, err := ks.DecryptKeyContext(ctx, password)
	if err != nil {
		return nil, fmt.Errorf("%w: keystore of 0x%s: %w", ErrImport, short(strings.ToLower(ks.Pubkey)), err)
	}
	pk := hex.EncodeToString(sk.PublicKey())
	if pk != strings.ToLower(ks.Pubkey) {
		sk.Destroy()
		return nil, fmt.Errorf("%w: the keystore holds 0x%s, not the 0x%s it claims", ErrImport, short(pk), short(ks.Pubkey))
	}
	return &ImportedKey{Pubkey: pk, Secret: sk, Index: pathIndex(ks.Path)}, nil
}

// pathIndex is the validator index of an EIP-2334 signing path
// m/12381/3600/i/0/0, or 0.
func pathIndex(path string) uint32 {
	var i uint32
	if _, err := fmt.Sscanf(path, "m/12381/3600/%d/0/0", &i); err == nil && path == keygen.SigningPath(i) {
		return i
	}
	return 0
}

// KeysFromMnemonic derives count signing keys from seed (the BIP-39 seed
// of the mnemonic) at EIP-2334 indices start.., and, when want is given
// (one pubkey per key, hex, 0x optional), checks that each derived key is
// the one claimed.
func KeysFromMnemonic(seed *keygen.Bytes, start uint32, count int, want []string) ([]*ImportedKey, error) {
	if count < 1 || count > MaxCount {
		return nil, fmt.Errorf("%w: count %d (want 1 to %d)", ErrRequest, count, MaxCount)
	}
	if want != nil && len(want) != count {
		return nil, fmt.Errorf("%w: %d pubkeys claimed for %d keys", ErrImport, len(want), count)
	}
	out := make([]*ImportedKey, 0, count)
	fail := func(err error) ([]*ImportedKey, error) {
		for _, k := range out {
			k.Destroy()
		}
		return nil, err
	}
	for j := range count {
		i := start + uint32(j)
		sk, err := keygen.DeriveKey(seed, keygen.SigningPath(i))
		if err != nil {
			return fail(err)
		}
		k := &ImportedKey{Pubkey: hex.EncodeToString(sk.PublicKey()), Secret: sk, Index: i}
		out = append(out, k)
		if want != nil {
			w := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(want[j], "0x"), "0X"))
			if w != k.Pubkey {
				return fail(fmt.Errorf("%w: the mnemonic derives 0x%s at index %d, not the claimed 0x%s", ErrImport, short(k.Pubkey), i, short(w)))
			}
		}
	}
	return out, nil
}

// ImportRequestID is the request id of an import of pubkeys on network:
// "import-" and a hash of them, so importing the same keys again resumes
// (or repeats) the same import.
func ImportRequestID(network string, pubkeys []string) string {
	h := sha256.New()
	h.Write([]byte(network))
	for _, pk := range pubkeys {
		h.Write([]byte{0})
		h.Write([]byte(pk))
	}
	return "import-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Import seals and stores keys made elsewhere as records of origin
// OriginImported, authenticated by the generator's key, under request id
// ImportRequestID (slots in the order given), with no deposit (theirs was
// made elsewhere) and no withdrawal credentials (unknown here). The secret
// is sealed in raw format; the key is re-checked against its pubkey.
//
// Every key is checked before anything is stored: a key given twice, or
// one the store holds under another request, refuses the whole import.
// Importing the same keys again stores nothing twice. It returns the
// stored validators, in the order given.
func (g *Generator) Import(ctx context.Context, network depositdata.Network, keys []*ImportedKey) (*Result, error) {
	if network.Name == "" {
		return nil, fmt.Errorf("%w: network is required", ErrRequest)
	}
	if len(keys) == 0 || len(keys) > MaxCount {
		return nil, fmt.Errorf("%w: %d keys to import (want 1 to %d)", ErrRequest, len(keys), MaxCount)
	}
	pubkeys := make([]string, len(keys))
	for i, k := range keys {
		if k == nil || k.Secret == nil || hex.EncodeToString(k.Secret.PublicKey()) != k.Pubkey {
			return nil, fmt.Errorf("%w: key %d is not the key of its pubkey", ErrImport, i)
		}
		if slices.Contains(pubkeys[:i], k.Pubkey) {
			return nil, fmt.Errorf("%w: 0x%s is given twice", ErrImport, short(k.Pubkey))
		}
		pubkeys[i] = k.Pubkey
	}
	if g.ledger != nil {
		for _, p := range [][2]string{{PinSealingKey, g.sealer.KeyID()}, {PinGeneratorKey, g.signer.KeyID()}} {
			if err := CheckPin(ctx, g.ledger, p[0], p[1], g.replaceKeys); err != nil {
				return nil, err
			}
		}
	}
	id := ImportRequestID(network.Name, pubkeys)
	// Which keys are stored already: by this import (a repeat), or from
	// elsewhere (refused, before anything is written).
	stored := make([]bool, len(keys))
	for i, pk := range pubkeys {
		rec, err := g.store.Get(ctx, pk)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("custody: reading 0x%s: %w", short(pk), err)
		case rec.RequestID != id || rec.Slot != i || rec.Origin != OriginImported:
			return nil, fmt.Errorf("%w: 0x%s is in the store already (request %s)", ErrImport, short(pk), rec.RequestID)
		default:
			if rec.AuthKeyID != g.signer.KeyID() || len(rec.Auth) == 0 {
				return nil, fmt.Errorf("%w: 0x%s (import %s) is not signed by this generator's key", ErrForged, rec.Pubkey, id)
			}
			stored[i] = true
		}
	}
	fp := sha256.Sum256([]byte(id + "/" + strings.Join(g.keyIDs(), "/")))
	existing, err := g.store.CreateRequest(ctx, store.Request{ID: id, Fingerprint: hex.EncodeToString(fp[:]), Count: len(keys), CreatedAt: g.now()})
	if errors.Is(err, store.ErrExists) {
		if existing.Fingerprint != hex.EncodeToString(fp[:]) || existing.Count != len(keys) {
			return nil, fmt.Errorf("%w (or with another sealing key): %q", ErrRequestReused, id)
		}
	} else if err != nil {
		return nil, fmt.Errorf("custody: recording the import: %w", err)
	}
	res := &Result{RequestID: id}
	var batch []*store.Record
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, err := g.put(ctx, batch)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: another run stored some of these keys at the same time; run the import again", ErrImport)
		}
		res.Created += n
		batch = batch[:0]
		return nil
	}
	for i, k := range keys {
		if stored[i] {
			continue
		}
		rec, err := g.importRecord(ctx, id, i, network.Name, k)
		if err != nil {
			return nil, err
		}
		if batch = append(batch, rec); len(batch) == MaxKeysPerMnemonic {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	for i, pk := range pubkeys {
		res.Validators = append(res.Validators, Stored{Slot: i, Pubkey: pk})
	}
	return res, nil
}

func (g *Generator) importRecord(ctx context.Context, id string, slot int, network string, k *ImportedKey) (*store.Record, error) {
	rec := &store.Record{
		Pubkey: k.Pubkey, RequestID: id, Slot: slot, Network: network, Origin: OriginImported,
		Status: store.StatusImported, CreatedAt: g.now().UTC().Truncate(time.Millisecond), Provenance: g.provenance,
	}
	doc := secretDoc{pubkey: k.Pubkey, format: FormatRaw, index: k.Index, key: k.Secret.UnsafeBytes()}
	plain := doc.marshal()
	sealed, err := g.sealer.Seal(ctx, plain, sealContext(rec, PurposeSecret))
	keygen.Wipe(plain)
	if err != nil {
		return nil, fmt.Errorf("custody: sealing: %w", err)
	}
	rec.Sealed = sealed
	if err := signRecord(ctx, g.signer, rec); err != nil {
		return nil, err
	}
	return rec, nil
}
