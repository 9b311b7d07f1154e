package depositdata

import (
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Network is a chain deposits and operator messages are made for.
//
// ForkVersion (the genesis fork version) is all a deposit needs. Signed
// voluntary exits and BLS-to-execution changes also need the chain's
// genesis validators root, and exits the Capella fork version (EIP-7044):
// HasChainRoots reports whether a network has them.
type Network struct {
	Name                  string
	ForkVersion           [4]byte  // genesis fork version
	CapellaForkVersion    [4]byte  // fork version voluntary exits are signed under from Capella on (EIP-7044)
	GenesisValidatorsRoot [32]byte // hash tree root of the genesis validator registry; zero if unknown
}

// Known networks. Sources of every value: testdata/networks.json.
var (
	Mainnet = Network{
		Name:                  "mainnet",
		ForkVersion:           [4]byte{0x00, 0x00, 0x00, 0x00},
		CapellaForkVersion:    [4]byte{0x03, 0x00, 0x00, 0x00},
		GenesisValidatorsRoot: mustRoot("4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"),
	}
	Sepolia = Network{
		Name:                  "sepolia",
		ForkVersion:           [4]byte{0x90, 0x00, 0x00, 0x69},
		CapellaForkVersion:    [4]byte{0x90, 0x00, 0x00, 0x72},
		GenesisValidatorsRoot: mustRoot("d8ea171f3c94aea21ebc42a1ed61052acf3f9209c00e4efbaaddac09ed9b8078"),
	}
	Holesky = Network{
		Name:                  "holesky",
		ForkVersion:           [4]byte{0x01, 0x01, 0x70, 0x00},
		CapellaForkVersion:    [4]byte{0x04, 0x01, 0x70, 0x00},
		GenesisValidatorsRoot: mustRoot("9143aa7c615a7f7115e2b6aac319c03529df8242ae705fba9df39b79c59fa8b1"),
	}
	Hoodi = Network{
		Name:                  "hoodi",
		ForkVersion:           [4]byte{0x10, 0x00, 0x09, 0x10},
		CapellaForkVersion:    [4]byte{0x40, 0x00, 0x09, 0x10},
		GenesisValidatorsRoot: mustRoot("212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f"),
	}
)

func mustRoot(s string) [32]byte {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		panic("depositdata: bad root " + s)
	}
	return [32]byte(b)
}

var networks = map[string]Network{"mainnet": Mainnet, "sepolia": Sepolia, "holesky": Holesky, "hoodi": Hoodi}

// Errors about networks.
var (
	// ErrNetwork is returned for an unknown chain or a bad fork version.
	ErrNetwork = errors.New("depositdata: unknown network")
	// ErrNoChainRoots is returned (wrapping ErrNetwork) for a network that
	// lacks the genesis validators root or Capella fork version that signed
	// exits and BLS-to-execution changes need.
	ErrNoChainRoots = fmt.Errorf("%w: no genesis validators root and Capella fork version", ErrNetwork)
)

// NetworkNames lists the known networks.
func NetworkNames() []string {
	names := make([]string, 0, len(networks))
	for n := range networks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// NetworkByName returns a known network.
func NetworkByName(name string) (Network, error) {
	n, ok := networks[strings.ToLower(name)]
	if !ok {
		return Network{}, fmt.Errorf("%w %q (known: %s; use a fork version for a devnet)", ErrNetwork, name, strings.Join(NetworkNames(), ", "))
	}
	return n, nil
}

func parseFixedHex(what, s string, n int) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(s), "0x"))
	if err != nil || len(b) != n {
		return nil, fmt.Errorf("%w: %s %q is not %d bytes of hex", ErrNetwork, what, s, n)
	}
	return b, nil
}

// CustomNetwork is a devnet given by its genesis fork version (4 bytes of
// hex, with or without 0x). name defaults to "custom". A known network's
// name with its own fork version gives the known network (with its roots).
func CustomNetwork(name, forkVersion string) (Network, error) {
	b, err := parseFixedHex("fork version", forkVersion, 4)
	if err != nil {
		return Network{}, err
	}
	if name == "" {
		name = "custom"
	}
	n := Network{Name: name}
	copy(n.ForkVersion[:], b)
	if known, ok := networks[strings.ToLower(name)]; ok {
		if known.ForkVersion != n.ForkVersion {
			return Network{}, fmt.Errorf("%w: %s has fork version %x, not %x", ErrNetwork, known.Name, known.ForkVersion, n.ForkVersion)
		}
		return known, nil
	}
	return n, nil
}

// WithChainRoots returns n with the Capella fork version and genesis
// validators root of a devnet (hex, with or without 0x). For a known
// network the values must be its own.
func (n Network) WithChainRoots(capellaForkVersion, genesisValidatorsRoot string) (Network, error) {
	c, err := parseFixedHex("Capella fork version", capellaForkVersion, 4)
	if err != nil {
		return Network{}, err
	}
	r, err := parseFixedHex("genesis validators root", genesisValidatorsRoot, 32)
	if err != nil {
		return Network{}, err
	}
	out := n
	copy(out.CapellaForkVersion[:], c)
	copy(out.GenesisValidatorsRoot[:], r)
	if out.GenesisValidatorsRoot == ([32]byte{}) {
		return Network{}, fmt.Errorf("%w: the genesis validators root cannot be zero", ErrNetwork)
	}
	if known, ok := networks[strings.ToLower(n.Name)]; ok && known != out {
		return Network{}, fmt.Errorf("%w: %s has Capella fork version %x and genesis validators root %x", ErrNetwork, known.Name, known.CapellaForkVersion, known.GenesisValidatorsRoot)
	}
	return out, nil
}

// HasChainRoots reports whether n has the genesis validators root (and so
// the Capella fork version) that exits and BLS-to-execution changes need.
func (n Network) HasChainRoots() bool { return n.GenesisValidatorsRoot != [32]byte{} }
