package keygen

import (
	"errors"
	"fmt"
	"math/big"
	"sync"

	e2types "github.com/wealdtech/go-eth2-types/v2"
	util "github.com/wealdtech/go-eth2-util"
)

var initBLS = sync.OnceValue(e2types.InitBLS)

// InitBLS prepares the BLS library. Functions of this package call it
// themselves; other packages that use BLS types may call it too.
func InitBLS() error {
	if err := initBLS(); err != nil {
		return fmt.Errorf("keygen: initialising BLS: %w", err)
	}
	return nil
}

// ErrIndex is returned for a validator index outside EIP-2334's range.
var ErrIndex = errors.New("keygen: validator index out of range")

// MaxIndex is the largest validator index an EIP-2334 path can hold.
const MaxIndex = 1<<32 - 1

// SigningPath is the EIP-2334 signing key path of validator i.
func SigningPath(i uint32) string { return fmt.Sprintf("m/12381/3600/%d/0/0", i) }

// WithdrawalPath is the EIP-2334 withdrawal key path of validator i.
func WithdrawalPath(i uint32) string { return fmt.Sprintf("m/12381/3600/%d/0", i) }

// SecretKey is a BLS12-381 secret key. It redacts itself when formatted.
type SecretKey struct {
	redacted
	raw *Bytes // 32 bytes, big-endian
	key *e2types.BLSPrivateKey
}

// SecretKeyFromBytes parses a 32-byte big-endian BLS secret key. It takes a
// copy of b.
func SecretKeyFromBytes(b []byte) (*SecretKey, error) {
	if err := InitBLS(); err != nil {
		return nil, err
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("keygen: a BLS secret key has 32 bytes, got %d", len(b))
	}
	k, err := e2types.BLSPrivateKeyFromBytes(b)
	if err != nil {
		return nil, errors.New("keygen: invalid BLS secret key")
	}
	return &SecretKey{raw: NewBytes(append([]byte(nil), b...)), key: k}, nil
}

// PublicKey is the 48-byte compressed public key.
func (k *SecretKey) PublicKey() []byte { return k.key.PublicKey().Marshal() }

// Sign signs msg (a 32-byte signing root) and returns the 96-byte signature.
func (k *SecretKey) Sign(msg []byte) []byte { return k.key.Sign(msg).Marshal() }

// UnsafeBytes returns the 32-byte secret itself.
func (k *SecretKey) UnsafeBytes() []byte { return k.raw.UnsafeBytes() }

// Destroy clears the bytes this value holds (best effort: the BLS library
// keeps its own representation until garbage collected).
func (k *SecretKey) Destroy() {
	if k != nil {
		k.raw.Destroy()
		k.key = nil
	}
}

// DeriveKey derives the key at an EIP-2334 path from a BIP-39 seed (EIP-2333).
func DeriveKey(seed *Bytes, path string) (*SecretKey, error) {
	if err := InitBLS(); err != nil {
		return nil, err
	}
	k, err := util.PrivateKeyFromSeedAndPath(seed.UnsafeBytes(), path)
	if err != nil {
		return nil, fmt.Errorf("keygen: deriving %s: %w", path, err)
	}
	return &SecretKey{raw: NewBytes(k.Marshal()), key: k}, nil
}

// ValidatorKeys are the keys of one validator derived from a seed.
type ValidatorKeys struct {
	Index            uint32
	Signing          *SecretKey
	WithdrawalPubkey []byte // public key of m/12381/3600/i/0, for 0x00 credentials
}

// DeriveValidator derives validator i's signing key and withdrawal public key.
// The withdrawal path is the parent of the signing path, so the tree is
// walked once.
func DeriveValidator(seed *Bytes, i uint32) (*ValidatorKeys, error) {
	if err := InitBLS(); err != nil {
		return nil, err
	}
	s := seed.UnsafeBytes()
	sk, err := util.DeriveMasterSK(s)
	if err != nil {
		return nil, fmt.Errorf("keygen: deriving master key: %w", err)
	}
	for _, idx := range []uint32{12381, 3600, i, 0} {
		if sk, err = util.DeriveChildSK(sk, idx); err != nil {
			return nil, fmt.Errorf("keygen: deriving validator %d: %w", i, err)
		}
	}
	withdrawal, err := keyFromBig(sk)
	if err != nil {
		return nil, err
	}
	defer withdrawal.Destroy()
	if sk, err = util.DeriveChildSK(sk, 0); err != nil {
		return nil, fmt.Errorf("keygen: deriving validator %d: %w", i, err)
	}
	signing, err := keyFromBig(sk)
	sk.SetInt64(0)
	if err != nil {
		return nil, err
	}
	return &ValidatorKeys{Index: i, Signing: signing, WithdrawalPubkey: withdrawal.PublicKey()}, nil
}

func keyFromBig(sk *big.Int) (*SecretKey, error) {
	b := make([]byte, 32)
	sk.FillBytes(b)
	defer Wipe(b)
	return SecretKeyFromBytes(b)
}

// Destroy clears the signing key.
func (v *ValidatorKeys) Destroy() {
	if v != nil {
		v.Signing.Destroy()
	}
}
