package depositdata

import (
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Network is a chain deposits are made for.
type Network struct {
	Name        string
	ForkVersion [4]byte // genesis fork version
}

// Known networks and their genesis fork versions.
var (
	Mainnet = Network{"mainnet", [4]byte{0x00, 0x00, 0x00, 0x00}}
	Sepolia = Network{"sepolia", [4]byte{0x90, 0x00, 0x00, 0x69}}
	Holesky = Network{"holesky", [4]byte{0x01, 0x01, 0x70, 0x00}}
	Hoodi   = Network{"hoodi", [4]byte{0x10, 0x00, 0x09, 0x10}}
)

var networks = map[string]Network{"mainnet": Mainnet, "sepolia": Sepolia, "holesky": Holesky, "hoodi": Hoodi}

// ErrNetwork is returned for an unknown chain or a bad fork version.
var ErrNetwork = errors.New("depositdata: unknown network")

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

// CustomNetwork is a devnet given by its genesis fork version (4 bytes of
// hex, with or without 0x). name defaults to "custom".
func CustomNetwork(name, forkVersion string) (Network, error) {
	b, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(forkVersion), "0x"))
	if err != nil || len(b) != 4 {
		return Network{}, fmt.Errorf("%w: fork version %q is not 4 bytes of hex", ErrNetwork, forkVersion)
	}
	if name == "" {
		name = "custom"
	}
	n := Network{Name: name}
	copy(n.ForkVersion[:], b)
	if known, ok := networks[strings.ToLower(name)]; ok && known.ForkVersion != n.ForkVersion {
		return Network{}, fmt.Errorf("%w: %s has fork version %x, not %x", ErrNetwork, known.Name, known.ForkVersion, n.ForkVersion)
	}
	return n, nil
}
