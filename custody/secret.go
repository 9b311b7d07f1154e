package custody

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/web3signer"
)

// SecretFormat is how the signing key is kept inside the sealed document.
type SecretFormat string

// Secret formats.
const (
	// FormatKeystore seals an EIP-2335 keystore and its random password
	// (one scrypt run per validator at generation), and the raw key beside
	// them, so that opening runs no KDF (records sealed before the raw key
	// was added open through the keystore's KDF).
	FormatKeystore SecretFormat = "keystore"
	// FormatRaw seals the 32-byte signing key itself (no KDF at generation;
	// the envelope is what protects it). The decrypt side writes a
	// keystore or a Web3Signer file-raw config.
	FormatRaw SecretFormat = "raw"
)

// Encryption-context purposes.
const (
	PurposeSecret   = "eth-validator-secret"
	PurposeMnemonic = "eth-validator-mnemonic"
)

// secretDocVersion is the version of the sealed JSON document.
const secretDocVersion = 1

// ErrSecret reports a sealed document that opened but is not what the record
// says it is (wrong pubkey, malformed document, key that does not derive
// the record's pubkey).
var ErrSecret = errors.New("custody: sealed secret does not match its record")

// Secret is a validator's opened secret. It redacts itself when formatted;
// raw access is through the Unsafe methods. Call Destroy when done.
type Secret struct {
	redacted
	Pubkey   string       // hex, no 0x
	Format   SecretFormat // keystore or raw
	Index    uint32       // EIP-2334 index of the key within its mnemonic
	Keystore *keystore.Keystore

	signing  *keygen.SecretKey
	password *keygen.Bytes
	mnemonic *keygen.Bytes
}

// SigningKey is the validator's BLS signing key.
func (s *Secret) SigningKey() *keygen.SecretKey { return s.signing }

// Path is the key's EIP-2334 path: its keystore's, or the one its index
// gives (a raw-format secret), so a keystore built from it carries it.
func (s *Secret) Path() string {
	if s.Keystore != nil && s.Keystore.Path != "" {
		return s.Keystore.Path
	}
	return keygen.SigningPath(s.Index)
}

// Handoff is s as web3signer.PrepareHandoffs takes it: the key, its path,
// and Destroy to run once its hand-off keystore is made.
func (s *Secret) Handoff() web3signer.Opened {
	return web3signer.Opened{Pubkey: s.Pubkey, SecretKey: s.signing, Path: s.Path(), Release: s.Destroy}
}

// UnsafePassword is the keystore's password (FormatKeystore only).
func (s *Secret) UnsafePassword() []byte { return s.password.UnsafeBytes() }

// UnsafeMnemonic is the mnemonic the key came from, when it was sealed with
// the key and not under a separate key; nil otherwise.
func (s *Secret) UnsafeMnemonic() []byte { return s.mnemonic.UnsafeBytes() }

// Destroy clears the secret material.
func (s *Secret) Destroy() {
	if s == nil {
		return
	}
	s.signing.Destroy()
	s.password.Destroy()
	s.mnemonic.Destroy()
}

// redacted gives Secret the same formatting behaviour as keygen's types.
type redacted struct{}

func (redacted) String() string               { return keygen.Redacted }
func (redacted) GoString() string             { return keygen.Redacted }
func (redacted) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(keygen.Redacted)) }
func (redacted) MarshalJSON() ([]byte, error) { return []byte(`"` + keygen.Redacted + `"`), nil }
func (redacted) MarshalText() ([]byte, error) { return []byte(keygen.Redacted), nil }
func (redacted) LogValue() slog.Value         { return slog.StringValue(keygen.Redacted) }

// secretDoc is what is sealed for one validator. Its secret fields are
// encoded by hand into a buffer the caller wipes, so that no secret ends up
// in an immutable Go string.
//
//	{"version":1,"pubkey":"<hex>","format":"keystore","index":0,
//	 "keystore":{...},"password":"...","secret_key":"<hex>","mnemonic":"..."}
//	{"version":1,"pubkey":"<hex>","format":"raw","index":0,
//	 "secret_key":"<hex>","mnemonic":"..."}
//
// "mnemonic" is absent when the mnemonic is sealed separately. A keystore
// document carries the raw key too, so that opening it runs no KDF;
// documents sealed before it did ("secret_key" absent) open through the
// keystore's KDF.
type secretDoc struct {
	pubkey   string
	format   SecretFormat
	index    uint32
	keystore []byte // JSON, public
	password []byte
	key      []byte // raw 32 bytes
	mnemonic []byte
}

func (d *secretDoc) marshal() []byte {
	b := make([]byte, 0, 1024)
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, secretDocVersion, 10)
	b = append(b, `,"pubkey":"`...)
	b = append(b, d.pubkey...)
	b = append(b, `","format":"`...)
	b = append(b, d.format...)
	b = append(b, `","index":`...)
	b = strconv.AppendUint(b, uint64(d.index), 10)
	if d.keystore != nil {
		b = append(b, `,"keystore":`...)
		b = append(b, d.keystore...)
		b = append(b, `,"password":`...)
		b = appendJSONString(b, d.password)
	}
	if d.key != nil {
		b = append(b, `,"secret_key":"`...)
		b = hex.AppendEncode(b, d.key)
		b = append(b, '"')
	}
	if d.mnemonic != nil {
		b = append(b, `,"mnemonic":`...)
		b = appendJSONString(b, d.mnemonic)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string without going through a Go
// string.
func appendJSONString(b, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
		default:
			b = append(b, s[:size]...)
		}
		s = s[size:]
	}
	return append(b, '"')
}

// rawDoc mirrors secretDoc for parsing; secret fields stay raw JSON bytes.
type rawDoc struct {
	Version   int             `json:"version"`
	Pubkey    string          `json:"pubkey"`
	Format    SecretFormat    `json:"format"`
	Index     uint32          `json:"index"`
	Keystore  json.RawMessage `json:"keystore"`
	Password  json.RawMessage `json:"password"`
	SecretKey json.RawMessage `json:"secret_key"`
	Mnemonic  json.RawMessage `json:"mnemonic"`
}

// unquote turns a JSON string into fresh bytes. Our writer only escapes
// quotes, backslashes and control characters; other escapes are decoded by
// encoding/json (which goes through a string, best effort).
func unquote(raw json.RawMessage) ([]byte, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, errors.New("not a JSON string")
	}
	inner := raw[1 : len(raw)-1]
	if !bytes.ContainsRune(inner, '\\') {
		return bytes.Clone(inner), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// parseSecret decodes an opened document and checks it against pubkey: the
// key it holds must derive that public key.
func parseSecret(ctx context.Context, plaintext []byte, pubkey string) (*Secret, error) {
	var d rawDoc
	if err := json.Unmarshal(plaintext, &d); err != nil {
		return nil, fmt.Errorf("%w: document is not JSON", ErrSecret)
	}
	if d.Version != secretDocVersion {
		return nil, fmt.Errorf("%w: document version %d", ErrSecret, d.Version)
	}
	if d.Pubkey != pubkey {
		return nil, fmt.Errorf("%w: document names another pubkey", ErrSecret)
	}
	s := &Secret{Pubkey: pubkey, Format: d.Format, Index: d.Index}
	ok := false
	defer func() {
		if !ok {
			s.Destroy()
		}
	}()
	var err error
	if d.Mnemonic != nil {
		if s.mnemonic, err = unquoteSecret(d.Mnemonic); err != nil {
			return nil, err
		}
	}
	switch d.Format {
	case FormatKeystore:
		if s.Keystore, err = keystore.Parse(d.Keystore); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSecret, err)
		}
		if s.password, err = unquoteSecret(d.Password); err != nil {
			return nil, err
		}
		if d.SecretKey == nil {
			// A document sealed before the raw key was sealed beside the
			// keystore: the keystore's KDF is the only way to the key.
			if s.signing, err = keystoreKey(ctx, s.Keystore, s.password.UnsafeBytes()); err != nil {
				return nil, fmt.Errorf("%w: keystore: %w", ErrSecret, err)
			}
			break
		}
		// The raw key sealed beside the keystore: no KDF run. The envelope
		// authenticates the document and the generator checked the
		// keystore against this key when it made it (keystore.Encrypt's
		// self-check); what can be checked without the KDF is, strictly:
		// the keystore names the record's pubkey and the key's path.
		if !strings.EqualFold(s.Keystore.Pubkey, pubkey) {
			return nil, fmt.Errorf("%w: the sealed keystore names another pubkey than its key", ErrSecret)
		}
		if s.Keystore.Path != keygen.SigningPath(d.Index) {
			return nil, fmt.Errorf("%w: the sealed keystore's path is not the key's", ErrSecret)
		}
		if s.signing, err = parseRawKey(d.SecretKey); err != nil {
			return nil, err
		}
	case FormatRaw:
		if s.signing, err = parseRawKey(d.SecretKey); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: unknown format %q", ErrSecret, d.Format)
	}
	if hex.EncodeToString(s.signing.PublicKey()) != pubkey {
		return nil, fmt.Errorf("%w: the key does not derive the record's pubkey", ErrSecret)
	}
	// The mnemonic is not re-derived here: the generator checked that it
	// derives the key before sealing, and the envelope authenticates every
	// byte since (a BIP-39 seed and an EIP-2333 derivation per key would
	// make loading a signer cost a KDF run per key). OpenMnemonic, which
	// hands the mnemonic out for use, checks it.
	ok = true
	return s, nil
}

// keystoreKey runs a sealed keystore's KDF to reach its key (documents
// sealed without the raw key). A variable: tests count its runs.
var keystoreKey = func(ctx context.Context, ks *keystore.Keystore, password []byte) (*keygen.SecretKey, error) {
	return ks.DecryptKeyContext(ctx, password)
}

// parseRawKey decodes a document's "secret_key" (64 hex digits).
func parseRawKey(field json.RawMessage) (*keygen.SecretKey, error) {
	raw, err := unquote(field)
	if err != nil {
		return nil, fmt.Errorf("%w: secret_key", ErrSecret)
	}
	defer keygen.Wipe(raw)
	key := make([]byte, 32)
	defer keygen.Wipe(key)
	if n, err := hex.Decode(key, raw); err != nil || n != 32 || len(raw) != 64 {
		return nil, fmt.Errorf("%w: secret_key is not 32 bytes of hex", ErrSecret)
	}
	sk, err := keygen.SecretKeyFromBytes(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSecret, err)
	}
	return sk, nil
}

func unquoteSecret(raw json.RawMessage) (*keygen.Bytes, error) {
	b, err := unquote(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed secret field", ErrSecret)
	}
	return keygen.NewBytes(b), nil
}

// checkMnemonic checks that the mnemonic derives pubkey at index, so the
// recovery material is known good.
func checkMnemonic(phrase *keygen.Bytes, index uint32, pubkey string) error {
	m, err := keygen.ParseMnemonic(string(phrase.UnsafeBytes()))
	if err != nil {
		// No detail: ParseMnemonic's message may quote a word.
		return fmt.Errorf("%w: the sealed mnemonic does not parse", ErrSecret)
	}
	defer m.Destroy()
	seed := m.Seed("")
	defer seed.Destroy()
	k, err := keygen.DeriveKey(seed, keygen.SigningPath(index))
	if err != nil {
		return err
	}
	defer k.Destroy()
	if hex.EncodeToString(k.PublicKey()) != pubkey {
		return fmt.Errorf("%w: the mnemonic does not derive the record's pubkey", ErrSecret)
	}
	return nil
}
