package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/opsfile"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/ops"
)

func init() {
	register(command{"generate-bls-to-execution-change", "sign BLS-to-execution changes offline, moving 0x00 credentials of a mnemonic's validators to an address", runBLSChange})
}

func runBLSChange(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "generate-bls-to-execution-change",
		"--mnemonic-file F --chain NAME --start-index N --validator-indices V1,... --bls-withdrawal-credentials-list 0x00..,... --withdrawal-address 0x.. --out DIR",
		"Signs, as ethstaker-deposit-cli does, the change of each validator's 0x00 (BLS) withdrawal credentials to\n"+
			"0x01 credentials of --withdrawal-address: the withdrawal key m/12381/3600/<start-index+k>/0 signs for the\n"+
			"k-th validator, and must hash to the k-th credentials. Writes DIR/bls_to_execution_change-<unix>.json\n"+
			"(ethstaker-deposit-cli's layout: the beacon API list with metadata), verified before it is written.\n"+
			"The change is final: check the address. It must carry its EIP-55 checksum, as at generation.")
	mnemonicFile := fs.String("mnemonic-file", "", "file holding the mnemonic (required)")
	passphraseFile := fs.String("mnemonic-passphrase-file", "", "file holding the BIP-39 passphrase, if the mnemonic has one")
	var cf chainFlags
	cf.register(fs)
	start := fs.Uint64("start-index", 0, "EIP-2334 index of the key of the first validator")
	indices := fs.String("validator-indices", "", "comma-separated beacon chain indices of the validators, in key order (required)")
	credsList := fs.String("bls-withdrawal-credentials-list", "", "comma-separated current 0x00 withdrawal credentials, one per validator (required)")
	address := fs.String("withdrawal-address", "", "execution address to withdraw to, EIP-55 checksummed (required)")
	allowLower := fs.Bool("allow-lowercase-address", false, "accept a withdrawal address without an EIP-55 checksum")
	out := fs.String("out", "", "output directory, created 0700 if missing (required)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "mnemonic-file", "validator-indices", "bls-withdrawal-credentials-list", "withdrawal-address", "out"); err != nil {
		return err
	}
	n, err := cf.network()
	if err != nil {
		return err
	}
	vis, err := parseIndexList("validator-indices", *indices)
	if err != nil {
		return err
	}
	creds, err := parseCredentialsList(*credsList)
	if err != nil {
		return err
	}
	if len(creds) != len(vis) {
		return usagef("--validator-indices has %d entries but --bls-withdrawal-credentials-list has %d", len(vis), len(creds))
	}
	for i, c := range creds {
		if c[0] != depositdata.BLSWithdrawalPrefix {
			return fmt.Errorf("validator %d: %w", vis[i], ops.CheckBLSCredentials(c, nil))
		}
	}
	to, err := depositdata.ParseAddress(*address, *allowLower)
	if err != nil {
		return usageError{err}
	}
	if err := checkStartIndex(*start, len(vis)); err != nil {
		return err
	}
	seed, err := readSeed(*mnemonicFile, *passphraseFile)
	if err != nil {
		return err
	}
	defer seed.Destroy()
	changes := make([]*ops.SignedBLSToExecutionChange, len(vis))
	for k, vi := range vis {
		wk, err := keygen.DeriveKey(seed, keygen.WithdrawalPath(uint32(*start)+uint32(k)))
		if err != nil {
			return err
		}
		c, err := ops.SignBLSChange(wk, vi, creds[k], to, n)
		wk.Destroy()
		if err != nil {
			return fmt.Errorf("validator %d (key %d): %w", vi, *start+uint64(k), err)
		}
		changes[k] = c
	}
	// The file as written, parsed back: every signature, the metadata, and
	// each entry's key against the credentials it replaces.
	file, err := opsfile.BLSChangeFile(changes, creds, n, false)
	if err != nil {
		return err
	}
	path, err := opsfile.WriteBLSChangeFile(*out, file, time.Now().Unix())
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"network": n.Name, "file": path, "validator_indices": vis, "to_execution_address": to.String()})
	}
	fmt.Fprintf(e.stdout, "%s: %d BLS-to-execution change(s) to %s on %s\n", path, len(vis), to, n.Name)
	return nil
}
