package provenance

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
)

// Signer makes authenticators: the generator signs the canonical message
// over a record's public fields with it.
type Signer interface {
	// Sign returns a signature over msg.
	Sign(ctx context.Context, msg []byte) ([]byte, error)
	// KeyID is the stable, public name of the signing key:
	// "ed25519:<hex of the public key>" or the KMS key ARN.
	KeyID() string
}

// Verifier checks authenticators, with a public key only.
type Verifier interface {
	// Verify returns nil if sig is a valid signature over msg by this
	// verifier's key, and an error wrapping ErrForged otherwise.
	Verify(msg, sig []byte) error
	// KeyID names the key, as the matching Signer's KeyID does.
	KeyID() string
}

// ErrForged is wrapped by every Verify failure: a signature that does not
// verify over the message, one of the wrong length or encoding, or one made
// by another key.
var ErrForged = errors.New("provenance: signature does not verify")

// Ed25519KeyIDPrefix starts the KeyID of an Ed25519 key; the 64 lowercase
// hex digits of the public key follow.
const Ed25519KeyIDPrefix = "ed25519:"

// NewEd25519Signer returns a Signer for priv (RFC 8032 Ed25519, "pure"
// mode: msg itself is signed). The caller must not change priv afterwards.
func NewEd25519Signer(priv ed25519.PrivateKey) (Signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("provenance: Ed25519 private key has %d bytes; want %d", len(priv), ed25519.PrivateKeySize)
	}
	pub := priv.Public().(ed25519.PublicKey)
	return &ed25519Signer{priv: priv, id: Ed25519KeyIDPrefix + hex.EncodeToString(pub)}, nil
}

// NewEd25519Verifier returns a Verifier for pub.
func NewEd25519Verifier(pub ed25519.PublicKey) (Verifier, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("provenance: Ed25519 public key has %d bytes; want %d", len(pub), ed25519.PublicKeySize)
	}
	p := make(ed25519.PublicKey, len(pub))
	copy(p, pub)
	return &ed25519Verifier{pub: p, id: Ed25519KeyIDPrefix + hex.EncodeToString(p)}, nil
}

type ed25519Signer struct {
	priv ed25519.PrivateKey
	id   string
}

func (s *ed25519Signer) Sign(ctx context.Context, msg []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return ed25519.Sign(s.priv, msg), nil
}

func (s *ed25519Signer) KeyID() string { return s.id }

// Format prints only the key id, whatever the verb: the private key never
// reaches a log line.
func (s *ed25519Signer) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "provenance.Signer(%s)", s.id)
}

type ed25519Verifier struct {
	pub ed25519.PublicKey
	id  string
}

func (v *ed25519Verifier) Verify(msg, sig []byte) error {
	if len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: an Ed25519 signature has %d bytes, not %d", ErrForged, ed25519.SignatureSize, len(sig))
	}
	if !ed25519.Verify(v.pub, msg, sig) {
		return fmt.Errorf("%w (key %s)", ErrForged, v.id)
	}
	return nil
}

func (v *ed25519Verifier) KeyID() string { return v.id }
