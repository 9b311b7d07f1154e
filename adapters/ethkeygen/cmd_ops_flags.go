package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/ops"
)

// chainFlags name the network of an exit or BLS change: a known --chain,
// or a devnet with all three of its constants.
type chainFlags struct {
	chain, genesisForkVersion, capellaForkVersion, genesisValidatorsRoot string
}

func (c *chainFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.chain, "chain", "", "network: "+strings.Join(depositdata.NetworkNames(), ", ")+" (or a devnet name with the three flags below)")
	fs.StringVar(&c.genesisForkVersion, "genesis-fork-version", "", "genesis fork version of a devnet, e.g. 0x10000038")
	fs.StringVar(&c.capellaForkVersion, "capella-fork-version", "", "Capella fork version of a devnet (exits are signed under it, EIP-7044)")
	fs.StringVar(&c.genesisValidatorsRoot, "genesis-validators-root", "", "genesis validators root of a devnet (0x and 32 bytes of hex)")
}

func (c *chainFlags) network() (depositdata.Network, error) {
	custom := c.genesisForkVersion != "" || c.capellaForkVersion != "" || c.genesisValidatorsRoot != ""
	var n depositdata.Network
	var err error
	switch {
	case custom && (c.genesisForkVersion == "" || c.capellaForkVersion == "" || c.genesisValidatorsRoot == ""):
		return n, usagef("a devnet needs all of --genesis-fork-version, --capella-fork-version and --genesis-validators-root")
	case custom:
		if n, err = depositdata.CustomNetwork(c.chain, c.genesisForkVersion); err != nil {
			return n, usageError{err}
		}
		if n, err = n.WithChainRoots(c.capellaForkVersion, c.genesisValidatorsRoot); err != nil {
			return n, usageError{err}
		}
	case c.chain != "":
		if n, err = depositdata.NetworkByName(c.chain); err != nil {
			return n, usageError{err}
		}
	default:
		return n, usagef("--chain is required")
	}
	if !n.HasChainRoots() {
		return n, usageError{fmt.Errorf("%w: %s", depositdata.ErrNoChainRoots, n.Name)}
	}
	return n, nil
}

// parseIndexList, parseEpoch and parseCredentialsList are ops' parsers of
// the operator's lists and numbers, their errors usage errors naming the
// flag.
func parseIndexList(flagName, s string) ([]uint64, error) {
	v, err := ops.ParseValidatorIndices(s)
	if err != nil {
		return nil, usagef("--%s: %w", flagName, err)
	}
	return v, nil
}

func parseEpoch(s string) (uint64, error) {
	v, err := ops.ParseEpoch(s)
	if err != nil {
		return 0, usagef("--epoch: %w", err)
	}
	return v, nil
}

func parseCredentialsList(s string) ([][32]byte, error) {
	v, err := ops.ParseCredentialsList(s)
	if err != nil {
		return nil, usagef("--bls-withdrawal-credentials-list: %w", err)
	}
	return v, nil
}

// readSeed reads a mnemonic file and an optional passphrase file, as
// existing-mnemonic does, and returns the BIP-39 seed.
func readSeed(mnemonicFile, passphraseFile string) (*keygen.Bytes, error) {
	rawMnemonic, err := fsutil.ReadSecretFile(mnemonicFile)
	if err != nil {
		return nil, fmt.Errorf("mnemonic file: %w", err)
	}
	mnemonic, err := keygen.ParseMnemonic(string(rawMnemonic))
	keygen.Wipe(rawMnemonic)
	if err != nil {
		return nil, err
	}
	defer mnemonic.Destroy()
	var passphrase []byte
	if passphraseFile != "" {
		if passphrase, err = fsutil.ReadSecretFile(passphraseFile); err != nil {
			return nil, fmt.Errorf("mnemonic passphrase file: %w", err)
		}
	}
	seed := mnemonic.Seed(string(passphrase))
	keygen.Wipe(passphrase)
	return seed, nil
}

// checkStartIndex: start+count-1 must be an EIP-2334 index.
func checkStartIndex(start uint64, count int) error {
	if start > keygen.MaxIndex || start+uint64(count)-1 > keygen.MaxIndex {
		return usagef("--start-index %d with %d validators passes the last EIP-2334 index", start, count)
	}
	return nil
}
