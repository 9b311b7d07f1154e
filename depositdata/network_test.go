package depositdata_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/depositdata"
)

type sourcedValue struct {
	Value   string `json:"value"`
	Sources []struct {
		Repo, Commit, Path, Field string
	} `json:"sources"`
}

// networksFile is testdata/networks.json: each network's constants with
// the files (ethstaker-deposit-cli settings, consensus-specs and eth-clients
// configs) that state them.
type networksFile struct {
	Networks map[string]struct {
		GenesisForkVersion    sourcedValue `json:"genesis_fork_version"`
		CapellaForkVersion    sourcedValue `json:"capella_fork_version"`
		GenesisValidatorsRoot sourcedValue `json:"genesis_validators_root"`
	} `json:"networks"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return b
}

// TestNetworkTable compares every known network's genesis fork version,
// Capella fork version and genesis validators root with the sourced table,
// and checks that the table and ours name the same networks.
func TestNetworkTable(t *testing.T) {
	raw, err := os.ReadFile("testdata/networks.json")
	if err != nil {
		t.Fatal(err)
	}
	var f networksFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Networks) != len(depositdata.NetworkNames()) {
		t.Fatalf("table has %d networks, we know %v", len(f.Networks), depositdata.NetworkNames())
	}
	for name, want := range f.Networks {
		t.Run(name, func(t *testing.T) {
			for _, v := range []sourcedValue{want.GenesisForkVersion, want.CapellaForkVersion, want.GenesisValidatorsRoot} {
				if len(v.Sources) < 2 {
					t.Errorf("value %s has %d sources, want at least 2", v.Value, len(v.Sources))
				}
			}
			n, err := depositdata.NetworkByName(name)
			if err != nil {
				t.Fatal(err)
			}
			if got := n.ForkVersion[:]; hex.EncodeToString(got) != hex.EncodeToString(unhex(t, want.GenesisForkVersion.Value)) {
				t.Errorf("genesis fork version %x, want %s", got, want.GenesisForkVersion.Value)
			}
			if got := n.CapellaForkVersion[:]; hex.EncodeToString(got) != hex.EncodeToString(unhex(t, want.CapellaForkVersion.Value)) {
				t.Errorf("Capella fork version %x, want %s", got, want.CapellaForkVersion.Value)
			}
			if got := n.GenesisValidatorsRoot[:]; hex.EncodeToString(got) != hex.EncodeToString(unhex(t, want.GenesisValidatorsRoot.Value)) {
				t.Errorf("genesis validators root %x, want %s", got, want.GenesisValidatorsRoot.Value)
			}
			if !n.HasChainRoots() {
				t.Error("HasChainRoots is false")
			}
		})
	}
}

func TestCustomNetworkChainRoots(t *testing.T) {
	dev, err := depositdata.CustomNetwork("mydevnet", "0x10000038")
	if err != nil {
		t.Fatal(err)
	}
	if dev.HasChainRoots() {
		t.Fatal("a devnet from its fork version alone has chain roots")
	}
	root := "0x270d43e74ce340de4bca2b1936beca0f4f5408d9e78aec4850920baf659d5b69"
	dev, err = dev.WithChainRoots("0x40000038", root)
	if err != nil {
		t.Fatal(err)
	}
	if !dev.HasChainRoots() || hex.EncodeToString(dev.CapellaForkVersion[:]) != "40000038" || "0x"+hex.EncodeToString(dev.GenesisValidatorsRoot[:]) != root {
		t.Fatalf("got %+v", dev)
	}
	for _, bad := range [][2]string{{"0x400000", root}, {"0x40000038", "0x1234"}, {"zz000038", root}, {"0x40000038", "0x" + strings.Repeat("00", 32)}} {
		if _, err := dev.WithChainRoots(bad[0], bad[1]); !errors.Is(err, depositdata.ErrNetwork) {
			t.Errorf("WithChainRoots(%q, %q): %v", bad[0], bad[1], err)
		}
	}
	// A known network keeps its own values.
	m, err := depositdata.CustomNetwork("mainnet", "0x00000000")
	if err != nil || m != depositdata.Mainnet {
		t.Fatalf("CustomNetwork(mainnet, its fork version) = %+v, %v", m, err)
	}
	if _, err := depositdata.Mainnet.WithChainRoots("0x03000000", root); !errors.Is(err, depositdata.ErrNetwork) {
		t.Errorf("mainnet with another root: %v", err)
	}
	if _, err := depositdata.Mainnet.WithChainRoots("0x03000000", "4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"); err != nil {
		t.Errorf("mainnet with its own roots: %v", err)
	}
}
