package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/internal/opsfile"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/ops"
)

func init() {
	register(command{"exit-transaction-mnemonic", "sign voluntary exits offline with validators of a mnemonic (ethstaker-deposit-cli drop-in)", runExitMnemonic})
	register(command{"exit-transaction-keystore", "sign a voluntary exit offline with a validator keystore (ethstaker-deposit-cli drop-in)", runExitKeystore})
}

// encryptFlag is --encrypt-password-file of the exit commands.
type encryptFlag struct{ file string }

func (f *encryptFlag) register(fs *flag.FlagSet) {
	fs.StringVar(&f.file, "encrypt-password-file", "", "encrypt each exit file for Lido's validator ejector (EIP-2335, pbkdf2) under the password in this file (at least 12 characters; one trailing newline dropped)")
}

// password is the encryption password, or nil without the flag.
func (f *encryptFlag) password() (*keygen.Bytes, error) {
	if f.file == "" {
		return nil, nil
	}
	return opsfile.ReadPassword(f.file)
}

// writeExits checks every exit's file bytes (parsed back and verified
// against the signing pubkey, encrypted with a password) and then writes
// them all or none.
func writeExits(e *env, out string, exits []opsfile.Exit, n depositdata.Network, password *keygen.Bytes, asJSON bool) error {
	files, err := opsfile.ExitFiles(exits, n, password)
	if err != nil {
		return err
	}
	return writeExitFiles(e, out, exits, files, n, password != nil, asJSON)
}

// writeExitFiles writes the checked files of exits (opsfile.ExitFiles)
// into out, all or none, and reports them.
func writeExitFiles(e *env, out string, exits []opsfile.Exit, files [][]byte, n depositdata.Network, encrypted, asJSON bool) error {
	written, err := opsfile.WriteExits(out, exits, files, time.Now().Unix(), encrypted)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"network": n.Name, "exits": written})
	}
	for _, w := range written {
		fmt.Fprintf(e.stdout, "%d\t%s\tepoch %d\t%s\n", w.ValidatorIndex, w.Pubkey, w.Epoch, w.File)
	}
	what := "signed exit(s)"
	if encrypted {
		what = "signed exit(s), encrypted for the validator ejector,"
	}
	fmt.Fprintf(e.stdout, "%d %s for %s\n", len(written), what, n.Name)
	return nil
}

func runExitMnemonic(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "exit-transaction-mnemonic", "--mnemonic-file F --chain NAME --start-index N --validator-indices V1,V2,... [--epoch E] --out DIR",
		"Signs a voluntary exit for each validator of a mnemonic, as ethstaker-deposit-cli does: the key\n"+
			"m/12381/3600/<start-index+k>/0/0 signs the exit of the k-th --validator-indices entry, under the\n"+
			"chain's Capella fork version (EIP-7044: the exit stays valid in every later fork). Writes\n"+
			"DIR/signed_exit_transaction-<validator index>-<unix>.json in the beacon API form; every file is\n"+
			"verified before any is written. With --encrypt-password-file each file (same name) is encrypted for\n"+
			"Lido's validator ejector, as its encryptor does (EIP-2335 container, pbkdf2). A signed exit cannot be\n"+
			"revoked: keep it as safe as the key.")
	mnemonicFile := fs.String("mnemonic-file", "", "file holding the mnemonic (required)")
	passphraseFile := fs.String("mnemonic-passphrase-file", "", "file holding the BIP-39 passphrase, if the mnemonic has one")
	var cf chainFlags
	cf.register(fs)
	start := fs.Uint64("start-index", 0, "EIP-2334 index of the key of the first validator")
	indices := fs.String("validator-indices", "", "comma-separated beacon chain indices of the validators, in key order (required)")
	epoch := fs.String("epoch", "0", "earliest epoch the exit can be processed (0: at once)")
	out := fs.String("out", "", "output directory, created 0700 if missing (required)")
	var ef encryptFlag
	ef.register(fs)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "mnemonic-file", "validator-indices", "out"); err != nil {
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
	ep, err := parseEpoch(*epoch)
	if err != nil {
		return err
	}
	if err := checkStartIndex(*start, len(vis)); err != nil {
		return err
	}
	password, err := ef.password()
	if err != nil {
		return err
	}
	defer password.Destroy()
	seed, err := readSeed(*mnemonicFile, *passphraseFile)
	if err != nil {
		return err
	}
	defer seed.Destroy()
	exits := make([]opsfile.Exit, len(vis))
	for k, vi := range vis {
		path := keygen.SigningPath(uint32(*start) + uint32(k))
		key, err := keygen.DeriveKey(seed, path)
		if err != nil {
			return err
		}
		x, err := ops.SignExit(key, vi, ep, n)
		pub := key.PublicKey()
		key.Destroy()
		if err != nil {
			return err
		}
		exits[k] = opsfile.Exit{Exit: x, Pubkey: pub, KeyPath: path}
	}
	return writeExits(e, *out, exits, n, password, *asJSON)
}

func runExitKeystore(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "exit-transaction-keystore", "--keystore F --keystore-password-file F --chain NAME --validator-index V [--epoch E] --out DIR",
		"Signs a voluntary exit with the validator key of an EIP-2335 keystore, as ethstaker-deposit-cli does,\n"+
			"under the chain's Capella fork version (EIP-7044). Writes DIR/signed_exit_transaction-<V>-<unix>.json,\n"+
			"verified before it is written (--encrypt-password-file: encrypted for Lido's validator ejector). The\n"+
			"password file loses one trailing newline.")
	ksFile := fs.String("keystore", "", "the validator's keystore file (required)")
	passwordFile := fs.String("keystore-password-file", "", "file holding the keystore password (required)")
	var cf chainFlags
	cf.register(fs)
	index := fs.String("validator-index", "", "beacon chain index of the validator (required)")
	epoch := fs.String("epoch", "0", "earliest epoch the exit can be processed (0: at once)")
	out := fs.String("out", "", "output directory, created 0700 if missing (required)")
	var ef encryptFlag
	ef.register(fs)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "keystore", "keystore-password-file", "validator-index", "out"); err != nil {
		return err
	}
	n, err := cf.network()
	if err != nil {
		return err
	}
	vis, err := parseIndexList("validator-index", *index)
	if err != nil {
		return err
	}
	if len(vis) != 1 {
		return usagef("--validator-index takes one index")
	}
	ep, err := parseEpoch(*epoch)
	if err != nil {
		return err
	}
	password, err := ef.password()
	if err != nil {
		return err
	}
	defer password.Destroy()
	raw, err := os.ReadFile(*ksFile)
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	ks, err := keystore.Parse(bytes.TrimSpace(raw))
	if err != nil {
		return err
	}
	pw, err := fsutil.ReadSecretFile(*passwordFile)
	if err != nil {
		return fmt.Errorf("keystore password file: %w", err)
	}
	key, err := ks.DecryptKey(pw)
	keygen.Wipe(pw)
	if err != nil {
		return err
	}
	x, err := ops.SignExit(key, vis[0], ep, n)
	pub := key.PublicKey()
	key.Destroy()
	if err != nil {
		return err
	}
	return writeExits(e, *out, []opsfile.Exit{{Exit: x, Pubkey: pub, KeyPath: ks.Path}}, n, password, *asJSON)
}
