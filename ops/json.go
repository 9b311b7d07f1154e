package ops

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/protolambda/zrnt/eth2/beacon/common"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/pyjson"
)

// The JSON forms: every number a decimal string, every byte string 0x and
// lowercase hex, as the beacon API defines them. Field order is the
// beacon API's (and ethstaker-deposit-cli's).

type exitMessageJSON struct {
	Epoch          string `json:"epoch"`
	ValidatorIndex string `json:"validator_index"`
}

type exitJSON struct {
	Message   exitMessageJSON `json:"message"`
	Signature string          `json:"signature"`
}

type blsChangeMessageJSON struct {
	ValidatorIndex     string `json:"validator_index"`
	FromBLSPubkey      string `json:"from_bls_pubkey"`
	ToExecutionAddress string `json:"to_execution_address"`
}

// BLSChangeMetadata is what ethstaker-deposit-cli adds to each entry of a
// bls_to_execution_change file.
type BLSChangeMetadata struct {
	NetworkName           string `json:"network_name"`
	GenesisValidatorsRoot string `json:"genesis_validators_root"`
	DepositCLIVersion     string `json:"deposit_cli_version"`
}

type blsChangeJSON struct {
	Message   blsChangeMessageJSON `json:"message"`
	Signature string               `json:"signature"`
	Metadata  *BLSChangeMetadata   `json:"metadata,omitempty"`
}

func hex0x(b []byte) string { return "0x" + hex.EncodeToString(b) }

func toExitJSON(e *SignedVoluntaryExit) exitJSON {
	return exitJSON{
		Message: exitMessageJSON{
			Epoch:          strconv.FormatUint(uint64(e.Message.Epoch), 10),
			ValidatorIndex: strconv.FormatUint(uint64(e.Message.ValidatorIndex), 10),
		},
		Signature: hex0x(e.Signature[:]),
	}
}

// MarshalExit is the beacon API's JSON of a signed exit (compact), the body
// of POST /eth/v1/beacon/pool/voluntary_exits and the form Lido's validator
// ejector reads.
func MarshalExit(e *SignedVoluntaryExit) ([]byte, error) { return json.Marshal(toExitJSON(e)) }

// MarshalExitFile is a signed_exit_transaction file as ethstaker-deposit-cli
// writes it: the same JSON with Python's separators, no trailing newline.
func MarshalExitFile(e *SignedVoluntaryExit) ([]byte, error) { return pyjson.Marshal(toExitJSON(e)) }

// ExitFileName is ethstaker-deposit-cli's name for an exit file:
// signed_exit_transaction-<validator index>-<unix>.json.
func ExitFileName(validatorIndex uint64, ts int64) string {
	return fmt.Sprintf("signed_exit_transaction-%d-%d.json", validatorIndex, ts)
}

// BLSChangeFileName is ethstaker-deposit-cli's name for a BLS change file:
// bls_to_execution_change-<unix>.json.
func BLSChangeFileName(ts int64) string { return fmt.Sprintf("bls_to_execution_change-%d.json", ts) }

func toBLSChangeJSON(c *SignedBLSToExecutionChange, meta *BLSChangeMetadata) blsChangeJSON {
	m := &c.BLSToExecutionChange
	return blsChangeJSON{
		Message: blsChangeMessageJSON{
			ValidatorIndex:     strconv.FormatUint(uint64(m.ValidatorIndex), 10),
			FromBLSPubkey:      hex0x(m.FromBLSPubKey[:]),
			ToExecutionAddress: hex0x(m.ToExecutionAddress[:]),
		},
		Signature: hex0x(c.Signature[:]),
		Metadata:  meta,
	}
}

// MarshalBLSChanges is the beacon API's JSON list of signed BLS changes
// (compact), the body of POST /eth/v1/beacon/pool/bls_to_execution_changes.
func MarshalBLSChanges(cs []*SignedBLSToExecutionChange) ([]byte, error) {
	out := make([]blsChangeJSON, len(cs))
	for i, c := range cs {
		out[i] = toBLSChangeJSON(c, nil)
	}
	return json.Marshal(out)
}

// MarshalBLSChangeFile is a bls_to_execution_change file as
// ethstaker-deposit-cli writes it: the beacon API list with metadata
// (network name, genesis validators root, tool version) in each entry,
// Python's separators, no trailing newline.
func MarshalBLSChangeFile(cs []*SignedBLSToExecutionChange, n depositdata.Network, toolVersion string) ([]byte, error) {
	meta := &BLSChangeMetadata{NetworkName: n.Name, GenesisValidatorsRoot: hex0x(n.GenesisValidatorsRoot[:]), DepositCLIVersion: toolVersion}
	out := make([]blsChangeJSON, len(cs))
	for i, c := range cs {
		out[i] = toBLSChangeJSON(c, meta)
	}
	return pyjson.Marshal(out)
}

// strictDecode decodes one JSON value into v: unknown fields and trailing
// data are errors.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

// ParseUint is a canonical decimal string of a uint64: digits only, no sign,
// no leading zero, no spaces.
func ParseUint(field, s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%w: %s %q is not a decimal number", ErrInvalid, field, s)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q does not fit 64 bits", ErrInvalid, field, s)
	}
	return v, nil
}

// ParseHex is 0x and exactly n bytes of lowercase hex.
func ParseHex(field, s string, n int) ([]byte, error) {
	if !strings.HasPrefix(s, "0x") || len(s) != 2+2*n || strings.ToLower(s) != s {
		return nil, fmt.Errorf("%w: %s must be 0x and %d bytes of lowercase hex", ErrInvalid, field, n)
	}
	b, err := hex.DecodeString(s[2:])
	if err != nil {
		return nil, fmt.Errorf("%w: %s must be 0x and %d bytes of lowercase hex", ErrInvalid, field, n)
	}
	return b, nil
}

func requireFields(raw json.RawMessage, where string, fields ...string) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("%w: %s is not a JSON object", ErrInvalid, where)
	}
	for _, f := range fields {
		if _, ok := m[f]; !ok {
			return fmt.Errorf("%w: %s has no %s", ErrInvalid, where, f)
		}
	}
	return nil
}

func exitFromJSON(j *exitJSON) (*SignedVoluntaryExit, error) {
	epoch, err := ParseUint("epoch", j.Message.Epoch)
	if err != nil {
		return nil, err
	}
	if err := CheckEpoch(epoch); err != nil {
		return nil, err
	}
	index, err := ParseUint("validator_index", j.Message.ValidatorIndex)
	if err != nil {
		return nil, err
	}
	if err := CheckValidatorIndex(index); err != nil {
		return nil, err
	}
	sig, err := ParseHex("signature", j.Signature, 96)
	if err != nil {
		return nil, err
	}
	e := &SignedVoluntaryExit{Message: VoluntaryExit{Epoch: common.Epoch(epoch), ValidatorIndex: common.ValidatorIndex(index)}}
	copy(e.Signature[:], sig)
	return e, nil
}

func checkExitFields(raw json.RawMessage, where string) error {
	if err := requireFields(raw, where, "message", "signature"); err != nil {
		return err
	}
	var m struct {
		Message json.RawMessage `json:"message"`
	}
	_ = json.Unmarshal(raw, &m)
	return requireFields(m.Message, where+" message", "epoch", "validator_index")
}

// ParseExit reads one signed exit in the beacon API form (any JSON spacing,
// so both MarshalExit's and MarshalExitFile's output). It checks the form,
// not the signature: that needs the validator's pubkey (VerifyExit).
func ParseExit(b []byte) (*SignedVoluntaryExit, error) {
	if err := checkExitFields(b, "exit"); err != nil {
		return nil, err
	}
	var j exitJSON
	if err := strictDecode(b, &j); err != nil {
		return nil, fmt.Errorf("%w: exit: %v", ErrInvalid, err)
	}
	return exitFromJSON(&j)
}

// ParseExits reads a JSON list of signed exits (the beacon pool's data).
func ParseExits(b []byte) ([]*SignedVoluntaryExit, error) {
	var raws []json.RawMessage
	if err := strictDecode(b, &raws); err != nil {
		return nil, fmt.Errorf("%w: not a JSON list of exits: %v", ErrInvalid, err)
	}
	out := make([]*SignedVoluntaryExit, 0, len(raws))
	for i, r := range raws {
		e, err := ParseExit(r)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// BLSChangeEntry is one parsed entry of a BLS change file; Metadata is nil
// in the beacon API form.
type BLSChangeEntry struct {
	Change   *SignedBLSToExecutionChange
	Metadata *BLSChangeMetadata
}

func parseBLSChange(raw json.RawMessage, where string) (*BLSChangeEntry, error) {
	if err := requireFields(raw, where, "message", "signature"); err != nil {
		return nil, err
	}
	var probe struct {
		Message  json.RawMessage `json:"message"`
		Metadata json.RawMessage `json:"metadata"`
	}
	_ = json.Unmarshal(raw, &probe)
	if err := requireFields(probe.Message, where+" message", "validator_index", "from_bls_pubkey", "to_execution_address"); err != nil {
		return nil, err
	}
	if probe.Metadata != nil {
		if err := requireFields(probe.Metadata, where+" metadata", "network_name", "genesis_validators_root", "deposit_cli_version"); err != nil {
			return nil, err
		}
	}
	var j blsChangeJSON
	if err := strictDecode(raw, &j); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, where, err)
	}
	index, err := ParseUint("validator_index", j.Message.ValidatorIndex)
	if err != nil {
		return nil, err
	}
	if err := CheckValidatorIndex(index); err != nil {
		return nil, err
	}
	pub, err := ParseHex("from_bls_pubkey", j.Message.FromBLSPubkey, 48)
	if err != nil {
		return nil, err
	}
	// Written lowercase; a checksummed address is accepted only with a
	// valid EIP-55 checksum.
	addr, err := depositdata.ParseAddress(j.Message.ToExecutionAddress, true)
	if err != nil {
		return nil, fmt.Errorf("%w: to_execution_address: %v", ErrInvalid, err)
	}
	sig, err := ParseHex("signature", j.Signature, 96)
	if err != nil {
		return nil, err
	}
	if j.Metadata != nil {
		if _, err := ParseHex("metadata genesis_validators_root", j.Metadata.GenesisValidatorsRoot, 32); err != nil {
			return nil, err
		}
		if j.Metadata.NetworkName == "" {
			return nil, fmt.Errorf("%w: metadata network_name is empty", ErrInvalid)
		}
	}
	c := &SignedBLSToExecutionChange{BLSToExecutionChange: BLSToExecutionChange{
		ValidatorIndex: common.ValidatorIndex(index), ToExecutionAddress: common.Eth1Address(addr)}}
	copy(c.BLSToExecutionChange.FromBLSPubKey[:], pub)
	copy(c.Signature[:], sig)
	return &BLSChangeEntry{Change: c, Metadata: j.Metadata}, nil
}

// ParseBLSChanges reads a JSON list of signed BLS changes: the beacon API
// form or ethstaker-deposit-cli's file (with metadata; all entries alike).
// It checks the form, not the signatures (VerifyBLSChangeFile does).
func ParseBLSChanges(b []byte) ([]*BLSChangeEntry, error) {
	var raws []json.RawMessage
	if err := strictDecode(b, &raws); err != nil {
		return nil, fmt.Errorf("%w: not a JSON list of BLS changes: %v", ErrInvalid, err)
	}
	out := make([]*BLSChangeEntry, 0, len(raws))
	for i, r := range raws {
		e, err := parseBLSChange(r, fmt.Sprintf("entry %d", i))
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if i > 0 && (e.Metadata == nil) != (out[0].Metadata == nil) {
			return nil, fmt.Errorf("%w: entry %d: metadata in some entries only", ErrInvalid, i)
		}
		out = append(out, e)
	}
	return out, nil
}

// VerifyBLSChangeFile parses b and verifies every entry on n: signature,
// metadata naming n and its genesis validators root, and no validator
// twice.
func VerifyBLSChangeFile(b []byte, n depositdata.Network) ([]*SignedBLSToExecutionChange, error) {
	entries, err := ParseBLSChanges(b)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: the file holds no BLS changes", ErrInvalid)
	}
	seen := map[common.ValidatorIndex]bool{}
	out := make([]*SignedBLSToExecutionChange, len(entries))
	for i, e := range entries {
		if md := e.Metadata; md != nil {
			if md.NetworkName != n.Name || md.GenesisValidatorsRoot != hex0x(n.GenesisValidatorsRoot[:]) {
				return nil, fmt.Errorf("%w: entry %d: metadata names %s (%s), not %s", ErrInvalid, i, md.NetworkName, md.GenesisValidatorsRoot, n.Name)
			}
		}
		if err := VerifyBLSChange(e.Change, n); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		vi := e.Change.BLSToExecutionChange.ValidatorIndex
		if seen[vi] {
			return nil, fmt.Errorf("%w: entry %d: validator %d appears twice", ErrInvalid, i, vi)
		}
		seen[vi] = true
		out[i] = e.Change
	}
	return out, nil
}
