package keystore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ethkeygen/ethkeygen/internal/pyjson"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/google/uuid"
	"golang.org/x/crypto/scrypt"
	"golang.org/x/text/unicode/norm"
)

// KDF names a key derivation function of EIP-2335.
type KDF string

// The KDFs of EIP-2335.
const (
	Scrypt KDF = "scrypt"
	PBKDF2 KDF = "pbkdf2"
)

// Default costs, the same as staking-deposit-cli's.
const (
	ScryptN    = 1 << 18
	ScryptR    = 8
	ScryptP    = 1
	PBKDF2C    = 1 << 18
	MaxScryptN = 1 << 20 // largest n Decrypt accepts
	// MaxScryptMemory is the largest 128·r·n (the bytes ROMix holds) Decrypt
	// accepts: 512 MiB, n=2^19 at r=8, twice EIP-2335's default.
	MaxScryptMemory = 1 << 29
	MaxScryptP      = 16 // largest p Decrypt accepts
	// MaxScryptWork bounds n·r·p, the number of 64-byte Salsa20/8 blocks
	// ROMix computes twice over (time is proportional to it): 2^23, four
	// times EIP-2335's default n=2^18, r=8, p=1, so about four times its
	// decrypt time. Every keystore real tools write passes: EIP-2335 and
	// staking-deposit-cli/ethstaker-deposit-cli (n=2^18, r=8, p=1),
	// Prysm, Lighthouse, Teku, Nimbus, ethdo (the same default), and
	// go-ethereum's v3 "standard" (2^18, 8, 1) and "light" (2^12, 8, 6).
	// n=2^20, r=8, p=16 (2^27) is refused.
	MaxScryptWork = 1 << 23
	// MaxPBKDF2C bounds pbkdf2's c: 2^21, eight times EIP-2335's c=2^18.
	MaxPBKDF2C = 1 << 21
	// MaxFileSize bounds a keystore file: real ones are under 1 KiB; read
	// files through io.LimitReader(f, MaxFileSize+1). Parse refuses more.
	MaxFileSize = 1 << 20
)

// MinPasswordLength is the shortest user-chosen password accepted, as in
// ethstaker-deposit-cli.
const MinPasswordLength = 12

// Errors.
var (
	ErrWrongPassword = errors.New("keystore: wrong password (checksum mismatch)")
	ErrFormat        = errors.New("keystore: malformed keystore")
	ErrUnsupported   = errors.New("keystore: unsupported keystore")
	ErrWeakPassword  = fmt.Errorf("keystore: password must be at least %d characters", MinPasswordLength)
)

// Module is one of the crypto modules of EIP-2335.
type Module struct {
	Function string          `json:"function"`
	Params   json.RawMessage `json:"params"`
	Message  string          `json:"message"`
}

// Crypto is the crypto section of a keystore.
type Crypto struct {
	KDF      Module `json:"kdf"`
	Checksum Module `json:"checksum"`
	Cipher   Module `json:"cipher"`
}

// Keystore is an EIP-2335 keystore. Its fields are public data.
type Keystore struct {
	Crypto      Crypto `json:"crypto"`
	Description string `json:"description"`
	Pubkey      string `json:"pubkey"`
	Path        string `json:"path"`
	UUID        string `json:"uuid"`
	Version     int    `json:"version"`

	// message: the cipher message is a message of any length
	// (EncryptMessage, ParseMessage), not a 32-byte key.
	message bool
}

type scryptParams struct {
	DKLen int    `json:"dklen"`
	N     int    `json:"n"`
	R     int    `json:"r"`
	P     int    `json:"p"`
	Salt  string `json:"salt"`
}

// pbkdf2Params is in the field order staking-deposit-cli writes (c, dklen,
// prf, salt), so that keystores match its output byte for byte.
type pbkdf2Params struct {
	C     int    `json:"c"`
	DKLen int    `json:"dklen"`
	PRF   string `json:"prf"`
	Salt  string `json:"salt"`
}

type cipherParams struct {
	IV string `json:"iv"`
}

type options struct {
	kdf         KDF
	cost        int // n for scrypt, c for pbkdf2; 0 means default
	description string
	pubkey      []byte
	path        string
}

// Option configures Encrypt.
type Option interface{ apply(*options) error }

type optionFunc func(*options) error

func (f optionFunc) apply(o *options) error { return f(o) }

// WithKDF selects scrypt (the default) or pbkdf2.
func WithKDF(k KDF) Option {
	return optionFunc(func(o *options) error {
		if k != Scrypt && k != PBKDF2 {
			return fmt.Errorf("%w: kdf %q (want scrypt or pbkdf2)", ErrUnsupported, k)
		}
		o.kdf = k
		return nil
	})
}

// WithPath records the EIP-2334 path of the key.
func WithPath(p string) Option {
	return optionFunc(func(o *options) error { o.path = p; return nil })
}

// WithPubkey records the public key (48 bytes).
func WithPubkey(pk []byte) Option {
	return optionFunc(func(o *options) error { o.pubkey = pk; return nil })
}

// WithDescription sets the description field.
func WithDescription(d string) Option {
	return optionFunc(func(o *options) error { o.description = d; return nil })
}

// WithInsecureCost lowers the KDF cost (scrypt n or pbkdf2 c). Tests only.
func WithInsecureCost(_ testing.TB, cost int) Option {
	return optionFunc(func(o *options) error {
		if cost < 2 {
			return errors.New("keystore: cost must be at least 2")
		}
		o.cost = cost
		return nil
	})
}

// HandoffPBKDF2C is the iteration count of hand-off keystores: 1, the
// least EIP-2335's pbkdf2 admits (and what Web3Signer's keystore library
// and Lodestar accept: c >= 1).
const HandoffPBKDF2C = 1

// WithHandoffKDF selects pbkdf2-hmac-sha256 with c = 1: one HMAC instead of
// a memory-hard KDF. Use it only for a keystore whose password travels or
// is stored with it (a Keymanager API request, a key directory holding the
// password file), where a costly KDF protects nothing (whoever reads the
// keystore reads its password) and only makes the signer spend seconds per
// key at load. Never for a keystore kept apart from its password.
func WithHandoffKDF() Option {
	return optionFunc(func(o *options) error {
		o.kdf = PBKDF2
		o.cost = HandoffPBKDF2C
		return nil
	})
}

// NormalizePassword applies EIP-2335's password processing: NFKD, then
// removal of the C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F)
// control codes.
func NormalizePassword(password string) []byte {
	n := norm.NFKD.String(password)
	out := make([]byte, 0, len(n))
	for _, r := range n {
		if r <= 0x1f || (r >= 0x7f && r <= 0x9f) {
			continue
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

// CheckPassword refuses user-chosen passwords shorter than MinPasswordLength
// characters (after normalisation).
func CheckPassword(password string) error {
	if utf8.RuneCount(NormalizePassword(password)) < MinPasswordLength {
		return ErrWeakPassword
	}
	return nil
}

const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// RandomPasswordLength gives 32*log2(62) ≈ 190 bits of entropy.
const RandomPasswordLength = 32

// RandomPassword returns a printable password of RandomPasswordLength
// alphanumeric characters drawn uniformly from random.
func RandomPassword(random io.Reader) (*keygen.Bytes, error) {
	out := make([]byte, 0, RandomPasswordLength)
	buf := make([]byte, 64)
	defer keygen.Wipe(buf)
	for len(out) < RandomPasswordLength {
		if _, err := io.ReadFull(random, buf); err != nil {
			return nil, fmt.Errorf("keystore: reading randomness: %w", err)
		}
		for _, b := range buf {
			if b < 248 && len(out) < RandomPasswordLength { // 248 = 4*62: unbiased
				out = append(out, passwordAlphabet[int(b)%len(passwordAlphabet)])
			}
		}
	}
	return keygen.NewBytes(out), nil
}

// Encrypt seals a 32-byte secret key under password. random supplies salt,
// IV and uuid (crypto/rand.Reader in production). The result is verified by
// decrypting it with the key derived here, so no second KDF run is needed.
func Encrypt(random io.Reader, secret, password []byte, opts ...Option) (*Keystore, error) {
	if len(secret) != 32 {
		return nil, fmt.Errorf("keystore: secret must be 32 bytes, got %d", len(secret))
	}
	return encrypt(random, secret, password, Scrypt, opts)
}

// MaxMessageSize bounds the plaintext of EncryptMessage and DecryptMessage.
const MaxMessageSize = 64 << 10

// EncryptMessage seals a message of any length (1 to MaxMessageSize bytes)
// in the EIP-2335 container, as @chainsafe/bls-keystore's create does for
// what is not a key (Lido's validator ejector reads signed exits encrypted
// this way). The default KDF is pbkdf2-hmac-sha256, c=262144, create's
// default (WithKDF chooses scrypt); pubkey and path are empty unless
// WithPubkey/WithPath set them.
func EncryptMessage(random io.Reader, msg, password []byte, opts ...Option) (*Keystore, error) {
	if len(msg) == 0 || len(msg) > MaxMessageSize {
		return nil, fmt.Errorf("keystore: message must be 1 to %d bytes, got %d", MaxMessageSize, len(msg))
	}
	ks, err := encrypt(random, msg, password, PBKDF2, opts)
	if err != nil {
		return nil, err
	}
	ks.message = true
	return ks, nil
}

func encrypt(random io.Reader, secret, password []byte, kdf KDF, opts []Option) (*Keystore, error) {
	o := options{kdf: kdf}
	for _, opt := range opts {
		if err := opt.apply(&o); err != nil {
			return nil, err
		}
	}
	pw := NormalizePassword(string(password))
	defer keygen.Wipe(pw)
	salt := make([]byte, 32)
	iv := make([]byte, 16)
	if _, err := io.ReadFull(random, salt); err != nil {
		return nil, fmt.Errorf("keystore: reading randomness: %w", err)
	}
	if _, err := io.ReadFull(random, iv); err != nil {
		return nil, fmt.Errorf("keystore: reading randomness: %w", err)
	}
	id, err := uuid.NewRandomFromReader(random)
	if err != nil {
		return nil, fmt.Errorf("keystore: reading randomness: %w", err)
	}
	ks := &Keystore{
		Description: o.description,
		Pubkey:      hex.EncodeToString(o.pubkey),
		Path:        o.path,
		UUID:        id.String(),
		Version:     4,
	}
	var params any
	switch o.kdf {
	case Scrypt:
		n := ScryptN
		if o.cost != 0 {
			n = o.cost
		}
		params = scryptParams{DKLen: 32, N: n, R: ScryptR, P: ScryptP, Salt: hex.EncodeToString(salt)}
	case PBKDF2:
		c := PBKDF2C
		if o.cost != 0 {
			c = o.cost
		}
		params = pbkdf2Params{C: c, DKLen: 32, PRF: "hmac-sha256", Salt: hex.EncodeToString(salt)}
	}
	p, _ := json.Marshal(params)
	ks.Crypto.KDF = Module{Function: string(o.kdf), Params: p}
	dk, err := ks.deriveKey(context.Background(), pw, scrypt.Key)
	if err != nil {
		return nil, err
	}
	defer keygen.Wipe(dk)
	ct, err := aesCTR(dk[:16], iv, secret)
	if err != nil {
		return nil, err
	}
	ks.Crypto.Cipher = Module{Function: "aes-128-ctr", Params: mustJSON(cipherParams{IV: hex.EncodeToString(iv)}), Message: hex.EncodeToString(ct)}
	ks.Crypto.Checksum = Module{Function: "sha256", Params: json.RawMessage("{}"), Message: hex.EncodeToString(checksum(dk, ct))}

	// Verify what we wrote with the key we already hold.
	got, err := ks.decryptWithKey(dk)
	if err != nil {
		return nil, fmt.Errorf("keystore: self-check failed: %w", err)
	}
	defer got.Destroy()
	if !got.Equal(keygen.NewBytes(secret)) {
		return nil, errors.New("keystore: self-check failed: plaintext differs")
	}
	return ks, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func checksum(dk, ct []byte) []byte {
	h := sha256.New()
	h.Write(dk[16:32])
	h.Write(ct)
	return h.Sum(nil)
}

func aesCTR(key, iv, in []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("%w: iv must be 16 bytes", ErrFormat)
	}
	out := make([]byte, len(in))
	cipher.NewCTR(block, iv).XORKeyStream(out, in)
	return out, nil
}

// KDF is the function this keystore uses.
func (k *Keystore) KDF() KDF { return KDF(k.Crypto.KDF.Function) }

// scryptFunc is a scrypt implementation: x/crypto's, or scryptContext.
type scryptFunc func(password, salt []byte, N, r, p, keyLen int) ([]byte, error)

func (k *Keystore) scryptParams() (scryptParams, []byte, error) {
	var p scryptParams
	if err := strictUnmarshal(k.Crypto.KDF.Params, &p); err != nil {
		return p, nil, fmt.Errorf("%w: scrypt params: %v", ErrFormat, err)
	}
	salt, err := hex.DecodeString(p.Salt)
	if err != nil {
		return p, nil, fmt.Errorf("%w: scrypt salt is not hex", ErrFormat)
	}
	// Bound memory (128·r·n bytes, at most MaxScryptMemory) and time
	// (n·r·p blocks, at most MaxScryptWork), so a hostile file cannot
	// exhaust either.
	if p.DKLen != 32 || p.N < 2 || p.N > MaxScryptN || p.N&(p.N-1) != 0 || p.R < 1 || p.R > 32 || p.P < 1 || p.P > MaxScryptP ||
		128*int64(p.N)*int64(p.R) > MaxScryptMemory || int64(p.N)*int64(p.R)*int64(p.P) > MaxScryptWork {
		return p, nil, fmt.Errorf("%w: scrypt parameters out of range (dklen=%d n=%d r=%d p=%d; at most 128·n·r=%d bytes and n·r·p=%d)",
			ErrUnsupported, p.DKLen, p.N, p.R, p.P, MaxScryptMemory, MaxScryptWork)
	}
	return p, salt, nil
}

// KDFMemory is the memory in bytes this keystore's KDF needs to decrypt
// (scrypt: 128·r·n for ROMix plus 128·r·p for its input; pbkdf2: a few
// hundred bytes), after checking its parameters against the bounds. Size
// concurrent decryptions by it, e.g. custody.Workers(maxMemory,
// k.KDFMemory()), rather than by the default cost.
func (k *Keystore) KDFMemory() (int64, error) {
	if err := k.validate(); err != nil {
		return 0, err
	}
	switch k.Crypto.KDF.Function {
	case string(Scrypt):
		p, _, err := k.scryptParams()
		if err != nil {
			return 0, err
		}
		return 128*int64(p.N)*int64(p.R) + 128*int64(p.R)*int64(p.P) + 256*int64(p.R), nil
	case string(PBKDF2):
		if _, _, err := k.pbkdf2Params(); err != nil {
			return 0, err
		}
		return 1 << 10, nil
	}
	return 0, fmt.Errorf("%w: kdf %q", ErrUnsupported, k.Crypto.KDF.Function)
}

func (k *Keystore) pbkdf2Params() (pbkdf2Params, []byte, error) {
	var p pbkdf2Params
	if err := strictUnmarshal(k.Crypto.KDF.Params, &p); err != nil {
		return p, nil, fmt.Errorf("%w: pbkdf2 params: %v", ErrFormat, err)
	}
	salt, err := hex.DecodeString(p.Salt)
	if err != nil {
		return p, nil, fmt.Errorf("%w: pbkdf2 salt is not hex", ErrFormat)
	}
	if p.PRF != "hmac-sha256" || p.DKLen != 32 || p.C < 1 || p.C > MaxPBKDF2C {
		return p, nil, fmt.Errorf("%w: pbkdf2 parameters out of range (prf=%q dklen=%d c=%d; c at most %d)", ErrUnsupported, p.PRF, p.DKLen, p.C, MaxPBKDF2C)
	}
	return p, salt, nil
}

func (k *Keystore) deriveKey(ctx context.Context, pw []byte, scryptKey scryptFunc) ([]byte, error) {
	switch k.Crypto.KDF.Function {
	case string(Scrypt):
		p, salt, err := k.scryptParams()
		if err != nil {
			return nil, err
		}
		if 128*p.N*p.R >= 64<<20 { // free the last run's 128·r·n-byte buffer so this one reuses it: --max-memory (tests/memory)
			runtime.GC()
		}
		dk, err := scryptKey(pw, salt, p.N, p.R, p.P, p.DKLen)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			return nil, fmt.Errorf("%w: scrypt: %v", ErrUnsupported, err)
		}
		return dk, nil
	case string(PBKDF2):
		p, salt, err := k.pbkdf2Params()
		if err != nil {
			return nil, err
		}
		// pbkdf2 at MaxPBKDF2C takes well under a second per key; it is
		// checked for cancellation before and after.
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return pbkdf2.Key(sha256.New, string(pw), salt, p.C, p.DKLen)
	default:
		return nil, fmt.Errorf("%w: kdf %q", ErrUnsupported, k.Crypto.KDF.Function)
	}
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// Decrypt derives the key from password and returns the 32-byte secret.
// A wrong password yields ErrWrongPassword. It cannot be interrupted: read
// files with DecryptContext.
func (k *Keystore) Decrypt(password []byte) (*keygen.Bytes, error) {
	return k.decrypt(context.Background(), password, scrypt.Key)
}

// DecryptContext is Decrypt that stops within milliseconds when ctx is done
// (returning ctx.Err()): its scrypt checks ctx between blocks. Use it
// wherever a keystore comes from a file; Decrypt stays for callers that have
// no context yet.
func (k *Keystore) DecryptContext(ctx context.Context, password []byte) (*keygen.Bytes, error) {
	return k.decrypt(ctx, password, func(pw, salt []byte, N, r, p, keyLen int) ([]byte, error) {
		return scryptContext(ctx, pw, salt, N, r, p, keyLen)
	})
}

func (k *Keystore) decrypt(ctx context.Context, password []byte, scryptKey scryptFunc) (*keygen.Bytes, error) {
	if err := k.validate(); err != nil {
		return nil, err
	}
	pw := NormalizePassword(string(password))
	defer keygen.Wipe(pw)
	dk, err := k.deriveKey(ctx, pw, scryptKey)
	if err != nil {
		return nil, err
	}
	defer keygen.Wipe(dk)
	return k.decryptWithKey(dk)
}

func (k *Keystore) decryptWithKey(dk []byte) (*keygen.Bytes, error) {
	ct, err := hex.DecodeString(k.Crypto.Cipher.Message)
	if err != nil {
		return nil, fmt.Errorf("%w: cipher message is not hex", ErrFormat)
	}
	want, err := hex.DecodeString(k.Crypto.Checksum.Message)
	if err != nil {
		return nil, fmt.Errorf("%w: checksum is not hex", ErrFormat)
	}
	if !hmac.Equal(checksum(dk, ct), want) {
		return nil, ErrWrongPassword
	}
	var cp cipherParams
	if err := strictUnmarshal(k.Crypto.Cipher.Params, &cp); err != nil {
		return nil, fmt.Errorf("%w: cipher params: %v", ErrFormat, err)
	}
	iv, err := hex.DecodeString(cp.IV)
	if err != nil {
		return nil, fmt.Errorf("%w: iv is not hex", ErrFormat)
	}
	pt, err := aesCTR(dk[:16], iv, ct)
	if err != nil {
		return nil, err
	}
	return keygen.NewBytes(pt), nil
}

func (k *Keystore) validate() error {
	if k.Version != 4 {
		return fmt.Errorf("%w: version %d (want 4)", ErrUnsupported, k.Version)
	}
	if k.Crypto.Checksum.Function != "sha256" {
		return fmt.Errorf("%w: checksum %q", ErrUnsupported, k.Crypto.Checksum.Function)
	}
	if k.Crypto.Cipher.Function != "aes-128-ctr" {
		return fmt.Errorf("%w: cipher %q", ErrUnsupported, k.Crypto.Cipher.Function)
	}
	n := len(k.Crypto.Cipher.Message)
	switch {
	case !k.message && n != 64:
		return fmt.Errorf("%w: cipher message must hold a 32-byte key", ErrFormat)
	case k.message && (n == 0 || n > 2*MaxMessageSize || n%2 != 0):
		return fmt.Errorf("%w: cipher message must hold 1 to %d bytes", ErrFormat, MaxMessageSize)
	}
	return nil
}

// Parse reads a keystore file's contents (at most MaxFileSize bytes).
func Parse(b []byte) (*Keystore, error) { return parse(b, false) }

// ParseMessage reads an encrypted message (EncryptMessage's, or
// @chainsafe/bls-keystore's create of any bytes): a keystore whose cipher
// message holds 1 to MaxMessageSize bytes. Decrypt it with Decrypt or
// DecryptContext.
func ParseMessage(b []byte) (*Keystore, error) { return parse(b, true) }

func parse(b []byte, message bool) (*Keystore, error) {
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%w: keystore larger than %d bytes", ErrFormat, MaxFileSize)
	}
	k := Keystore{message: message}
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if err := k.validate(); err != nil {
		return nil, err
	}
	if k.Pubkey != "" {
		if pk, err := hex.DecodeString(k.Pubkey); err != nil || len(pk) != 48 {
			return nil, fmt.Errorf("%w: pubkey must be 48 bytes of hex", ErrFormat)
		}
	}
	return &k, nil
}

// Marshal encodes the keystore as staking-deposit-cli does (one line,
// Python separators).
func (k *Keystore) Marshal() ([]byte, error) { return pyjson.Marshal(k) }

// FileName is the name staking-deposit-cli gives the keystore of a key at
// path, created at unix time ts: keystore-m_12381_3600_0_0_0-1700000000.json.
func FileName(path string, ts int64) string {
	return fmt.Sprintf("keystore-%s-%d.json", strings.ReplaceAll(path, "/", "_"), ts)
}

// ErrPubkeyMismatch means a keystore decrypted to a key whose public key is
// not the one the keystore names.
var ErrPubkeyMismatch = errors.New("keystore: decrypted key does not match the keystore's pubkey")

// DecryptKey decrypts the keystore and checks that the secret is a valid BLS
// key whose public key equals the keystore's pubkey field (when set).
func (k *Keystore) DecryptKey(password []byte) (*keygen.SecretKey, error) {
	raw, err := k.Decrypt(password)
	if err != nil {
		return nil, err
	}
	return k.checkKey(raw)
}

// DecryptKeyContext is DecryptKey with DecryptContext's cancellation.
func (k *Keystore) DecryptKeyContext(ctx context.Context, password []byte) (*keygen.SecretKey, error) {
	raw, err := k.DecryptContext(ctx, password)
	if err != nil {
		return nil, err
	}
	return k.checkKey(raw)
}

func (k *Keystore) checkKey(raw *keygen.Bytes) (*keygen.SecretKey, error) {
	defer raw.Destroy()
	sk, err := keygen.SecretKeyFromBytes(raw.UnsafeBytes())
	if err != nil {
		return nil, err
	}
	if k.Pubkey != "" && hex.EncodeToString(sk.PublicKey()) != strings.ToLower(k.Pubkey) {
		sk.Destroy()
		return nil, ErrPubkeyMismatch
	}
	return sk, nil
}
