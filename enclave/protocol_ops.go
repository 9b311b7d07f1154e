package enclave

import (
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/ethkeygen/ethkeygen/ops"
	"github.com/ethkeygen/ethkeygen/store"
)

// The operations after the deposit, done in the enclave: the parent names
// keys (their records, sealed, and their ledger states) and the enclave
// answers with signed public messages only, never a key:
//
//	parent -> enclave  {"type":"sign_exits","sign":{version, region, credentials,
//	                    epoch, items:[{record, state, validator_index}], ...}}
//	parent -> enclave  {"type":"sign_bls_changes","sign":{..., to_execution_address}}
//	enclave -> parent  {"type":"signed","signed":{ok, error, keys:[...],
//	                    exits:[<beacon API exit>...] | bls_changes:[<beacon API change>...]}}
//
// A signed exit leaves the enclave only for a key whose ledger state, as
// the parent sends it, is exit-signed (custody.CheckExitRecorded): the
// parent marks it (custody.MarkExitSigned) before it asks.

// Message types of the operations.
const (
	TypeSignExits      = "sign_exits"
	TypeSignBLSChanges = "sign_bls_changes"
	TypeSigned         = "signed"
)

// SignItem is one key of a SignRequest: its record (wire form, sealed),
// its ledger state ("" for none) and its beacon chain index.
type SignItem struct {
	Record         Record       `json:"record"`
	State          store.Status `json:"state,omitempty"`
	ValidatorIndex uint64       `json:"validator_index"`
}

// SignRequest asks the enclave to sign voluntary exits (Epoch) or
// BLS-to-execution changes (ToExecutionAddress) for Items. The network is
// the records' (custody.NetworkOf); CapellaForkVersion and
// GenesisValidatorsRoot (hex) are given for a devnet only.
type SignRequest struct {
	Version               int         `json:"version"`
	Region                string      `json:"region"`
	Credentials           Credentials `json:"credentials"`
	CapellaForkVersion    string      `json:"capella_fork_version,omitempty"`
	GenesisValidatorsRoot string      `json:"genesis_validators_root,omitempty"`
	Epoch                 uint64      `json:"epoch,omitempty"`
	ToExecutionAddress    string      `json:"to_execution_address,omitempty"`
	Items                 []SignItem  `json:"items"`
}

// check is the form of a request of type typ: items within bounds, the
// field of its operation set and the other's not.
func (r *SignRequest) check(typ string) error {
	switch {
	case len(r.Items) == 0 || len(r.Items) > MaxRecords:
		return fmt.Errorf("%w: %d items (1 to %d)", ErrProtocol, len(r.Items), MaxRecords)
	case typ == TypeSignExits && r.ToExecutionAddress != "":
		return fmt.Errorf("%w: an exit request has no withdrawal address", ErrProtocol)
	case typ == TypeSignBLSChanges && (r.ToExecutionAddress == "" || r.Epoch != 0):
		return fmt.Errorf("%w: a BLS change request has a withdrawal address and no epoch", ErrProtocol)
	}
	return nil
}

// Signed is the enclave's answer to a SignRequest: the signed messages in
// the beacon API's JSON (public), one per item in order, when OK; else
// none, and Keys say why.
type Signed struct {
	OK         bool              `json:"ok"`
	Error      string            `json:"error,omitempty"`
	Keys       []KeyStatus       `json:"keys,omitempty"`
	Exits      []json.RawMessage `json:"exits,omitempty"`
	BLSChanges []json.RawMessage `json:"bls_changes,omitempty"`
}

// Key outcome of a signed item.
const KeySigned = "signed"

// LogValue summarises a request without its credentials.
func (r SignRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("version", r.Version), slog.String("region", r.Region), slog.Int("items", len(r.Items)))
}

// String summarises a request without its credentials.
func (r SignRequest) String() string {
	return fmt.Sprintf("sign request v%d (%s, %d items)", r.Version, r.Region, len(r.Items))
}

// GoString is String.
func (r SignRequest) GoString() string { return r.String() }

// ParseSignedExits reads the exits of a Signed answer.
func ParseSignedExits(s *Signed) ([]*ops.SignedVoluntaryExit, error) {
	out := make([]*ops.SignedVoluntaryExit, len(s.Exits))
	for i, b := range s.Exits {
		e, err := ops.ParseExit(b)
		if err != nil {
			return nil, fmt.Errorf("%w: exit %d: %v", ErrProtocol, i, err)
		}
		out[i] = e
	}
	return out, nil
}

// ParseSignedBLSChanges reads the BLS changes of a Signed answer.
func ParseSignedBLSChanges(s *Signed) ([]*ops.SignedBLSToExecutionChange, error) {
	b, err := json.Marshal(s.BLSChanges)
	if err != nil {
		return nil, err
	}
	entries, err := ops.ParseBLSChanges(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	out := make([]*ops.SignedBLSToExecutionChange, len(entries))
	for i, e := range entries {
		if e.Metadata != nil {
			return nil, fmt.Errorf("%w: BLS change %d carries metadata", ErrProtocol, i)
		}
		out[i] = e.Change
	}
	return out, nil
}
