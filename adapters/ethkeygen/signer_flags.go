package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/ethkeygen/ethkeygen/custody"
	"os"
	"strings"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/web3signer"
	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

// keymanagerFlags name a Keymanager API server (Web3Signer with
// --key-manager-api-enabled, or a validator client).
type keymanagerFlags struct {
	url, tokenFile, caFile string
}

func (k *keymanagerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.url, "keymanager-url", "", "Keymanager API of the signer (https://host:port; plain http only to a loopback address)")
	fs.StringVar(&k.tokenFile, "keymanager-token-file", "", "file holding that API's bearer token (never printed)")
	fs.StringVar(&k.caFile, "keymanager-ca-file", "", "PEM CA that must have signed the server's certificate (instead of the system roots)")
}

func (k *keymanagerFlags) given() bool { return k.url != "" || k.tokenFile != "" || k.caFile != "" }

// signer is the signer's name in the ledger.
func (k *keymanagerFlags) signer() string { return "keymanager:" + strings.TrimSuffix(k.url, "/") }

// client reads the token and makes the client; it checks the server
// answers and takes the token (GET /eth/v1/keystores) before anything is
// claimed, so a server that is down or a wrong token changes nothing.
func (k *keymanagerFlags) client(ctx context.Context) (*keymanager.Client, *keymanager.Token, error) {
	if k.url == "" || k.tokenFile == "" {
		return nil, nil, usagef("--keymanager-url and --keymanager-token-file go together")
	}
	tok, err := keymanager.ReadTokenFile(k.tokenFile)
	if err != nil {
		return nil, nil, err
	}
	var opts []keymanager.Option
	if k.caFile != "" {
		opts = append(opts, keymanager.WithCAFile(k.caFile))
	}
	c, err := keymanager.New(k.url, tok, opts...)
	if err != nil {
		tok.Destroy()
		return nil, nil, err
	}
	if _, err := c.List(ctx); err != nil {
		c.Close()
		tok.Destroy()
		return nil, nil, err
	}
	return c, tok, nil
}

// networkRoot is the genesis validators root of the records' network: the
// network table's for a known network (a --genesis-validators-root that
// differs is refused), the flag's for a devnet the table does not hold.
func networkRoot(recs []*store.Record, flagRoot string) ([32]byte, error) {
	var root [32]byte
	if len(recs) == 0 {
		return root, fmt.Errorf("no record")
	}
	name := recs[0].Network
	for _, r := range recs[1:] {
		if r.Network != name {
			return root, usagef("the keys are on %s and %s: load one network at a time", name, r.Network)
		}
	}
	var given *[32]byte
	if flagRoot != "" {
		r, err := web3signer.ParseRoot(flagRoot)
		if err != nil {
			return root, usageError{fmt.Errorf("--genesis-validators-root: %w", err)}
		}
		given = &r
	}
	n, err := depositdata.NetworkByName(name)
	switch {
	case err == nil && n.HasChainRoots():
		if given != nil && *given != n.GenesisValidatorsRoot {
			return root, usageError{fmt.Errorf("--genesis-validators-root %s: %w", web3signer.RootString(*given),
				web3signer.CheckGenesisRoot(n.GenesisValidatorsRoot, *given))}
		}
		return n.GenesisValidatorsRoot, nil
	case given != nil:
		return *given, nil
	}
	return root, usagef("network %s is not in the network table: give its --genesis-validators-root (the slashing-protection interchange names it)", name)
}

// readInterchangeFile reads an EIP-3076 file (checked by custody).
func readInterchangeFile(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("slashing-protection file: %w", err)
	}
	return b, nil
}

// openerFlags choose how a protected-compute command opens sealed secrets:
// the local identity or KMS, and the memory bound for opening keystores.
type openerFlags struct {
	identity string
	useKMS   bool
	maxMem   byteSize
}

func (o *openerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.identity, "identity-file", "", "local age identity (default: the one in --key-dir)")
	fs.BoolVar(&o.useKMS, "kms", false, "decrypt with AWS KMS (the records were sealed with --kms-key-id)")
	o.maxMem = byteSize(custody.DefaultMaxMemory)
	fs.Var(&o.maxMem, "max-memory", "memory bound for opening keystores (scrypt needs 256MiB per worker)")
}
