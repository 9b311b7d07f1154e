package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
)

func init() {
	register(command{"existing-mnemonic", "write keystores and a deposit_data file for validators of an existing mnemonic", runExistingMnemonic})
}

func runExistingMnemonic(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "existing-mnemonic", "--mnemonic-file F --start-index N --count K --chain NAME --keystore-password-file F --out DIR [flags]",
		"Derives validators StartIndex..StartIndex+K-1 of a BIP-39 mnemonic (EIP-2333/2334) and writes, like\n"+
			"staking-deposit-cli, DIR/keystore-m_12381_3600_<i>_0_0-<unix>.json per validator and DIR/deposit_data-<unix>.json.\n"+
			"Password and mnemonic files lose one trailing newline, as validator clients read them.")
	mnemonicFile := fs.String("mnemonic-file", "", "file holding the mnemonic (required)")
	passphraseFile := fs.String("mnemonic-passphrase-file", "", "file holding the BIP-39 passphrase, if the mnemonic has one")
	start := fs.Uint64("start-index", 0, "first validator index")
	count := fs.Int("count", 0, fmt.Sprintf("number of validators, 1 to %d (required)", custody.MaxCount))
	var dep depositFlags
	dep.register(fs)
	kdfName := fs.String("kdf", "scrypt", "keystore KDF: scrypt or pbkdf2")
	passwordFile := fs.String("keystore-password-file", "", "file holding the keystore password, at least 12 characters (required)")
	out := fs.String("out", "", "output directory, created 0700 if missing (required)")
	maxMem := byteSize(custody.DefaultMaxMemory)
	fs.Var(&maxMem, "max-memory", "memory bound for key generation (scrypt needs 256MiB per worker), e.g. 4GiB")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "mnemonic-file", "count", "keystore-password-file", "out"); err != nil {
		return err
	}
	if *count < 1 || *count > custody.MaxCount {
		return usagef("--count %d: want 1 to %d", *count, custody.MaxCount)
	}
	if *start > keygen.MaxIndex {
		return usagef("--start-index %d is past the last EIP-2334 index", *start)
	}
	if err := dep.check(e); err != nil {
		return err
	}
	network, err := dep.network()
	if err != nil {
		return err
	}
	address, err := dep.withdrawal()
	if err != nil {
		return err
	}
	kdf, err := parseKDF(*kdfName)
	if err != nil {
		return err
	}

	rawPassword, err := fsutil.ReadSecretFile(*passwordFile)
	if err != nil {
		return fmt.Errorf("keystore password file: %w", err)
	}
	password := keygen.NewBytes(rawPassword)
	defer password.Destroy()
	if err := keystore.CheckPassword(string(password.UnsafeBytes())); err != nil {
		return err
	}
	rawMnemonic, err := fsutil.ReadSecretFile(*mnemonicFile)
	if err != nil {
		return fmt.Errorf("mnemonic file: %w", err)
	}
	mnemonic, err := keygen.ParseMnemonic(string(rawMnemonic))
	keygen.Wipe(rawMnemonic)
	if err != nil {
		return err
	}
	defer mnemonic.Destroy()
	var passphrase []byte
	if *passphraseFile != "" {
		if passphrase, err = fsutil.ReadSecretFile(*passphraseFile); err != nil {
			return fmt.Errorf("mnemonic passphrase file: %w", err)
		}
	}
	seed := mnemonic.Seed(string(passphrase))
	keygen.Wipe(passphrase)
	defer seed.Destroy()
	od, err := openOutDir(*out)
	if err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	written := false
	defer func() {
		if !written {
			od.discard() // a later check failed: leave no empty directory behind
		}
	}()

	limitMemory(e, int64(maxMem))
	p := newProgress(e, "validators", *count)
	built, err := custody.BuildFromMnemonic(ctx, custody.MnemonicRequest{
		Seed: seed, StartIndex: uint32(*start), Count: *count, Network: network,
		Withdrawal: custody.Withdrawal{Address: address, Compounding: dep.compounding},
		Amount:     dep.amount, KDF: kdf, Password: password, MaxMemory: int64(maxMem), Progress: p.update,
	})
	p.finish()
	if err != nil {
		return err
	}

	ts := time.Now().Unix()
	var batch fsutil.Batch
	defer batch.Rollback()
	deposits := make([]*depositdata.Deposit, len(built))
	type outKey struct {
		Index    uint32 `json:"index"`
		Pubkey   string `json:"pubkey"`
		Keystore string `json:"keystore"`
	}
	var keys []outKey
	for i, b := range built {
		raw, err := b.Keystore.Marshal()
		if err != nil {
			return err
		}
		path := filepath.Join(*out, keystore.FileName(b.Keystore.Path, ts))
		if err := batch.Write(path, raw, 0o600); err != nil {
			return fmt.Errorf("writing keystore: %w", err)
		}
		deposits[i] = b.Deposit
		keys = append(keys, outKey{b.Index, b.Keystore.Pubkey, path})
	}
	file, err := depositdata.MarshalFile(deposits)
	if err != nil {
		return err
	}
	depositPath := filepath.Join(*out, depositdata.FileName(ts))
	if err := batch.Write(depositPath, file, 0o644); err != nil {
		return fmt.Errorf("writing deposit data: %w", err)
	}
	batch.Commit()
	written = true
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"deposit_data": depositPath, "network": network.Name, "validators": keys})
	}
	for _, k := range keys {
		fmt.Fprintf(e.stdout, "%d\t0x%s\t%s\n", k.Index, k.Pubkey, k.Keystore)
	}
	fmt.Fprintf(e.stdout, "%s\n", depositPath)
	fmt.Fprintf(e.stderr, "deposit data: %s (%s, %s)\n", depositPath, plural(len(keys), "validator"), network.Name)
	return nil
}
