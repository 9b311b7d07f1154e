package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Context is an encryption context: non-secret key/value pairs that are bound
// to a sealed secret. The same Context must be presented to open it. It is
// sent to KMS as the EncryptionContext (and so appears in CloudTrail) and is
// also authenticated as AES-GCM associated data. It must never hold secrets.
//
// The package manages the [FormatKey] entry: Seal and Open add it with the
// value [FormatVersion] when absent and reject any other value.
type Context map[string]string

// Conventional encryption context keys and values.
const (
	// FormatKey is the context key holding the sealed-format version.
	FormatKey = "format"
	// FormatVersion is the value of FormatKey for format version 1.
	FormatVersion = "1"
	// PubkeyKey is the context key for the validator public key (hex).
	PubkeyKey = "pubkey"
	// PurposeKey is the context key for the secret's purpose.
	PurposeKey = "purpose"
	// PurposeValidatorSecret is the purpose of a validator signing key.
	PurposeValidatorSecret = "eth-validator-secret"
)

// Sealer encrypts a secret under a fresh data key wrapped by a key provider.
type Sealer interface {
	// Seal encrypts plaintext and binds it to ec. It does not modify
	// plaintext or ec.
	Seal(ctx context.Context, plaintext []byte, ec Context) ([]byte, error)
	// KeyID names the key that wraps the data keys, prefixed with the
	// provider ("kms:<key ARN or alias>", "age-x25519:age1..."): public and
	// stable across runs, so callers can tell whether two runs seal under
	// the same key. A wrapper around a Sealer must return the KeyID of the
	// Sealer it wraps (embedding the interface does that).
	KeyID() string
}

// Opener decrypts what a Sealer of the same provider produced.
type Opener interface {
	// Open authenticates and decrypts sealed, which must have been sealed
	// with an equal ec. Any tampering or wrong context yields exactly
	// ErrAuth. A secret sealed to another age recipient than the opener's
	// identity (as its header records) yields a *WrongKeyError naming both,
	// for which errors.Is(err, ErrAuth) and errors.Is(err, ErrWrongKey)
	// hold. The caller should clear the returned slice after use.
	Open(ctx context.Context, sealed []byte, ec Context) ([]byte, error)
}

var (
	// ErrAuth is the single, opaque error returned by Open when a sealed
	// secret fails authentication: tampered bytes, a different encryption
	// context, or a key that is not the one it was sealed with. Open returns
	// this value itself (err == ErrAuth), never wrapped.
	ErrAuth = errors.New("envelope: message authentication failed")
	// ErrWrongKey is matched (errors.Is) by a *WrongKeyError: the secret
	// was sealed to another key than the opener's.
	ErrWrongKey = errors.New("envelope: sealed to a different key")
	// ErrFormat reports a sealed blob that cannot be parsed (bad magic,
	// unknown version or provider, bad lengths, trailing bytes), a blob
	// from another provider than the Opener's, or input too large to seal.
	ErrFormat = errors.New("envelope: malformed sealed secret")
	// ErrProvider wraps a failure of the key provider (for KMS: access
	// denied, throttling, key not found, disabled key, network errors).
	// The provider's error stays in the chain, so errors.As with
	// smithy.APIError reports codes such as "AccessDeniedException".
	ErrProvider = errors.New("envelope: key provider failed")
	// ErrContext reports an encryption context that cannot be used: an empty
	// key, invalid UTF-8, a FormatKey value other than FormatVersion, or one
	// that is too large.
	ErrContext = errors.New("envelope: invalid encryption context")
)

// WrongKeyError reports a sealed secret that records, in its header, a
// wrapping key other than the opener's: sealed to the age recipient
// SealedTo while the identity is Have's. It is not a tampering report: the
// header is public and authenticated, and a tampered one still fails with
// exactly ErrAuth unless it names a well-formed recipient (then the secret
// could not have been opened by this identity either way).
type WrongKeyError struct {
	SealedTo string // the recipient the sealed secret records ("age1...")
	Have     string // the opener's identity's recipient
}

func (e *WrongKeyError) Error() string {
	return fmt.Sprintf("envelope: sealed to age recipient %s, but this identity belongs to recipient %s: use the identity file of %s",
		e.SealedTo, e.Have, e.SealedTo)
}

// Is makes errors.Is(err, ErrWrongKey) and errors.Is(err, ErrAuth) hold.
func (e *WrongKeyError) Is(target error) bool { return target == ErrWrongKey || target == ErrAuth }

// keyChecker is implemented by unwrappers that hold one known key: it
// refuses, before any unwrapping, a key id that is not theirs.
type keyChecker interface {
	checkKey(keyID string) error
}

// Format constants. See the package documentation for the byte layout.
const (
	// Version is the sealed-format version written by this package.
	Version byte = 1

	// MaxSealedSize is the largest sealed blob accepted or produced.
	MaxSealedSize = 1 << 20
	// MaxKeyIDLen is the largest key identifier (KMS ARNs are at most 2048).
	MaxKeyIDLen = 2048
	// MaxWrappedKeyLen is the largest wrapped data key.
	MaxWrappedKeyLen = 4096
	// MaxContextSize bounds the encoded size of a Context: the sum of the
	// lengths of all keys and values (the KMS limit is 8192 characters).
	MaxContextSize = 8192

	dataKeySize = 32 // AES-256
	nonceSize   = 12
	tagSize     = 16
	headerSize  = len(magic) + 1 + 1 + 2 // magic, version, provider, key id length
)

// magic identifies a sealed secret: "EKGE" (ethkeygen envelope).
const magic = "EKGE"

// Provider identifiers, the byte at offset 5.
const (
	providerKMS        byte = 1
	providerAgeX25519  byte = 2
	maxContextEntries       = 64
	canonicalCtxPrefix      = "ethkeygen envelope context v1"
)

func providerName(p byte) string {
	switch p {
	case providerKMS:
		return "kms"
	case providerAgeX25519:
		return "age-x25519"
	default:
		return fmt.Sprintf("unknown(%d)", p)
	}
}

// normalize validates ec and returns a copy that includes FormatKey.
func (ec Context) normalize() (Context, error) {
	if len(ec) > maxContextEntries {
		return nil, fmt.Errorf("%w: more than %d entries", ErrContext, maxContextEntries)
	}
	out := make(Context, len(ec)+1)
	size := 0
	for k, v := range ec {
		if k == "" {
			return nil, fmt.Errorf("%w: empty key", ErrContext)
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, fmt.Errorf("%w: key or value is not valid UTF-8", ErrContext)
		}
		if k == FormatKey && v != FormatVersion {
			// The value is caller-supplied and non-secret by contract.
			return nil, fmt.Errorf("%w: %q must be %q", ErrContext, FormatKey, FormatVersion)
		}
		size += len(k) + len(v)
		out[k] = v
	}
	if _, ok := out[FormatKey]; !ok {
		out[FormatKey] = FormatVersion
		size += len(FormatKey) + len(FormatVersion)
	}
	if size > MaxContextSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrContext, MaxContextSize)
	}
	return out, nil
}

// canonical returns the unambiguous encoding of a normalized context:
// the ASCII prefix canonicalCtxPrefix, a uint32 entry count, then for each
// entry in ascending byte order of keys: uint32 key length, key, uint32 value
// length, value. All integers are big-endian.
func (ec Context) canonical() []byte {
	keys := make([]string, 0, len(ec))
	n := len(canonicalCtxPrefix) + 4
	for k, v := range ec {
		keys = append(keys, k)
		n += 8 + len(k) + len(v)
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	b = append(b, canonicalCtxPrefix...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = binary.BigEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(ec[k])))
		b = append(b, ec[k]...)
	}
	return b
}

// sealedBlob is a parsed sealed secret. All slices alias the input.
type sealedBlob struct {
	provider   byte
	keyID      string
	wrapped    []byte
	nonce      []byte
	ciphertext []byte // GCM ciphertext followed by the 16-byte tag
	prefix     []byte // every byte before the nonce: authenticated as AAD
}

// parse strictly decodes a sealed blob. It never panics.
func parse(b []byte) (*sealedBlob, error) {
	if len(b) > MaxSealedSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrFormat, MaxSealedSize)
	}
	if len(b) < headerSize {
		return nil, fmt.Errorf("%w: too short", ErrFormat)
	}
	if string(b[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: bad magic", ErrFormat)
	}
	if v := b[len(magic)]; v != Version {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrFormat, v)
	}
	p := b[len(magic)+1]
	if p != providerKMS && p != providerAgeX25519 {
		return nil, fmt.Errorf("%w: unknown provider %d", ErrFormat, p)
	}
	rest := b[headerSize:]
	idLen := int(binary.BigEndian.Uint16(b[headerSize-2:]))
	if idLen == 0 || idLen > MaxKeyIDLen || idLen > len(rest) {
		return nil, fmt.Errorf("%w: bad key id length", ErrFormat)
	}
	keyID := rest[:idLen]
	for _, c := range keyID {
		if c < 0x21 || c > 0x7e {
			return nil, fmt.Errorf("%w: key id is not printable ASCII", ErrFormat)
		}
	}
	rest = rest[idLen:]
	if len(rest) < 2 {
		return nil, fmt.Errorf("%w: too short", ErrFormat)
	}
	wLen := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if wLen == 0 || wLen > MaxWrappedKeyLen || wLen > len(rest) {
		return nil, fmt.Errorf("%w: bad wrapped key length", ErrFormat)
	}
	wrapped := rest[:wLen]
	rest = rest[wLen:]
	if len(rest) < nonceSize+tagSize {
		return nil, fmt.Errorf("%w: too short", ErrFormat)
	}
	prefixLen := len(b) - len(rest)
	return &sealedBlob{
		provider:   p,
		keyID:      string(keyID),
		wrapped:    wrapped,
		nonce:      rest[:nonceSize],
		ciphertext: rest[nonceSize:],
		prefix:     b[:prefixLen:prefixLen],
	}, nil
}

// appendPrefix appends everything up to (excluding) the nonce.
func appendPrefix(b []byte, provider byte, keyID string, wrapped []byte) []byte {
	b = append(b, magic...)
	b = append(b, Version, provider)
	b = binary.BigEndian.AppendUint16(b, uint16(len(keyID)))
	b = append(b, keyID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(wrapped)))
	b = append(b, wrapped...)
	return b
}

func validKeyID(id string) bool {
	if len(id) == 0 || len(id) > MaxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// dataKey is a freshly generated data key and its wrapped form.
type dataKey struct {
	keyID     string
	wrapped   []byte
	plaintext []byte // cleared by the caller of newDataKey after use
}

// keySource generates a fresh data key wrapped by a provider. Errors must not
// contain key material.
type keySource interface {
	provider() byte
	wrappingKey() string
	newDataKey(ctx context.Context, ec Context) (*dataKey, error)
}

// unwrapper recovers a data key. It returns exactly ErrAuth when the wrapped
// key does not authenticate (tampered, wrong context, wrong key) and an error
// wrapping ErrProvider when the provider fails for any other reason.
//
// This is the seam for alternative unwrap paths, such as KMS Decrypt with a
// Nitro Enclaves attestation document (Recipient) that returns
// CiphertextForRecipient instead of Plaintext.
type unwrapper interface {
	provider() byte
	unwrap(ctx context.Context, keyID string, wrapped []byte, ec Context) ([]byte, error)
}

// sealer implements Sealer for any keySource. It deliberately has no Open
// method: a local sealer holds only a public recipient.
type sealer struct {
	src keySource
	// onDataKey, if set, sees the plaintext data key before it is used; the
	// slice is cleared when Seal returns. Tests use it to check zeroing.
	onDataKey func([]byte)
}

// KeyID names the key this sealer wraps data keys with (a KMS key ARN or
// alias, or an age recipient): public, and stable across runs.
func (s *sealer) KeyID() string { return providerName(s.src.provider()) + ":" + s.src.wrappingKey() }

func (s *sealer) Seal(ctx context.Context, plaintext []byte, ec Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	full, err := ec.normalize()
	if err != nil {
		return nil, err
	}
	// Cheap bound before asking the provider for a key; checked exactly below.
	if len(plaintext) > MaxSealedSize {
		return nil, fmt.Errorf("%w: plaintext too large", ErrFormat)
	}
	dk, err := s.src.newDataKey(ctx, full)
	if err != nil {
		return nil, err
	}
	defer clear(dk.plaintext)
	if s.onDataKey != nil {
		s.onDataKey(dk.plaintext)
	}
	if len(dk.plaintext) != dataKeySize {
		return nil, fmt.Errorf("%w: provider returned a data key of the wrong size", ErrProvider)
	}
	if !validKeyID(dk.keyID) {
		return nil, fmt.Errorf("%w: provider returned an unusable key id", ErrProvider)
	}
	if len(dk.wrapped) == 0 || len(dk.wrapped) > MaxWrappedKeyLen {
		return nil, fmt.Errorf("%w: provider returned a wrapped key of %d bytes", ErrProvider, len(dk.wrapped))
	}
	total := headerSize + len(dk.keyID) + 2 + len(dk.wrapped) + nonceSize + len(plaintext) + tagSize
	if total > MaxSealedSize {
		return nil, fmt.Errorf("%w: plaintext too large", ErrFormat)
	}
	aead, err := newGCM(dk.plaintext)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, total)
	out = appendPrefix(out, s.src.provider(), dk.keyID, dk.wrapped)
	aad := append(out[:len(out):len(out)], full.canonical()...)
	nonce := make([]byte, nonceSize)
	rand.Read(nonce) // never fails (crypto/rand since Go 1.24)
	out = append(out, nonce...)
	out = aead.Seal(out, nonce, plaintext, aad)
	return out, nil
}

// opener implements Opener for any unwrapper.
type opener struct {
	u unwrapper
}

func (o *opener) Open(ctx context.Context, sealed []byte, ec Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	blob, err := parse(sealed)
	if err != nil {
		return nil, err
	}
	if blob.provider != o.u.provider() {
		return nil, fmt.Errorf("%w: sealed by provider %s, opener is %s",
			ErrFormat, providerName(blob.provider), providerName(o.u.provider()))
	}
	full, err := ec.normalize()
	if err != nil {
		return nil, err
	}
	if kc, ok := o.u.(keyChecker); ok {
		if err := kc.checkKey(blob.keyID); err != nil {
			return nil, err
		}
	}
	key, err := o.u.unwrap(ctx, blob.keyID, blob.wrapped, full)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	if len(key) != dataKeySize {
		return nil, ErrAuth
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, ErrAuth
	}
	aad := append(blob.prefix, full.canonical()...) // prefix has cap == len: copies
	pt, err := aead.Open(nil, blob.nonce, blob.ciphertext, aad)
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("envelope: aes: %w", err) // only reports the key size
	}
	return cipher.NewGCM(block)
}
