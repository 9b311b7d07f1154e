package web3signer

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// InterchangeFormatVersion is the EIP-3076 interchange format version
// written by EmptyInterchange.
const InterchangeFormatVersion = "5"

// ErrInterchange reports an argument EmptyInterchange refuses.
var ErrInterchange = errors.New("web3signer: invalid interchange input")

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

// EmptyInterchange returns an EIP-3076 interchange (format version 5) for
// the network with the given genesis validators root (32 bytes of hex,
// "0x" optional) in which every pubkey (48 bytes of hex, "0x" optional) has
// signed no block and no attestation. It is true only for keys that have
// never signed; importing it for a key that has signed elsewhere removes
// nothing, but claims a history that protects nothing either.
func EmptyInterchange(genesisValidatorsRoot string, pubkeys []string) ([]byte, error) {
	root := strings.ToLower(strings.TrimPrefix(genesisValidatorsRoot, "0x"))
	if b, err := hex.DecodeString(root); err != nil || len(b) != 32 {
		return nil, fmt.Errorf("%w: genesis validators root %q is not 32 bytes of hex", ErrInterchange, genesisValidatorsRoot)
	}
	doc := Interchange{
		Metadata: InterchangeMetadata{InterchangeFormatVersion: InterchangeFormatVersion, GenesisValidatorsRoot: "0x" + root},
		Data:     make([]InterchangeData, 0, len(pubkeys)),
	}
	seen := make(map[string]bool, len(pubkeys))
	for _, p := range pubkeys {
		pk, err := NormalizePubkey(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInterchange, err)
		}
		if seen[pk] {
			return nil, fmt.Errorf("%w: pubkey 0x%s appears twice", ErrInterchange, pk)
		}
		seen[pk] = true
		doc.Data = append(doc.Data, InterchangeData{
			Pubkey:             "0x" + pk,
			SignedBlocks:       []SignedBlock{},
			SignedAttestations: []SignedAttestation{},
		})
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
