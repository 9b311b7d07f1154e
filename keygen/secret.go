package keygen

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

// Redacted is what every secret type prints instead of its contents.
const Redacted = "[REDACTED]"

// redacted implements the formatting interfaces for every secret type, so
// that fmt verbs, JSON and slog never see the secret.
type redacted struct{}

func (redacted) String() string               { return Redacted }
func (redacted) GoString() string             { return Redacted }
func (redacted) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(Redacted)) }
func (redacted) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }
func (redacted) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
func (redacted) LogValue() slog.Value         { return slog.StringValue(Redacted) }
func (redacted) MarshalBinary() ([]byte, error) {
	return nil, fmt.Errorf("keygen: refusing to marshal a secret")
}
func (redacted) GobEncode() ([]byte, error) {
	return nil, fmt.Errorf("keygen: refusing to encode a secret")
}

// Bytes is a secret byte string. It redacts itself when formatted and can be
// cleared with Destroy.
type Bytes struct {
	redacted
	b []byte
}

// NewBytes takes ownership of b: the caller must not use b afterwards.
func NewBytes(b []byte) *Bytes { return &Bytes{b: b} }

// UnsafeBytes returns the secret itself (not a copy). The slice is cleared by
// Destroy.
func (s *Bytes) UnsafeBytes() []byte {
	if s == nil {
		return nil
	}
	return s.b
}

// Len is the length of the secret.
func (s *Bytes) Len() int { return len(s.UnsafeBytes()) }

// Equal compares two secrets in constant time (for equal lengths).
func (s *Bytes) Equal(o *Bytes) bool {
	return subtle.ConstantTimeCompare(s.UnsafeBytes(), o.UnsafeBytes()) == 1
}

// Destroy overwrites the secret with zeros. It is safe to call twice.
func (s *Bytes) Destroy() {
	if s == nil {
		return
	}
	Wipe(s.b)
	s.b = nil
}

// Wipe overwrites b with zeros (best effort: Go may hold other copies).
func Wipe(b []byte) {
	clear(b)
}
