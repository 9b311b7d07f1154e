package web3signer

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// InterchangeFormatVersion is the EIP-3076 interchange format version this
// package reads and writes (the only one Web3Signer's InterchangeV5Importer
// and current validator clients accept).
const InterchangeFormatVersion = "5"

// Errors of the interchange functions. Test for them with errors.Is.
var (
	// ErrInterchange reports an interchange (or an argument) that is not a
	// well-formed EIP-3076 version 5 document.
	ErrInterchange = errors.New("web3signer: invalid interchange")
	// ErrGenesisRoot reports an interchange for another network: its
	// genesis validators root is not the one of the network the caller
	// named.
	ErrGenesisRoot = errors.New("web3signer: interchange is for another network (genesis validators root differs)")
	// ErrInterchangeKey reports a previous signer's interchange that holds
	// no history for the key it is given for: it is another key's.
	ErrInterchangeKey = errors.New("web3signer: interchange holds no history for this key")
)

// Interchange is an EIP-3076 slashing-protection interchange document.
type Interchange struct {
	Metadata InterchangeMetadata `json:"metadata"`
	Data     []InterchangeData   `json:"data"`
}

// InterchangeMetadata is the metadata section of an interchange.
type InterchangeMetadata struct {
	InterchangeFormatVersion string `json:"interchange_format_version"`
	GenesisValidatorsRoot    string `json:"genesis_validators_root"`
}

// InterchangeData is the history of one key.
type InterchangeData struct {
	Pubkey             string              `json:"pubkey"`
	SignedBlocks       []SignedBlock       `json:"signed_blocks"`
	SignedAttestations []SignedAttestation `json:"signed_attestations"`
}

// SignedBlock is a block signed by a key (EIP-3076; decimal strings).
type SignedBlock struct {
	Slot        string `json:"slot"`
	SigningRoot string `json:"signing_root,omitempty"`
}

// SignedAttestation is an attestation signed by a key (EIP-3076).
type SignedAttestation struct {
	SourceEpoch string `json:"source_epoch"`
	TargetEpoch string `json:"target_epoch"`
	SigningRoot string `json:"signing_root,omitempty"`
}

// ParseRoot reads a genesis validators root: 32 bytes of hex, "0x"
// optional.
func ParseRoot(s string) ([32]byte, error) {
	var r [32]byte
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(h) != 64 {
		return r, fmt.Errorf("%w: genesis validators root %q is not 32 bytes of hex", ErrInterchange, short(s))
	}
	if _, err := hex.Decode(r[:], []byte(h)); err != nil {
		return r, fmt.Errorf("%w: genesis validators root %q is not 32 bytes of hex", ErrInterchange, short(s))
	}
	return r, nil
}

// RootString is root as EIP-3076 writes it: "0x" and 64 lowercase hex.
func RootString(root [32]byte) string { return "0x" + hex.EncodeToString(root[:]) }

// CheckGenesisRoot refuses got unless it is want, the root of the network
// the caller means (from its network table, never from the document being
// checked).
func CheckGenesisRoot(want, got [32]byte) error {
	if want != got {
		return fmt.Errorf("%w: the interchange names %s, the network's root is %s", ErrGenesisRoot, RootString(got), RootString(want))
	}
	return nil
}

func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// ParseInterchange reads an EIP-3076 interchange and checks it the way a
// version 5 importer does (Web3Signer's InterchangeV5Importer and its
// model classes; the interchange tests of eth-clients): format version
// exactly "5"; a 32-byte genesis validators root, which must be root;
// "data" an array of objects, each with a 48-byte "pubkey";
// "signed_blocks" and "signed_attestations" arrays (absent means empty)
// whose "slot", "source_epoch" and "target_epoch" are decimal uint64
// strings (JSON numbers are refused) and whose optional "signing_root" is
// 32 bytes of hex. Unknown fields are ignored. The result is normalised:
// lowercase hex with "0x", canonical decimals, empty arrays not nil.
func ParseInterchange(b []byte, root [32]byte) (*Interchange, error) {
	var doc struct {
		Metadata *struct {
			Version *string `json:"interchange_format_version"`
			Root    *string `json:"genesis_validators_root"`
		} `json:"metadata"`
		Data *[]json.RawMessage `json:"data"`
	}
	if err := decodeOne(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object of the interchange format", ErrInterchange)
	}
	switch {
	case doc.Metadata == nil:
		return nil, fmt.Errorf("%w: no metadata", ErrInterchange)
	case doc.Metadata.Version == nil || *doc.Metadata.Version != InterchangeFormatVersion:
		return nil, fmt.Errorf("%w: interchange_format_version is not %q", ErrInterchange, InterchangeFormatVersion)
	case doc.Metadata.Root == nil:
		return nil, fmt.Errorf("%w: no genesis_validators_root", ErrInterchange)
	case doc.Data == nil:
		return nil, fmt.Errorf("%w: no data array", ErrInterchange)
	}
	got, err := parseHex0x(*doc.Metadata.Root, 32, "genesis_validators_root")
	if err != nil {
		return nil, err
	}
	var gr [32]byte
	copy(gr[:], got)
	if err := CheckGenesisRoot(root, gr); err != nil {
		return nil, err
	}
	out := &Interchange{
		Metadata: InterchangeMetadata{InterchangeFormatVersion: InterchangeFormatVersion, GenesisValidatorsRoot: RootString(root)},
		Data:     make([]InterchangeData, 0, len(*doc.Data)),
	}
	for i, raw := range *doc.Data {
		d, err := parseData(raw)
		if err != nil {
			return nil, fmt.Errorf("%w (data[%d])", err, i)
		}
		out.Data = append(out.Data, d)
	}
	return out, nil
}

func parseData(raw json.RawMessage) (InterchangeData, error) {
	var d struct {
		Pubkey       *string         `json:"pubkey"`
		Blocks       json.RawMessage `json:"signed_blocks"`
		Attestations json.RawMessage `json:"signed_attestations"`
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' || json.Unmarshal(raw, &d) != nil {
		return InterchangeData{}, fmt.Errorf("%w: an entry of data is not an object", ErrInterchange)
	}
	if d.Pubkey == nil {
		return InterchangeData{}, fmt.Errorf("%w: an entry has no pubkey", ErrInterchange)
	}
	pk, err := parseHex0x(*d.Pubkey, 48, "pubkey")
	if err != nil {
		return InterchangeData{}, err
	}
	blocks, err := rawArray(d.Blocks, "signed_blocks")
	if err != nil {
		return InterchangeData{}, err
	}
	atts, err := rawArray(d.Attestations, "signed_attestations")
	if err != nil {
		return InterchangeData{}, err
	}
	out := InterchangeData{Pubkey: "0x" + hex.EncodeToString(pk), SignedBlocks: []SignedBlock{}, SignedAttestations: []SignedAttestation{}}
	for _, rb := range blocks {
		var blk struct {
			Slot        *string `json:"slot"`
			SigningRoot *string `json:"signing_root"`
		}
		if err := json.Unmarshal(rb, &blk); err != nil || blk.Slot == nil {
			return InterchangeData{}, fmt.Errorf("%w: a signed block is not an object with a decimal string slot", ErrInterchange)
		}
		slot, err := parseUint(*blk.Slot, "slot")
		if err != nil {
			return InterchangeData{}, err
		}
		sr, err := parseSigningRoot(blk.SigningRoot)
		if err != nil {
			return InterchangeData{}, err
		}
		out.SignedBlocks = append(out.SignedBlocks, SignedBlock{Slot: slot, SigningRoot: sr})
	}
	for _, ra := range atts {
		var att struct {
			Source      *string `json:"source_epoch"`
			Target      *string `json:"target_epoch"`
			SigningRoot *string `json:"signing_root"`
		}
		if err := json.Unmarshal(ra, &att); err != nil || att.Source == nil || att.Target == nil {
			return InterchangeData{}, fmt.Errorf("%w: a signed attestation is not an object with decimal string source_epoch and target_epoch", ErrInterchange)
		}
		src, err := parseUint(*att.Source, "source_epoch")
		if err != nil {
			return InterchangeData{}, err
		}
		tgt, err := parseUint(*att.Target, "target_epoch")
		if err != nil {
			return InterchangeData{}, err
		}
		sr, err := parseSigningRoot(att.SigningRoot)
		if err != nil {
			return InterchangeData{}, err
		}
		out.SignedAttestations = append(out.SignedAttestations, SignedAttestation{SourceEpoch: src, TargetEpoch: tgt, SigningRoot: sr})
	}
	return out, nil
}

// rawArray reads an optional array field: absent is empty, anything but
// an array (null included) is refused, as Jackson's withArray does.
func rawArray(raw json.RawMessage, what string) ([]json.RawMessage, error) {
	if raw == nil {
		return nil, nil
	}
	var a []json.RawMessage
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '[' || json.Unmarshal(raw, &a) != nil {
		return nil, fmt.Errorf("%w: %s is not an array", ErrInterchange, what)
	}
	return a, nil
}

func parseHex0x(s string, n int, what string) ([]byte, error) {
	h, ok := strings.CutPrefix(s, "0x")
	if !ok {
		return nil, fmt.Errorf("%w: %s %q has no 0x prefix", ErrInterchange, what, short(s))
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != n {
		return nil, fmt.Errorf("%w: %s %q is not %d bytes of hex", ErrInterchange, what, short(s), n)
	}
	return b, nil
}

func parseSigningRoot(s *string) (string, error) {
	if s == nil {
		return "", nil
	}
	b, err := parseHex0x(*s, 32, "signing_root")
	if err != nil {
		return "", err
	}
	return "0x" + hex.EncodeToString(b), nil
}

// parseUint accepts what Web3Signer's StringUInt64Deserializer does: a
// decimal uint64 in a string. It returns the canonical form.
func parseUint(s, what string) (string, error) {
	if s == "" || len(s) > 20 || strings.TrimLeft(s, "0123456789") != "" {
		return "", fmt.Errorf("%w: %s %q is not a decimal uint64 string", ErrInterchange, what, short(s))
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return "", fmt.Errorf("%w: %s %q is not a decimal uint64 string", ErrInterchange, what, short(s))
	}
	return strconv.FormatUint(v, 10), nil
}

// decodeOne decodes exactly one JSON value.
func decodeOne(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err == nil {
		return errors.New("data after the JSON value")
	}
	return nil
}

// KeyHistory is one key to hand to a signer, with what is known of its
// signing history.
type KeyHistory struct {
	Pubkey string // 48-byte BLS public key, hex, "0x" optional
	// Previous is the EIP-3076 interchange returned by the signer the key
	// leaves (Keymanager API DELETE, or that signer's export), or nil for
	// a key that has never signed anywhere. Only its entries for Pubkey
	// are used; it must hold at least one.
	Previous []byte
}

// BuildInterchange returns the EIP-3076 interchange (version 5) to import
// with keys into a signer of the network whose genesis validators root is
// root (from the caller's network table). For each key it merges every
// entry the key has in its Previous interchange (which must be for the same
// network and hold the key: ErrGenesisRoot, ErrInterchangeKey otherwise);
// a key without Previous gets an empty history, which is true only for a
// key that never signed. Blocks and attestations are merged as a union
// (identical records once), sorted; nothing is ever dropped, so the
// result protects at least as much as every input. Keys appear once each,
// in the order given.
func BuildInterchange(root [32]byte, keys []KeyHistory) ([]byte, error) {
	doc := Interchange{
		Metadata: InterchangeMetadata{InterchangeFormatVersion: InterchangeFormatVersion, GenesisValidatorsRoot: RootString(root)},
		Data:     make([]InterchangeData, 0, len(keys)),
	}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		pk, err := NormalizePubkey(k.Pubkey)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInterchange, err)
		}
		if seen[pk] {
			return nil, fmt.Errorf("%w: pubkey 0x%s appears twice", ErrInterchange, pk)
		}
		seen[pk] = true
		d := InterchangeData{Pubkey: "0x" + pk, SignedBlocks: []SignedBlock{}, SignedAttestations: []SignedAttestation{}}
		if k.Previous != nil {
			prev, err := ParseInterchange(k.Previous, root)
			if err != nil {
				return nil, fmt.Errorf("previous interchange of 0x%s: %w", pk[:16], err)
			}
			found := false
			for _, e := range prev.Data {
				if e.Pubkey == d.Pubkey {
					found = true
					d.SignedBlocks = append(d.SignedBlocks, e.SignedBlocks...)
					d.SignedAttestations = append(d.SignedAttestations, e.SignedAttestations...)
				}
			}
			if !found {
				return nil, fmt.Errorf("%w: the previous interchange given for 0x%s holds only other keys", ErrInterchangeKey, pk[:16])
			}
			d = normalizeHistory(d)
		}
		doc.Data = append(doc.Data, d)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// KeyInterchange extracts the history of one key from an interchange (for
// example the one a DELETE returned for many keys) into an interchange of
// its own, for root's network. A key the interchange does not hold is
// ErrInterchangeKey.
func KeyInterchange(b []byte, root [32]byte, pubkey string) ([]byte, error) {
	return BuildInterchange(root, []KeyHistory{{Pubkey: pubkey, Previous: b}})
}

func decimalCmp(a, b string) int {
	// Canonical decimals: shorter is smaller, then lexical.
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// normalizeHistory sorts and de-duplicates a key's records.
func normalizeHistory(d InterchangeData) InterchangeData {
	slices.SortFunc(d.SignedBlocks, func(x, y SignedBlock) int {
		if c := decimalCmp(x.Slot, y.Slot); c != 0 {
			return c
		}
		return strings.Compare(x.SigningRoot, y.SigningRoot)
	})
	d.SignedBlocks = slices.Compact(d.SignedBlocks)
	slices.SortFunc(d.SignedAttestations, func(x, y SignedAttestation) int {
		if c := decimalCmp(x.TargetEpoch, y.TargetEpoch); c != 0 {
			return c
		}
		if c := decimalCmp(x.SourceEpoch, y.SourceEpoch); c != 0 {
			return c
		}
		return strings.Compare(x.SigningRoot, y.SigningRoot)
	})
	d.SignedAttestations = slices.Compact(d.SignedAttestations)
	return d
}

// EmptyInterchange returns an EIP-3076 interchange (format version 5) for
// the network with the given genesis validators root (32 bytes of hex,
// "0x" optional) in which every pubkey (48 bytes of hex, "0x" optional) has
// signed no block and no attestation. It is true only for keys that have
// never signed; importing it for a key that has signed elsewhere removes
// nothing, but claims a history that protects nothing either. Prefer
// BuildInterchange, which takes the root as checked bytes from the
// caller's network table and merges the history of keys that have signed.
func EmptyInterchange(genesisValidatorsRoot string, pubkeys []string) ([]byte, error) {
	root, err := ParseRoot(genesisValidatorsRoot)
	if err != nil {
		return nil, err
	}
	keys := make([]KeyHistory, len(pubkeys))
	for i, p := range pubkeys {
		keys[i] = KeyHistory{Pubkey: p}
	}
	return BuildInterchange(root, keys)
}
