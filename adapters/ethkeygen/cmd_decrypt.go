package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/web3signer"
)

func init() {
	register(command{"decrypt", "in protected compute: open stored secrets into a Web3Signer key directory", runDecrypt})
}

func runDecrypt(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "decrypt", "(--pubkey HEX ... | --all) --web3signer-dir DIR [flags]",
		"The protected-compute step. Fetches each record, decrypts its sealed secret (local identity, or --kms),\n"+
			"checks that the key derives the record's pubkey, and writes per key a keystore, its password file and a\n"+
			"Web3Signer key config (type file-keystore), files 0600 in a 0700 directory. Raw-format secrets are\n"+
			"encrypted into a new keystore here (or written as file-raw configs with --raw-configs).\n"+
			"Loaded keys are marked deposited (active on a signer). Retired keys are refused; deposited ones too, since\n"+
			"running a key on two signers is slashable, unless --takeover says the previous signer is stopped for good.")
	var pubkeys multiFlag
	fs.Var(&pubkeys, "pubkey", "validator pubkey to open (repeatable)")
	all := fs.Bool("all", false, "open every stored validator that is not retired")
	dir := fs.String("web3signer-dir", "", "Web3Signer key directory to write (required)")
	allowNonEmpty := fs.Bool("allow-non-empty", false, "write into a directory that already has files (never replacing one)")
	rawConfigs := fs.Bool("raw-configs", false, "write raw-format keys as Web3Signer file-raw configs (weaker: no KDF protects them)")
	identity := fs.String("identity-file", "", "local age identity (default: the one in --key-dir)")
	useKMS := fs.Bool("kms", false, "decrypt with AWS KMS (the records were sealed with --kms-key-id)")
	takeover := fs.Bool("takeover", false, "also load keys marked deposited (their previous signer must be stopped for good; import its slashing protection)")
	var bf backendFlags
	bf.register(fs, false)
	maxMem := byteSize(custody.DefaultMaxMemory)
	fs.Var(&maxMem, "max-memory", "memory bound for opening keystores (scrypt needs 256MiB per worker)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "web3signer-dir"); err != nil {
		return err
	}
	if *all == (len(pubkeys) > 0) {
		return usagef("give --pubkey or --all (one of them)")
	}
	if err := web3signer.CheckDir(*dir, *allowNonEmpty); err != nil {
		return err // before anything is claimed or opened
	}
	opener, err := bf.cfg.Opener(ctx, *useKMS, *identity)
	if err != nil {
		return err
	}
	bf.cfg.ExistingStore = true // nothing to read in a store that is not there
	lc, err := openLifecycle(ctx, &bf, nil)
	if err != nil {
		return err
	}
	defer lc.Close()
	var pks []string
	if *all {
		for en, err := range lc.cust.List(ctx, store.Filter{}) {
			if err != nil {
				return err
			}
			switch {
			case en.Err != nil:
				fmt.Fprintf(e.stderr, "ethkeygen decrypt: skipping 0x%s: %s\n", en.Record.Pubkey, oneLine(en.Err.Error()))
			case en.Status == store.StatusExported || en.Status == store.StatusImported,
				*takeover && (en.Status == store.StatusDeposited || en.Status == store.StatusExitSigned):
				pks = append(pks, en.Record.Pubkey)
			}
		}
		if len(pks) == 0 {
			return fmt.Errorf("the store holds no validator to open (only exported or imported ones are loaded; live ones need --takeover)")
		}
	} else {
		for _, p := range pubkeys {
			pk, err := web3signer.NormalizePubkey(p)
			if err != nil {
				return usageError{err}
			}
			pks = append(pks, pk)
		}
	}
	// Claim the keys for this signer in the ledger before opening them: of
	// two loaders racing for a key, one wins and the other loads nothing.
	signer, err := signerName(*dir)
	if err != nil {
		return err
	}
	claims, err := lc.cust.ClaimForSigner(ctx, custody.LoadRequest{Signer: signer, Pubkeys: pks, Takeover: *takeover})
	if err != nil {
		return err
	}
	recs := claims.Records()
	loaded := false
	defer func() {
		if !loaded {
			if err := claims.Release(context.WithoutCancel(ctx)); err != nil {
				fmt.Fprintf(e.stderr, "ethkeygen decrypt: could not release the claim: %s\n", oneLine(err.Error()))
			}
		}
	}()
	p := newProgress(e, "opened", len(recs))
	secrets, err := lc.cust.Opener(opener).OpenRecords(ctx, recs, int64(maxMem), p.update)
	p.finish()
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range secrets {
			s.Destroy()
		}
	}()
	for i, s := range secrets {
		e.log.Debug("opened", "pubkey", recs[i].Pubkey, "format", s.Format, "secret", s)
	}
	keys := make([]web3signer.Key, len(recs))
	for i, s := range secrets {
		keys[i] = web3signer.Key{Pubkey: recs[i].Pubkey, SecretKey: s.SigningKey(), Path: keygen.SigningPath(s.Index)}
		if s.Format == custody.FormatKeystore {
			keys[i].Keystore, keys[i].Password = s.Keystore, s.UnsafePassword()
		}
	}
	opts := []web3signer.Option{}
	if *allowNonEmpty {
		opts = append(opts, web3signer.AllowNonEmpty())
	}
	if *rawConfigs {
		opts = append(opts, web3signer.RawConfigs())
	}
	if err := web3signer.WriteKeyDir(*dir, keys, opts...); err != nil {
		return err
	}
	loaded = true
	if *asJSON {
		pks := make([]string, len(recs))
		for i, r := range recs {
			pks[i] = r.Pubkey
		}
		return json.NewEncoder(e.stdout).Encode(map[string]any{"web3signer_dir": *dir, "pubkeys": pks})
	}
	for _, r := range recs {
		fmt.Fprintf(e.stdout, "0x%s\n", r.Pubkey)
	}
	fmt.Fprintf(e.stderr, "%d keys written to %s\n", len(recs), *dir)
	return nil
}

// signerName names the signer a key directory feeds, for the ledger.
func signerName(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	return "web3signer-dir:" + host + ":" + abs, nil
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }
