package envelope

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
)

// NewLocalSealer returns a Sealer that wraps each fresh data key to an age
// X25519 recipient (a public key). The Sealer cannot open what it seals: only
// the holder of the matching identity can, which mirrors a KMS key policy that
// grants the generator kms:GenerateDataKey but not kms:Decrypt.
//
// age has no associated data, so the wrapped data key itself is not bound to
// the encryption context; the binding comes from the AES-GCM associated data,
// which covers the context, the header and the wrapped key.
func NewLocalSealer(recipient *age.X25519Recipient) Sealer {
	return &sealer{src: &ageKeySource{recipient: recipient}}
}

// NewLocalOpener returns an Opener for secrets sealed by NewLocalSealer to
// identity's recipient.
func NewLocalOpener(identity *age.X25519Identity) Opener {
	return &opener{u: &ageUnwrapper{identity: identity}}
}

type ageKeySource struct {
	recipient *age.X25519Recipient
}

func (*ageKeySource) provider() byte { return providerAgeX25519 }

func (s *ageKeySource) wrappingKey() string { return s.recipient.String() }

func (s *ageKeySource) newDataKey(ctx context.Context, _ Context) (*dataKey, error) {
	if s.recipient == nil {
		return nil, fmt.Errorf("%w: local sealer needs a recipient", ErrProvider)
	}
	key := make([]byte, dataKeySize)
	rand.Read(key) // never fails (crypto/rand since Go 1.24)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, s.recipient)
	if err == nil {
		_, err = w.Write(key)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		clear(key)
		return nil, fmt.Errorf("%w: age: %w", ErrProvider, err)
	}
	return &dataKey{keyID: s.recipient.String(), wrapped: buf.Bytes(), plaintext: key}, nil
}

type ageUnwrapper struct {
	identity *age.X25519Identity
}

func (*ageUnwrapper) provider() byte { return providerAgeX25519 }

// checkKey refuses a blob sealed to another recipient with a
// WrongKeyError, and one whose key id is not a recipient at all (a damaged
// header) with ErrAuth.
func (u *ageUnwrapper) checkKey(keyID string) error {
	if u.identity == nil {
		return nil // unwrap reports it
	}
	own := u.identity.Recipient().String()
	if keyID == own {
		return nil
	}
	if _, err := age.ParseX25519Recipient(keyID); err != nil {
		return ErrAuth
	}
	return &WrongKeyError{SealedTo: keyID, Have: own}
}

func (u *ageUnwrapper) unwrap(_ context.Context, _ string, wrapped []byte, _ Context) ([]byte, error) {
	if u.identity == nil {
		return nil, fmt.Errorf("%w: local opener needs an identity", ErrProvider)
	}
	r, err := age.Decrypt(bytes.NewReader(wrapped), u.identity)
	if err != nil {
		return nil, ErrAuth
	}
	// Read one byte more than a data key to detect a longer payload.
	key := make([]byte, dataKeySize+1)
	n, err := io.ReadFull(r, key)
	if n != dataKeySize || !errors.Is(err, io.ErrUnexpectedEOF) {
		clear(key)
		return nil, ErrAuth
	}
	return key[:dataKeySize], nil
}
