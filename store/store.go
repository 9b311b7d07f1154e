package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"
)

// Sentinel errors. Backends wrap them with %w and add detail (the pubkey,
// the slot, the cause); test for them with errors.Is.
var (
	// ErrExists reports that a pubkey, a (RequestID, Slot) pair or a request
	// id is already stored. Nothing was written.
	ErrExists = errors.New("store: already exists")
	// ErrNotFound reports that no record or request has the given key.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict reports that a conditional update found a different
	// current value than the caller expected. Nothing was written.
	ErrConflict = errors.New("store: conflict")
	// ErrInvalid reports an argument the store refuses before doing any I/O.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrUnavailable reports that the backend could not be reached or did
	// not answer in time (locked file, throttling, network failure, missing
	// table, denied access). After ErrUnavailable from Put the outcome is
	// unknown: the caller resolves it with Get.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrReadOnly reports a write to a store opened for reading only.
	// Nothing was written.
	ErrReadOnly = errors.New("store: opened read-only")
)

// Status is the life-cycle state of a validator record.
type Status string

// The statuses of a validator key. A record is created generated or
// imported and custody never changes its status again; the later states
// (exported, deposited, exit-signed, retired) live in the [Ledger] as a
// [KeyState]. The store does not impose an order on transitions; SetStatus
// and PutKey only check the current value.
const (
	StatusGenerated  Status = "generated"   // made by our generator, stored sealed, never exported (record only)
	StatusImported   Status = "imported"    // brought in from elsewhere, never exported by us (record only)
	StatusExported   Status = "exported"    // its deposit belongs to exactly one export (ledger)
	StatusDeposited  Status = "deposited"   // live on one signer: loading it elsewhere is a takeover (ledger)
	StatusExitSigned Status = "exit-signed" // a voluntary exit has been signed for it; it may still be live (ledger)
	StatusRetired    Status = "retired"     // never to be loaded again (ledger)
)

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusGenerated, StatusImported, StatusExported, StatusDeposited, StatusExitSigned, StatusRetired:
		return true
	}
	return false
}

// Record origins.
const (
	OriginGenerated = "generated" // made by our generator
	OriginImported  = "imported"  // brought in from elsewhere
)

// Provenance identifies the build that created a record.
type Provenance struct {
	Version   string
	BuildHash string
}

// Record is one validator: its public deposit data and its sealed secret.
// It is keyed by Pubkey; (RequestID, Slot) is unique as well.
type Record struct {
	Pubkey                string          // lowercase hex, no 0x prefix, 96 characters; the primary key
	RequestID             string          // the request (batch) that created the record
	Slot                  int             // 0-based position within the request; (RequestID, Slot) is unique
	Network               string          // e.g. "mainnet" or "custom-0x12345678"
	WithdrawalCredentials string          // lowercase hex
	DepositData           json.RawMessage // the Launchpad JSON entry for this validator (public); stored byte for byte
	Sealed                []byte          // sealed secret, opaque to the store; required
	SealedMnemonic        []byte          // optional second sealed blob; nil when absent (an empty slice reads back as nil)
	Status                Status
	CreatedAt             time.Time // stored in UTC truncated to the millisecond; read back in UTC
	Provenance            Provenance
	Origin                string // OriginGenerated or OriginImported; "" in records written before origins existed
	Auth                  []byte // authenticator over the public fields, made by the generator's signing key; nil when absent (an empty slice reads back as nil)
	AuthKeyID             string // id of the key that made Auth
}

// Request is a generation request (a batch of records) and the fingerprint
// of its parameters, so that a retried request id can be told apart from a
// reused one.
type Request struct {
	ID          string
	Fingerprint string // hash of the request parameters, opaque to the store
	Count       int    // number of validators requested
	CreatedAt   time.Time
}

// Filter selects records for Query. A zero field places no constraint; the
// zero Filter selects every record.
type Filter struct {
	RequestID string
	Status    Status
}

// Store persists records. All methods are safe for concurrent use, and
// several Store values (or processes) may share one backend.
type Store interface {
	// CreateRequest records a request id with its parameters' fingerprint.
	// If the id already exists it returns the stored Request and an error
	// wrapping ErrExists, so the caller can compare fingerprints.
	CreateRequest(ctx context.Context, r Request) (Request, error)

	// Put writes all records atomically: all of them or none. It fails
	// with ErrExists (naming the pubkey or slot) if any pubkey or any
	// (RequestID, Slot) is already stored, and with ErrInvalid if a record
	// is malformed or the batch repeats a key or is too large for the
	// backend. Nothing is ever overwritten.
	Put(ctx context.Context, recs ...*Record) error

	// Get returns the record for pubkey, or an error wrapping ErrNotFound.
	Get(ctx context.Context, pubkey string) (*Record, error)

	// GetSlot returns the record holding (requestID, slot), reading with strong
	// consistency (unlike Query on DynamoDB, whose indexes lag), or an error
	// wrapping ErrNotFound.
	GetSlot(ctx context.Context, requestID string, slot int) (*Record, error)

	// Query yields the records matching f, fetching them page by page.
	// With f.RequestID set they come in Slot order; with only f.Status
	// set in (CreatedAt, Pubkey) order; the zero Filter yields every
	// record in an order the backend chooses. On error it yields
	// (nil, err) once and stops. Query is not a snapshot: a record
	// changed while the iteration runs may or may not be seen changed.
	Query(ctx context.Context, f Filter) iter.Seq2[*Record, error]

	// SetStatus sets the status of pubkey to `to` only if it currently is
	// `from`. It fails with ErrNotFound if there is no such record and
	// with ErrConflict if its status is not `from`.
	//
	// SetStatus remains for backwards compatibility. The lifecycle state
	// after creation lives in the [Ledger], which custody writes; custody
	// never calls SetStatus, and a record's Status is what it was created
	// with.
	SetStatus(ctx context.Context, pubkey string, from, to Status) error

	// Close releases the backend's resources.
	Close() error
}

// Limits and formats shared by the backends.
const (
	// PubkeyLen is the length of a BLS public key in hex.
	PubkeyLen = 96
	// TimeFormat is how CreatedAt is stored: UTC, fixed millisecond
	// precision, so that the text sorts in time order.
	TimeFormat = "2006-01-02T15:04:05.000Z"
)

// FormatTime returns t in TimeFormat (UTC, truncated to the millisecond).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ParseTime parses a TimeFormat string; the result is in UTC.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(TimeFormat, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// ValidPubkey reports whether s is 96 lowercase hex characters.
func ValidPubkey(s string) bool {
	if len(s) != PubkeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Validate checks a record before it is written. Errors wrap ErrInvalid.
func (r *Record) Validate() error {
	switch {
	case r == nil:
		return fmt.Errorf("%w: nil record", ErrInvalid)
	case !ValidPubkey(r.Pubkey):
		return fmt.Errorf("%w: pubkey %q is not %d lowercase hex characters", ErrInvalid, r.Pubkey, PubkeyLen)
	case r.RequestID == "":
		return fmt.Errorf("%w: record %s: empty request id", ErrInvalid, r.Pubkey)
	case r.Slot < 0:
		return fmt.Errorf("%w: record %s: negative slot %d", ErrInvalid, r.Pubkey, r.Slot)
	case len(r.Sealed) == 0:
		return fmt.Errorf("%w: record %s: empty sealed secret", ErrInvalid, r.Pubkey)
	case !r.Status.Valid():
		return fmt.Errorf("%w: record %s: status %q", ErrInvalid, r.Pubkey, r.Status)
	case r.CreatedAt.IsZero():
		return fmt.Errorf("%w: record %s: zero CreatedAt", ErrInvalid, r.Pubkey)
	case len(r.DepositData) > 0 && !json.Valid(r.DepositData):
		return fmt.Errorf("%w: record %s: deposit data is not valid JSON", ErrInvalid, r.Pubkey)
	case r.Origin != "" && r.Origin != OriginGenerated && r.Origin != OriginImported:
		return fmt.Errorf("%w: record %s: origin %q", ErrInvalid, r.Pubkey, r.Origin)
	}
	return nil
}

// ValidateBatch validates every record and checks that the batch does not
// repeat a pubkey or a (RequestID, Slot). Errors wrap ErrInvalid.
func ValidateBatch(recs []*Record) error {
	type slotKey struct {
		req  string
		slot int
	}
	pubkeys := make(map[string]bool, len(recs))
	slots := make(map[slotKey]bool, len(recs))
	for _, r := range recs {
		if err := r.Validate(); err != nil {
			return err
		}
		if pubkeys[r.Pubkey] {
			return fmt.Errorf("%w: pubkey %s appears twice in the batch", ErrInvalid, r.Pubkey)
		}
		pubkeys[r.Pubkey] = true
		k := slotKey{r.RequestID, r.Slot}
		if slots[k] {
			return fmt.Errorf("%w: request %q slot %d appears twice in the batch", ErrInvalid, r.RequestID, r.Slot)
		}
		slots[k] = true
	}
	return nil
}

// Validate checks a request before it is written. Errors wrap ErrInvalid.
func (r Request) Validate() error {
	switch {
	case r.ID == "":
		return fmt.Errorf("%w: empty request id", ErrInvalid)
	case r.Fingerprint == "":
		return fmt.Errorf("%w: request %q: empty fingerprint", ErrInvalid, r.ID)
	case r.Count < 0:
		return fmt.Errorf("%w: request %q: negative count %d", ErrInvalid, r.ID, r.Count)
	case r.CreatedAt.IsZero():
		return fmt.Errorf("%w: request %q: zero CreatedAt", ErrInvalid, r.ID)
	}
	return nil
}

// ValidateTransition checks the arguments of SetStatus. Errors wrap
// ErrInvalid.
func ValidateTransition(pubkey string, from, to Status) error {
	switch {
	case !ValidPubkey(pubkey):
		return fmt.Errorf("%w: pubkey %q is not %d lowercase hex characters", ErrInvalid, pubkey, PubkeyLen)
	case !from.Valid():
		return fmt.Errorf("%w: from status %q", ErrInvalid, from)
	case !to.Valid():
		return fmt.Errorf("%w: to status %q", ErrInvalid, to)
	}
	return nil
}

// ValidateSlot checks the arguments of GetSlot. Errors wrap ErrInvalid.
func ValidateSlot(requestID string, slot int) error {
	switch {
	case requestID == "":
		return fmt.Errorf("%w: empty request id", ErrInvalid)
	case slot < 0:
		return fmt.Errorf("%w: request %q: negative slot %d", ErrInvalid, requestID, slot)
	}
	return nil
}

// ValidateFilter checks a Query filter. Errors wrap ErrInvalid.
func ValidateFilter(f Filter) error {
	if f.Status != "" && !f.Status.Valid() {
		return fmt.Errorf("%w: filter status %q", ErrInvalid, f.Status)
	}
	return nil
}

// ErrSeq returns a sequence that yields (nil, err) once. Backends use it to
// report an error from Query before any I/O.
func ErrSeq(err error) iter.Seq2[*Record, error] {
	return func(yield func(*Record, error) bool) { yield(nil, err) }
}
