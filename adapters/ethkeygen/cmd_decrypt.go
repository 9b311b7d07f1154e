package main

import (
	"context"
	"encoding/json"
	"fmt"
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
	st, err := bf.openExistingStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	var recs []*store.Record
	if *all {
		for rec, err := range st.Query(ctx, store.Filter{}) {
			if err != nil {
				return err
			}
			if rec.Status != store.StatusRetired && (*takeover || rec.Status != store.StatusDeposited) {
				recs = append(recs, rec)
			}
		}
		if len(recs) == 0 {
			return fmt.Errorf("the store holds no validator to open (retired and deposited ones are left out; see --takeover)")
		}
	} else {
		for _, p := range pubkeys {
			pk, err := web3signer.NormalizePubkey(p)
			if err != nil {
				return usageError{err}
			}
			rec, err := st.Get(ctx, pk)
			if err != nil {
				return fmt.Errorf("0x%s: %w", pk, err)
			}
			switch {
			case rec.Status == store.StatusRetired:
				return fmt.Errorf("0x%s is retired: refusing to load it into a signer", pk)
			case rec.Status == store.StatusDeposited && !*takeover:
				return fmt.Errorf("0x%s is marked deposited (active on a signer): refusing to load it twice; use --takeover if that signer is stopped for good", pk)
			}
			recs = append(recs, rec)
		}
	}
	// Claim the keys for this signer before opening them: of two loaders
	// racing for a key, one wins and the other loads nothing.
	release, err := custody.ClaimForSigner(ctx, st, recs)
	if err != nil {
		return err
	}
	loaded := false
	defer func() {
		if !loaded {
			if err := release(context.WithoutCancel(ctx)); err != nil {
				fmt.Fprintf(e.stderr, "ethkeygen decrypt: could not release the claim (set the status back by hand): %s\n", oneLine(err.Error()))
			}
		}
	}()
	p := newProgress(e, "opened", len(recs))
	secrets, err := custody.NewOpener(st, opener).OpenRecords(ctx, recs, int64(maxMem), p.update)
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

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }
