package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
)

// depositFlags are the flags that say what to deposit, shared by
// existing-mnemonic and generate.
type depositFlags struct {
	chain, forkVersion, address string
	allowLowercase, compounding bool
	amount                      uint64
}

func (d *depositFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.chain, "chain", "", "network: "+strings.Join(depositdata.NetworkNames(), ", ")+" (or a devnet name with --fork-version)")
	fs.StringVar(&d.forkVersion, "fork-version", "", "genesis fork version of a custom devnet, e.g. 0x10000910")
	fs.StringVar(&d.address, "withdrawal-address", "", "execution address for 0x01 (or 0x02 with --compounding) credentials; EIP-55 checksummed")
	fs.BoolVar(&d.allowLowercase, "allow-lowercase-address", false, "accept a withdrawal address without an EIP-55 checksum")
	fs.BoolVar(&d.compounding, "compounding", false, "0x02 compounding credentials (needs --withdrawal-address; amount up to 2048 ETH)")
	fs.Uint64Var(&d.amount, "amount-gwei", depositdata.MaxAmount, "deposit amount in gwei (1 ETH minimum; 32 ETH maximum, 2048 ETH with --compounding)")
}

func (d *depositFlags) network() (depositdata.Network, error) {
	switch {
	case d.forkVersion != "":
		return depositdata.CustomNetwork(d.chain, d.forkVersion)
	case d.chain != "":
		return depositdata.NetworkByName(d.chain)
	default:
		return depositdata.Network{}, usagef("--chain or --fork-version is required")
	}
}

func (d *depositFlags) withdrawal() (*depositdata.Address, error) {
	if d.address == "" {
		if d.compounding {
			return nil, usagef("--compounding needs --withdrawal-address")
		}
		return nil, nil
	}
	a, err := depositdata.ParseAddress(d.address, d.allowLowercase)
	if err != nil {
		return nil, err
	}
	return &a, nil
}

func parseKDF(s string) (keystore.KDF, error) {
	switch keystore.KDF(s) {
	case keystore.Scrypt, keystore.PBKDF2:
		return keystore.KDF(s), nil
	}
	return "", usagef("--kdf %q: want scrypt or pbkdf2", s)
}

// byteSize is a flag like 4GiB, 512MiB or a number of bytes.
type byteSize int64

func (b *byteSize) String() string { return fmt.Sprint(int64(*b)) }

func (b *byteSize) Set(s string) error {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("want a positive size such as 4GiB or 512MiB")
	}
	*b = byteSize(n * mult)
	return nil
}
