package enclave

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ethkeygen/ethkeygen/store"
)

// ProtocolVersion is the version of the parent/enclave protocol.
const ProtocolVersion = 1

// MaxMessageSize bounds one framed message (the 4-byte length excluded).
const MaxMessageSize = 8 << 20

// MaxRecords bounds the records of one load request.
const MaxRecords = 2000

// Errors of the transport and the protocol. Test for them with errors.Is.
var (
	// ErrTooLarge reports a message whose announced length exceeds the
	// maximum. Nothing of it is read.
	ErrTooLarge = errors.New("enclave: message too large")
	// ErrTruncated reports a connection that ended inside a message.
	ErrTruncated = errors.New("enclave: truncated message")
	// ErrProtocol reports a message that is not what the protocol allows.
	ErrProtocol = errors.New("enclave: protocol error")
	// ErrRefused reports a load the enclave refused or could not complete;
	// nothing was loaded.
	ErrRefused = errors.New("enclave: load refused")
)

// Message types.
const (
	TypeLoad   = "load"
	TypeResult = "result"
)

// Message is one framed message. Exactly one payload is set, as Type says.
// There is deliberately no message that carries key material out of the
// enclave: the only enclave-to-parent message is a Result of statuses.
type Message struct {
	Type   string       `json:"type"`
	Load   *LoadRequest `json:"load,omitempty"`
	Result *Result      `json:"result,omitempty"`
	// Sign asks for signed public messages (TypeSignExits,
	// TypeSignBLSChanges); Signed answers it with them (protocol_ops.go).
	Sign   *SignRequest `json:"sign,omitempty"`
	Signed *Signed      `json:"signed,omitempty"`
}

// Credentials are the parent instance role's temporary AWS credentials,
// forwarded so the enclave can call KMS. They are not key material, but
// they are secrets: they redact themselves in logs and formatting.
type Credentials struct {
	AccessKeyID     string    `json:"access_key_id"`
	SecretAccessKey string    `json:"secret_access_key"`
	SessionToken    string    `json:"session_token"`
	Expires         time.Time `json:"expires,omitzero"`
}

const redacted = "[REDACTED]"

// String redacts.
func (Credentials) String() string { return redacted }

// GoString redacts.
func (Credentials) GoString() string { return redacted }

// Format redacts.
func (Credentials) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue redacts.
func (Credentials) LogValue() slog.Value { return slog.StringValue(redacted) }

// LoadRequest asks the enclave to load validator keys into Web3Signer.
type LoadRequest struct {
	Version     int         `json:"version"`
	Region      string      `json:"region"`
	Credentials Credentials `json:"credentials"`
	// GenesisValidatorsRoot (hex) names the network of the slashing
	// protection interchange.
	GenesisValidatorsRoot string `json:"genesis_validators_root"`
	// Takeover allows keys whose status is "deposited" (active on a
	// signer): the operator asserts the previous signer is stopped for
	// good. Such keys get no empty interchange: their history must be
	// imported from the previous signer.
	Takeover bool `json:"takeover,omitempty"`
	// NoSlashingHistory lets a takeover key without its previous
	// signer's history load with an empty one: the operator asserts that
	// none exists (--no-slashing-history-i-understand). Without it such a
	// key is refused.
	NoSlashingHistory bool     `json:"no_slashing_history_i_understand,omitempty"`
	Records           []Record `json:"records"`
}

// Record is the wire form of a store.Record: public data and the sealed
// secret (ciphertext). The separately sealed mnemonic is never sent.
type Record struct {
	Pubkey                string          `json:"pubkey"`
	RequestID             string          `json:"request_id"`
	Slot                  int             `json:"slot"`
	Network               string          `json:"network"`
	WithdrawalCredentials string          `json:"withdrawal_credentials"`
	DepositData           json.RawMessage `json:"deposit_data"`
	Sealed                []byte          `json:"sealed"`
	Status                store.Status    `json:"status"`
	CreatedAt             time.Time       `json:"created_at"`
	// The generator's authenticator: the enclave refuses a record its own
	// copy of the generator's verification key does not accept.
	Origin     string           `json:"origin"`
	Auth       []byte           `json:"auth"`
	AuthKeyID  string           `json:"auth_key_id"`
	Provenance store.Provenance `json:"provenance"`
	// SealedMnemonic is the separately sealed mnemonic's ciphertext (under
	// the mnemonic key, which the enclave's role cannot use), sent only so
	// that the authenticator, which covers it, can be checked.
	SealedMnemonic []byte `json:"sealed_mnemonic,omitempty"`
	// Interchange is the EIP-3076 history the key's previous signer
	// returned (public data, kept with the key's state), or nil for a
	// key that never signed. It must be for the request's network and
	// hold this key.
	Interchange json.RawMessage `json:"interchange,omitempty"`
}

// RecordOf converts a stored record to its wire form.
func RecordOf(r *store.Record) Record {
	return Record{
		Pubkey: r.Pubkey, RequestID: r.RequestID, Slot: r.Slot, Network: r.Network,
		WithdrawalCredentials: r.WithdrawalCredentials, DepositData: r.DepositData,
		Sealed: r.Sealed, Status: r.Status, CreatedAt: r.CreatedAt,
		Origin: r.Origin, Auth: r.Auth, AuthKeyID: r.AuthKeyID, Provenance: r.Provenance,
		SealedMnemonic: r.SealedMnemonic,
	}
}

func (r Record) store() *store.Record {
	return &store.Record{
		Pubkey: r.Pubkey, RequestID: r.RequestID, Slot: r.Slot, Network: r.Network,
		WithdrawalCredentials: r.WithdrawalCredentials, DepositData: r.DepositData,
		Sealed: r.Sealed, Status: r.Status, CreatedAt: r.CreatedAt,
		Origin: r.Origin, Auth: r.Auth, AuthKeyID: r.AuthKeyID, Provenance: r.Provenance,
		SealedMnemonic: r.SealedMnemonic,
	}
}

// Key outcomes in a Result.
const (
	KeyLoaded  = "loaded"  // written to the key directory
	KeyRefused = "refused" // its status forbids loading it here
	KeyFailed  = "failed"  // it did not open or verify
	KeySkipped = "skipped" // fine, but not loaded because another key was not
)

// KeyStatus is the outcome for one pubkey. Reason is a fixed, non-secret
// phrase.
type KeyStatus struct {
	Pubkey string `json:"pubkey"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// NeedsSlashingHistory is set for a key taken over from another
	// signer: import that signer's interchange before signing.
	NeedsSlashingHistory bool `json:"needs_slashing_history,omitempty"`
}

// Result is the enclave's answer. OK means every key was loaded; otherwise
// nothing was.
type Result struct {
	OK    bool        `json:"ok"`
	Error string      `json:"error,omitempty"`
	Keys  []KeyStatus `json:"keys,omitempty"`
}

// WriteMessage writes m as a 4-byte big-endian length and JSON.
func WriteMessage(w io.Writer, m *Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("enclave: encoding message: %w", err)
	}
	defer clear(b) // may hold credentials
	if len(b) > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	frame := make([]byte, 4+len(b))
	defer clear(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(b)))
	copy(frame[4:], b)
	if _, err := w.Write(frame); err != nil {
		return fmt.Errorf("enclave: sending: %w", err)
	}
	return nil
}

// ReadMessage reads one message of at most max bytes (MaxMessageSize if
// max <= 0). An announced length above max fails with ErrTooLarge before
// anything more is read; a connection that ends inside the message fails
// with ErrTruncated; unknown fields, a second JSON value or a payload that
// does not match Type fail with ErrProtocol.
func ReadMessage(r io.Reader, max int) (*Message, error) {
	if max <= 0 || max > MaxMessageSize {
		max = MaxMessageSize
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: in the length prefix", ErrTruncated)
		}
		return nil, fmt.Errorf("enclave: receiving: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > uint32(max) {
		return nil, fmt.Errorf("%w: %d bytes announced, at most %d", ErrTooLarge, n, max)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrProtocol)
	}
	b := make([]byte, n)
	defer clear(b)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %d bytes announced", ErrTruncated, n)
		}
		return nil, fmt.Errorf("enclave: receiving: %w", err)
	}
	var m Message
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: malformed message", ErrProtocol) // no detail: it may quote credentials
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrProtocol)
	}
	only := func(p bool) bool {
		n := 0
		for _, set := range []bool{m.Load != nil, m.Result != nil, m.Sign != nil, m.Signed != nil} {
			if set {
				n++
			}
		}
		return p && n == 1
	}
	switch {
	case m.Type == TypeLoad && only(m.Load != nil):
	case m.Type == TypeResult && only(m.Result != nil):
	case (m.Type == TypeSignExits || m.Type == TypeSignBLSChanges) && only(m.Sign != nil):
		if err := m.Sign.check(m.Type); err != nil {
			return nil, err
		}
	case m.Type == TypeSigned && only(m.Signed != nil):
	default:
		return nil, fmt.Errorf("%w: message type %q", ErrProtocol, m.Type)
	}
	return &m, nil
}

// LogValue summarises a request without its credentials. (Value receiver:
// it serves LoadRequest and *LoadRequest alike.)
func (r LoadRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("version", r.Version), slog.String("region", r.Region),
		slog.Int("records", len(r.Records)), slog.Bool("takeover", r.Takeover))
}

// String summarises a request without its credentials.
func (r LoadRequest) String() string {
	return fmt.Sprintf("load request v%d (%s, %d records, takeover=%t)", r.Version, r.Region, len(r.Records), r.Takeover)
}

// GoString is String: %#v must not print the credentials either.
func (r LoadRequest) GoString() string { return r.String() }

// LogValue summarises a message without the credentials it may carry.
func (m Message) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("type", m.Type)}
	if m.Load != nil {
		attrs = append(attrs, slog.Any("load", m.Load.LogValue()))
	}
	if m.Result != nil {
		attrs = append(attrs, slog.Int("results", len(m.Result.Keys)))
	}
	if m.Sign != nil {
		attrs = append(attrs, slog.Any("sign", m.Sign.LogValue()))
	}
	if m.Signed != nil {
		attrs = append(attrs, slog.Int("signed", len(m.Signed.Keys)))
	}
	return slog.GroupValue(attrs...)
}

// String summarises a message without the credentials it may carry.
func (m Message) String() string {
	if m.Load != nil {
		return m.Type + ": " + m.Load.String()
	}
	if m.Sign != nil {
		return m.Type + ": " + m.Sign.String()
	}
	return m.Type
}

// GoString is String.
func (m Message) GoString() string { return m.String() }
