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
	blsWithdrawal               bool
	amount                      uint64

	fs *flag.FlagSet
}

func (d *depositFlags) register(fs *flag.FlagSet) {
	d.fs = fs
	fs.StringVar(&d.chain, "chain", "", "network: "+strings.Join(depositdata.NetworkNames(), ", ")+" (or a devnet name with --fork-version)")
	fs.StringVar(&d.forkVersion, "fork-version", "", "genesis fork version of a custom devnet, e.g. 0x10000910")
	fs.StringVar(&d.address, "withdrawal-address", "", "execution address for 0x01 (or 0x02 with --compounding) credentials; EIP-55 checksummed")
	fs.BoolVar(&d.allowLowercase, "allow-lowercase-address", false, "accept a withdrawal address without an EIP-55 checksum")
	fs.BoolVar(&d.compounding, "compounding", false, "0x02 compounding credentials (needs --withdrawal-address; amount up to 2048 ETH)")
	fs.BoolVar(&d.blsWithdrawal, "bls-withdrawal", false, "0x00 credentials from the withdrawal key: withdrawable only after a BLS-to-execution change signed from the mnemonic")
	fs.Uint64Var(&d.amount, "amount-gwei", depositdata.MaxAmount, "deposit amount in gwei: 32 ETH for 0x00/0x01; 1 to 2048 ETH with --compounding")
}

// given reports whether the operator set the flag name.
func given(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// check refuses what the deposit flags cannot mean: an explicit zero amount
// (the default is not zero), and warns on e about the zero address.
func (d *depositFlags) check(e *env) error {
	if d.fs != nil && given(d.fs, "amount-gwei") && d.amount == 0 {
		return usagef("--amount-gwei 0: a deposit of 0 gwei makes no validator (leave the flag out for 32 ETH)")
	}
	if d.blsWithdrawal && d.address != "" {
		return usagef("--bls-withdrawal and --withdrawal-address exclude each other")
	}
	if a, err := depositdata.ParseAddress(d.address, true); err == nil && a == (depositdata.Address{}) {
		fmt.Fprintln(e.stderr, "warning: the withdrawal address is the zero address 0x000...000: nobody holds its key, so withdrawn stake is lost")
	}
	return nil
}

// withdrawalChoice is the usage error when neither --withdrawal-address nor
// --bls-withdrawal was given (custody refuses such a request).
func withdrawalChoice() error {
	return usagef("--withdrawal-address 0x.. or --bls-withdrawal is required: say where the stake is withdrawn to " +
		"(0x00 BLS credentials can be withdrawn only after a BLS-to-execution change signed from the mnemonic)")
}

func (d *depositFlags) network() (depositdata.Network, error) {
	var (
		n   depositdata.Network
		err error
	)
	switch {
	case d.forkVersion != "":
		n, err = depositdata.CustomNetwork(d.chain, d.forkVersion)
	case d.chain != "":
		n, err = depositdata.NetworkByName(d.chain)
	default:
		return n, usagef("--chain or --fork-version is required")
	}
	if err != nil {
		return n, usageError{err}
	}
	return n, nil
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
		return nil, usageError{fmt.Errorf("--withdrawal-address: %w", err)}
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

// positive refuses an explicit --name 0 (or less) for a count flag whose
// default is not zero.
func positive(fs *flag.FlagSet, name string, v int) error {
	if given(fs, name) && v < 1 {
		return usagef("--%s %d: want at least 1", name, v)
	}
	return nil
}

// plural is "1 validator", "2 validators".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// byteSize is a flag like 4GiB, 512MiB, 4GB (decimal) or a number of bytes.
type byteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3},
	{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1},
}

// String shows the size in the largest binary unit that divides it.
func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.suffix)
		}
	}
	return fmt.Sprint(n)
}

func (b *byteSize) Set(s string) error {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || !(n > 0 && n*float64(mult) < 1<<62) {
		return fmt.Errorf("want a positive size such as 4GiB, 4GB or 512MiB")
	}
	*b = byteSize(n * float64(mult))
	return nil
}
