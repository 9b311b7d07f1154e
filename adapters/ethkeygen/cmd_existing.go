package main

import (
	"context"
	"encoding/json"
	"flag"
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

// keyFlags are the flags of the staking-deposit-cli style commands
// (existing-mnemonic, new-mnemonic): what to derive and where to write it.
type keyFlags struct {
	passphraseFile, kdfName, passwordFile, out *string
	start                                      *uint64
	count                                      *int
	dep                                        depositFlags
	maxMem                                     byteSize
	asJSON                                     *bool

	// set by check
	network depositdata.Network
	address *depositdata.Address
	kdf     keystore.KDF
}

func (k *keyFlags) register(fs *flag.FlagSet) {
	k.passphraseFile = fs.String("mnemonic-passphrase-file", "", "file holding the BIP-39 passphrase, if the mnemonic has one")
	k.start = fs.Uint64("start-index", 0, "first validator index")
	k.count = fs.Int("count", 0, fmt.Sprintf("number of validators, 1 to %d (required)", custody.MaxCount))
	k.dep.register(fs)
	k.kdfName = fs.String("kdf", "scrypt", "keystore KDF: scrypt or pbkdf2")
	k.passwordFile = fs.String("keystore-password-file", "", "file holding the keystore password, at least 12 characters (required)")
	k.out = fs.String("out", "", "output directory, created 0700 if missing (required)")
	k.maxMem = byteSize(custody.DefaultMaxMemory)
	fs.Var(&k.maxMem, "max-memory", "memory bound for key generation (scrypt needs 256MiB per worker), e.g. 4GiB")
	k.asJSON = fs.Bool("json", false, "print the result as JSON")
}

// check validates the flags, before any secret is read or made.
func (k *keyFlags) check(e *env, fs *flag.FlagSet) error {
	if err := requireFlag(fs, "count", "keystore-password-file", "out"); err != nil {
		return err
	}
	if *k.count < 1 || *k.count > custody.MaxCount {
		return usagef("--count %d: want 1 to %d", *k.count, custody.MaxCount)
	}
	if *k.start > keygen.MaxIndex {
		return usagef("--start-index %d is past the last EIP-2334 index", *k.start)
	}
	if err := k.dep.check(e); err != nil {
		return err
	}
	var err error
	if k.network, err = k.dep.network(); err != nil {
		return err
	}
	if k.address, err = k.dep.withdrawal(); err != nil {
		return err
	}
	k.kdf, err = parseKDF(*k.kdfName)
	return err
}

// password reads and checks the keystore password file.
func (k *keyFlags) password() (*keygen.Bytes, error) {
	raw, err := fsutil.ReadSecretFile(*k.passwordFile)
	if err != nil {
		return nil, fmt.Errorf("keystore password file: %w", err)
	}
	password := keygen.NewBytes(raw)
	if err := keystore.CheckPassword(string(password.UnsafeBytes())); err != nil {
		password.Destroy()
		return nil, err
	}
	return password, nil
}

// seed reads the passphrase file, if any, and makes the mnemonic's seed.
func (k *keyFlags) seed(mnemonic *keygen.Mnemonic) (*keygen.Bytes, error) {
	var passphrase []byte
	if *k.passphraseFile != "" {
		var err error
		if passphrase, err = fsutil.ReadSecretFile(*k.passphraseFile); err != nil {
			return nil, fmt.Errorf("mnemonic passphrase file: %w", err)
		}
	}
	seed := mnemonic.Seed(string(passphrase))
	keygen.Wipe(passphrase)
	return seed, nil
}

// write derives the validators of seed and writes their keystores and the
// deposit file into --out, all or nothing; stdout gets one row per
// validator and the deposit file's path, stderr the summary.
func (k *keyFlags) write(ctx context.Context, e *env, seed *keygen.Bytes, password *keygen.Bytes) error {
	od, err := openOutDir(*k.out)
	if err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	written := false
	defer func() {
		if !written {
			od.discard() // a later check failed: leave no empty directory behind
		}
	}()

	limitMemory(e, int64(k.maxMem))
	p := newProgress(e, "validators", *k.count)
	built, err := custody.BuildFromMnemonic(ctx, custody.MnemonicRequest{
		Seed: seed, StartIndex: uint32(*k.start), Count: *k.count, Network: k.network,
		Withdrawal: custody.Withdrawal{Address: k.address, Compounding: k.dep.compounding},
		Amount:     k.dep.amount, KDF: k.kdf, Password: password, MaxMemory: int64(k.maxMem), Progress: p.update,
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
		path := filepath.Join(*k.out, keystore.FileName(b.Keystore.Path, ts))
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
	depositPath := filepath.Join(*k.out, depositdata.FileName(ts))
	if err := batch.Write(depositPath, file, 0o644); err != nil {
		return fmt.Errorf("writing deposit data: %w", err)
	}
	batch.Commit()
	written = true
	if *k.asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"deposit_data": depositPath, "network": k.network.Name, "validators": keys})
	}
	for _, k := range keys {
		fmt.Fprintf(e.stdout, "%d\t0x%s\t%s\n", k.Index, k.Pubkey, k.Keystore)
	}
	fmt.Fprintf(e.stdout, "%s\n", depositPath)
	fmt.Fprintf(e.stderr, "deposit data: %s (%s, %s)\n", depositPath, plural(len(keys), "validator"), k.network.Name)
	return nil
}

func runExistingMnemonic(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "existing-mnemonic", "--mnemonic-file F --start-index N --count K --chain NAME --keystore-password-file F --out DIR [flags]",
		"Derives validators StartIndex..StartIndex+K-1 of a BIP-39 mnemonic (EIP-2333/2334) and writes, like\n"+
			"staking-deposit-cli, DIR/keystore-m_12381_3600_<i>_0_0-<unix>.json per validator and DIR/deposit_data-<unix>.json.\n"+
			"Password and mnemonic files lose one trailing newline, as validator clients read them. Words may be\n"+
			"abbreviated to their first four letters; the ten BIP-39 languages, Portuguese included, are detected.\n"+
			"stdout: one row per validator (index, pubkey, keystore file), then the deposit file; stderr: the summary.")
	mnemonicFile := fs.String("mnemonic-file", "", "file holding the mnemonic (required)")
	var k keyFlags
	k.register(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "mnemonic-file"); err != nil {
		return err
	}
	if err := k.check(e, fs); err != nil {
		return err
	}
	password, err := k.password()
	if err != nil {
		return err
	}
	defer password.Destroy()
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
	seed, err := k.seed(mnemonic)
	if err != nil {
		return err
	}
	defer seed.Destroy()
	return k.write(ctx, e, seed, password)
}
