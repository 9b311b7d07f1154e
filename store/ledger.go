package store

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"time"
)

// KeyState is the lifecycle state of one validator key, kept in the [Ledger]
// (apart from its [Record]). A key with no KeyState is in the state its
// record was created with (generated or imported).
type KeyState struct {
	Pubkey      string    // 96 lowercase hex
	ExportID    string    // the export holding this key's deposit; set once, never changed; "" for imported keys
	State       Status    // exported | deposited | exit-signed | retired
	Signer      string    // signer the key is live on (deposited, exit-signed); "" otherwise
	AssignedTo  string    // signer the key is assigned to and not yet live on (custody.Assign); "" none
	Version     int64     // compare-and-set counter: 1 on first write, +1 on every write
	UpdatedAt   time.Time // UTC, ms
	By          string    // who made the last change (user@host, role ARN)
	Note        string    // free text, e.g. a retire reason (public)
	Interchange []byte    // EIP-3076 interchange JSON returned by the last signer (public), or nil
}

// LedgerState reports whether s is a state a [KeyState] may hold: imported (an
// imported key released by its signer), exported,
// deposited, exit-signed or retired.
func LedgerState(s Status) bool {
	switch s {
	case StatusExported, StatusDeposited, StatusExitSigned, StatusRetired, StatusImported:
		return true
	}
	return false
}

// Limits on ledger values, the same on every backend (a DynamoDB item holds
// at most 400 KB).
const (
	// MaxInterchangeLen is the largest Interchange a KeyState may carry.
	// A minimal EIP-3076 interchange (the latest signed block and
	// attestation) is well under 1 KB.
	MaxInterchangeLen = 256 << 10
	// MaxTextLen bounds KeyState.Signer, AssignedTo, By and Note, and Export.By.
	MaxTextLen = 4096
	// MaxPinNameLen and MaxPinValueLen bound Pin's arguments.
	MaxPinNameLen  = 256
	MaxPinValueLen = 64 << 10
)

// Validate checks the form of a KeyState before it is written: a valid
// pubkey, a ledger state, Version >= 1, UpdatedAt set, ExportID empty or a
// valid export id, Signer, AssignedTo, By and Note at most MaxTextLen bytes, and
// Interchange, if present, valid JSON of at most MaxInterchangeLen bytes. It checks no
// lifecycle rule (which transitions are allowed is custody's business).
// Errors wrap ErrInvalid.
func (ks *KeyState) Validate() error {
	switch {
	case ks == nil:
		return fmt.Errorf("%w: nil key state", ErrInvalid)
	case !ValidPubkey(ks.Pubkey):
		return fmt.Errorf("%w: pubkey %q is not %d lowercase hex characters", ErrInvalid, ks.Pubkey, PubkeyLen)
	case ks.ExportID != "" && ValidateExportID(ks.ExportID) != nil:
		return fmt.Errorf("%w: key %s: %w", ErrInvalid, ks.Pubkey, ValidateExportID(ks.ExportID))
	case !LedgerState(ks.State):
		return fmt.Errorf("%w: key %s: state %q is not a ledger state", ErrInvalid, ks.Pubkey, ks.State)
	case ks.Version < 1:
		return fmt.Errorf("%w: key %s: version %d < 1", ErrInvalid, ks.Pubkey, ks.Version)
	case ks.UpdatedAt.IsZero():
		return fmt.Errorf("%w: key %s: zero UpdatedAt", ErrInvalid, ks.Pubkey)
	case len(ks.Signer) > MaxTextLen || len(ks.AssignedTo) > MaxTextLen || len(ks.By) > MaxTextLen || len(ks.Note) > MaxTextLen:
		return fmt.Errorf("%w: key %s: signer, assignee, by or note longer than %d bytes", ErrInvalid, ks.Pubkey, MaxTextLen)
	case len(ks.Interchange) > MaxInterchangeLen:
		return fmt.Errorf("%w: key %s: interchange of %d bytes is longer than %d", ErrInvalid, ks.Pubkey, len(ks.Interchange), MaxInterchangeLen)
	case len(ks.Interchange) > 0 && !json.Valid(ks.Interchange):
		return fmt.Errorf("%w: key %s: interchange is not valid JSON", ErrInvalid, ks.Pubkey)
	}
	return nil
}

// Export is one Launchpad deposit file, kept in the [Ledger]. The file is a
// pure function of the sealed export (its Members and the records they name),
// so writing it again reproduces it.
//
// An export holds either the members' own generated deposits (TopUpGwei 0:
// each key in at most one such export, by ClaimForExport) or, for a top-up
// export (TopUpGwei > 0), one deposit of TopUpGwei for each member, signed
// anew with its key (deposit signatures are deterministic, so the file is a
// pure function of the export here too). A key may be a member of any
// number of top-up exports: they claim nothing (ClaimForExport refuses
// them) and are sealed with claims 0, Members chosen from Candidates.
type Export struct {
	ID        string
	CreatedAt time.Time // the file name is deposit_data-<CreatedAt unix>.json
	Network   string
	// WithdrawalCredentials are the credentials the operator stated (hex,
	// 64 chars, or BLSTarget). A top-up export may leave them empty: each
	// deposit pays its key's recorded credentials.
	WithdrawalCredentials string
	Candidates            []string // pubkeys considered, in file order
	Claims                int      // keys claimed for this export so far (ClaimForExport adds)
	Sealed                bool     // Members frozen: the file is a pure function of them
	Members               []string // set by SealExport, file order
	By                    string
	TopUpGwei             uint64 // 0: the members' generated deposits; > 0: a top-up deposit of this amount each (at most MaxTopUpGwei)
}

// TopUp reports whether e is a top-up export.
func (e *Export) TopUp() bool { return e.TopUpGwei > 0 }

// MaxTopUpGwei bounds Export.TopUpGwei so that every backend stores it as a
// signed 64-bit integer (far above any valid deposit amount).
const MaxTopUpGwei = 1<<63 - 1

// BLSTarget is the WithdrawalCredentials of an export whose operator stated
// BLS (0x00) withdrawal credentials: each validator has its own, derived
// from its withdrawal key, so the target is the 0x00 prefix.
const BLSTarget = "00"

// MaxExportIDLen is the longest export id the ledger accepts.
const MaxExportIDLen = 128

// ValidateExportID checks that id is 1 to MaxExportIDLen characters from
// [A-Za-z0-9._-]. (Backends build item keys from it, so it must not hold a
// separator.) Errors wrap ErrInvalid.
func ValidateExportID(id string) error {
	if id == "" || len(id) > MaxExportIDLen {
		return fmt.Errorf("%w: export id %q: length %d not in 1..%d", ErrInvalid, id, len(id), MaxExportIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: export id %q: character %q is not one of [A-Za-z0-9._-]", ErrInvalid, id, c)
		}
	}
	return nil
}

// validHex reports whether s is n lowercase hex characters.
func validHex(s string, n int) bool {
	if len(s) != n {
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

// ValidatePubkeys checks that every element of pubkeys is a valid pubkey and
// that none repeats; what names the list in the error. Errors wrap
// ErrInvalid.
func ValidatePubkeys(what string, pubkeys []string) error {
	seen := make(map[string]struct{}, len(pubkeys))
	for i, pk := range pubkeys {
		if !ValidPubkey(pk) {
			return fmt.Errorf("%w: %s[%d]: pubkey %q is not %d lowercase hex characters", ErrInvalid, what, i, pk, PubkeyLen)
		}
		if _, ok := seen[pk]; ok {
			return fmt.Errorf("%w: %s: pubkey %s appears twice", ErrInvalid, what, pk)
		}
		seen[pk] = struct{}{}
	}
	return nil
}

// Validate checks the form of an Export: a valid id, CreatedAt set, Network
// set, WithdrawalCredentials 64 lowercase hex characters (or BLSTarget, or
// empty on a top-up export), TopUpGwei at most MaxTopUpGwei, Candidates and
// Members valid pubkeys without repeats, Claims >= 0, Members a subset of
// Candidates, and no Members unless Sealed. Errors wrap ErrInvalid.
func (e *Export) Validate() error {
	if e == nil {
		return fmt.Errorf("%w: nil export", ErrInvalid)
	}
	if err := ValidateExportID(e.ID); err != nil {
		return err
	}
	switch {
	case e.CreatedAt.IsZero():
		return fmt.Errorf("%w: export %s: zero CreatedAt", ErrInvalid, e.ID)
	case e.Network == "":
		return fmt.Errorf("%w: export %s: empty network", ErrInvalid, e.ID)
	case e.WithdrawalCredentials != BLSTarget && !validHex(e.WithdrawalCredentials, 64) && !(e.TopUp() && e.WithdrawalCredentials == ""):
		return fmt.Errorf("%w: export %s: withdrawal credentials %q are not 64 lowercase hex characters", ErrInvalid, e.ID, e.WithdrawalCredentials)
	case e.TopUpGwei > MaxTopUpGwei:
		return fmt.Errorf("%w: export %s: top-up amount %d gwei is larger than %d", ErrInvalid, e.ID, e.TopUpGwei, uint64(MaxTopUpGwei))
	case e.TopUp() && e.Claims != 0:
		return fmt.Errorf("%w: export %s: a top-up export claims no keys (claims %d)", ErrInvalid, e.ID, e.Claims)
	case e.Claims < 0:
		return fmt.Errorf("%w: export %s: negative claims %d", ErrInvalid, e.ID, e.Claims)
	case len(e.By) > MaxTextLen:
		return fmt.Errorf("%w: export %s: by longer than %d bytes", ErrInvalid, e.ID, MaxTextLen)
	case !e.Sealed && len(e.Members) > 0:
		return fmt.Errorf("%w: export %s: members set but not sealed", ErrInvalid, e.ID)
	}
	if err := ValidatePubkeys("export "+e.ID+" candidates", e.Candidates); err != nil {
		return err
	}
	return ValidateMembers(e.ID, e.Candidates, e.Members)
}

// ValidateMembers checks that members are valid pubkeys, without repeats,
// each one of candidates. Errors wrap ErrInvalid.
func ValidateMembers(exportID string, candidates, members []string) error {
	if err := ValidatePubkeys("export "+exportID+" members", members); err != nil {
		return err
	}
	cand := make(map[string]struct{}, len(candidates))
	for _, pk := range candidates {
		cand[pk] = struct{}{}
	}
	for _, pk := range members {
		if _, ok := cand[pk]; !ok {
			return fmt.Errorf("%w: export %s: member %s is not a candidate", ErrInvalid, exportID, pk)
		}
	}
	return nil
}

// ValidatePin checks the arguments of Pin: name and value non-empty and
// within MaxPinNameLen and MaxPinValueLen bytes. Errors wrap ErrInvalid.
func ValidatePin(name, value string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty pin name", ErrInvalid)
	case len(name) > MaxPinNameLen:
		return fmt.Errorf("%w: pin name of %d bytes is longer than %d", ErrInvalid, len(name), MaxPinNameLen)
	case value == "":
		return fmt.Errorf("%w: pin %q: empty value", ErrInvalid, name)
	case len(value) > MaxPinValueLen:
		return fmt.Errorf("%w: pin %q: value of %d bytes is longer than %d", ErrInvalid, name, len(value), MaxPinValueLen)
	}
	return nil
}

// ValidateClaim checks the arguments of ClaimForExport. Errors wrap
// ErrInvalid.
func ValidateClaim(exportID string, pubkeys []string, at time.Time) error {
	if err := ValidateExportID(exportID); err != nil {
		return err
	}
	if at.IsZero() {
		return fmt.Errorf("%w: claim for export %s: zero time", ErrInvalid, exportID)
	}
	return ValidatePubkeys("claim for export "+exportID, pubkeys)
}

// Ledger holds the lifecycle state of validator keys and the exports that
// hold their deposits. It lives apart from the records (its own SQLite file,
// its own DynamoDB table), so that writing or restoring the records cannot
// change it; only custody writes it. Every write is conditional, every read
// is strongly consistent, and all methods are safe for concurrent use by
// several Ledger values (or processes) sharing one backend.
type Ledger interface {
	// CreateExport stores e (Claims 0, not sealed). If e.ID exists it returns the stored
	// export and an error wrapping ErrExists. An e that fails Validate, or that has
	// Claims, Sealed or Members set, is refused with ErrInvalid.
	CreateExport(ctx context.Context, e *Export) (*Export, error)

	// GetExport returns the export with id, read with strong consistency, or an error
	// wrapping ErrNotFound.
	GetExport(ctx context.Context, id string) (*Export, error) // consistent read; ErrNotFound

	// Exports yields every export, in (CreatedAt, ID) order. On error it yields
	// (nil, err) once and stops.
	Exports(ctx context.Context) iter.Seq2[*Export, error] // all, in CreatedAt order

	// ClaimForExport: for each pubkey with no KeyState yet, atomically create
	// KeyState{ExportID: id, State: exported, Version: 1} and add 1 to the export's Claims,
	// only while the export is not sealed. Keys that already have a KeyState are skipped.
	// Returns the pubkeys claimed by this call. ErrConflict if the export is sealed,
	// ErrNotFound if it does not exist, ErrInvalid if it is a top-up export
	// (which claims nothing; nothing is written).
	//
	// Each key is claimed at most once, whatever runs concurrently: the
	// KeyState is created and Claims incremented together, so Claims always
	// equals the number of keys whose ExportID is the export. The created
	// KeyStates have UpdatedAt at (UTC, ms) and By by. A backend may write
	// the keys in several transactions (DynamoDB: 99 keys each); after an
	// error, the keys already claimed by the call are in the ledger and are
	// found by GetKey (a retry skips them).
	ClaimForExport(ctx context.Context, exportID string, pubkeys []string, at time.Time, by string) ([]string, error)

	// SealExport freezes Members if the export is not sealed and its Claims equal claims;
	// else ErrConflict (nothing written). A top-up export is sealed with claims 0. ErrNotFound if the export does not
	// exist; ErrInvalid if members repeat a pubkey or name one that is not a
	// candidate. Once sealed, ClaimForExport for the export fails.
	SealExport(ctx context.Context, id string, members []string, claims int) error

	// GetKey returns the KeyState of pubkey, read with strong consistency, or
	// an error wrapping ErrNotFound.
	GetKey(ctx context.Context, pubkey string) (*KeyState, error) // consistent read; ErrNotFound

	// PutKey writes ks if the stored version is ks.Version-1 (absent counts as 0); else ErrConflict.
	// The stored ExportID is never changed: a ks whose ExportID differs from
	// the stored one is refused with ErrConflict. A ks that fails Validate is
	// refused with ErrInvalid. UpdatedAt is stored in UTC truncated to the
	// millisecond.
	PutKey(ctx context.Context, ks *KeyState) error

	// Keys yields every KeyState, in an order the backend chooses. On error
	// it yields (nil, err) once and stops.
	Keys(ctx context.Context) iter.Seq2[*KeyState, error]

	// Pin sets name to value if name is unset and returns the stored value (pins the sealing
	// key / recipient and the generator's verification key of a store).
	// The first writer wins; later calls return its value whatever value
	// they pass. Empty names and values are refused with ErrInvalid.
	Pin(ctx context.Context, name, value string) (string, error)

	// Close releases the backend's resources.
	Close() error
}

// ValidateNewExport checks an export passed to CreateExport: Validate, and
// Claims, Sealed and Members unset. Errors wrap ErrInvalid.
func ValidateNewExport(e *Export) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if e.Claims != 0 || e.Sealed || len(e.Members) != 0 {
		return fmt.Errorf("%w: export %s: a new export has Claims 0, is not sealed and has no members", ErrInvalid, e.ID)
	}
	return nil
}
