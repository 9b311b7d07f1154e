package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/web3signer"
	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

func init() {
	register(command{"decrypt", "in protected compute: open stored secrets into a Web3Signer key directory", runDecrypt})
}

func runDecrypt(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "decrypt", "(--pubkey HEX ... | --all) (--web3signer-dir DIR | --keymanager-url URL --keymanager-token-file F) [flags]",
		"The protected-compute step. Claims each key for the signer in the ledger, fetches its record, decrypts its\n"+
			"sealed secret (local identity, or --kms), checks that the key derives the record's pubkey, and hands it over:\n"+
			"  --web3signer-dir: per key a keystore, its password file and a Web3Signer key config (type file-keystore),\n"+
			"    files 0600 in a 0700 directory, and the keys' EIP-3076 slashing-protection interchange beside them.\n"+
			"    Raw-format secrets are encrypted into a new keystore here (or written as file-raw configs with --raw-configs).\n"+
			"  --keymanager-url: POST /eth/v1/keystores (keystores under a cheap KDF, since the password travels with\n"+
			"    them over TLS, and the interchange); each key's answer is reported (a duplicate is not a load).\n"+
			"Loaded keys are marked deposited (active on a signer). Retired keys are refused; deposited ones too, since\n"+
			"running a key on two signers is slashable, unless --takeover says the previous signer is stopped for good.\n"+
			"A takeover needs that signer's slashing-protection history: the one stored at unload, or --slashing-protection-file.")
	var pubkeys multiFlag
	fs.Var(&pubkeys, "pubkey", "validator pubkey to open (repeatable)")
	all := fs.Bool("all", false, "open every stored validator that is not retired")
	dir := fs.String("web3signer-dir", "", "Web3Signer key directory to write (or --keymanager-url)")
	var km keymanagerFlags
	km.register(fs)
	kmBatch := fs.Int("keymanager-batch", keymanager.ImportBatch, "keys per POST /eth/v1/keystores request (a server bounds a request's size)")
	allowNonEmpty := fs.Bool("allow-non-empty", false, "write into a directory that already has files (never replacing one)")
	rawConfigs := fs.Bool("raw-configs", false, "write raw-format keys as Web3Signer file-raw configs (weaker: no KDF protects them)")
	var of openerFlags
	of.register(fs)
	takeover := fs.Bool("takeover", false, "also load keys marked deposited (their previous signer must be stopped for good; its slashing history is required)")
	spFile := fs.String("slashing-protection-file", "", "EIP-3076 interchange of the keys' previous signer (for a takeover; merged with the history the ledger holds)")
	noHistory := fs.Bool("no-slashing-history-i-understand", false, "take over keys although no slashing-protection history of their previous signer is known")
	genesisRoot := fs.String("genesis-validators-root", "", "genesis validators root of a devnet the network table does not hold (0x and 32 bytes of hex)")
	var bf backendFlags
	bf.register(fs, false)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if (*dir == "") == (km.url == "") {
		return usagef("give --web3signer-dir or --keymanager-url (one of them)")
	}
	if *all == (len(pubkeys) > 0) {
		return usagef("give --pubkey or --all (one of them)")
	}
	if *kmBatch < 1 || *kmBatch > 10*keymanager.ImportBatch {
		return usagef("--keymanager-batch %d: want 1 to %d keys per request", *kmBatch, 10*keymanager.ImportBatch)
	}
	given, err := readInterchangeFile(*spFile)
	if err != nil {
		return err
	}
	var client *keymanager.Client
	if *dir != "" {
		if km.given() {
			return usagef("--keymanager-* flags go with --keymanager-url, not --web3signer-dir")
		}
		if err := web3signer.CheckDir(*dir, *allowNonEmpty); err != nil {
			return err // before anything is claimed or opened
		}
	} else {
		if *allowNonEmpty || *rawConfigs {
			return usagef("--allow-non-empty and --raw-configs go with --web3signer-dir")
		}
		c, tok, err := km.client(ctx) // the server answers and takes the token, before anything is claimed
		if err != nil {
			return err
		}
		defer tok.Destroy()
		defer c.Close()
		client = c
	}
	opener, err := bf.cfg.Opener(ctx, of.useKMS, of.identity)
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
	// The network's genesis validators root, from the network table,
	// before anything is claimed.
	var recs []*store.Record
	for _, pk := range pks {
		rec, _, err := lc.cust.Get(ctx, pk)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
	}
	root, err := networkRoot(recs, *genesisRoot)
	if err != nil {
		return err
	}
	// Claim the keys for this signer in the ledger before opening them: of
	// two loaders racing for a key, one wins and the other loads nothing.
	signer := km.signer()
	if *dir != "" {
		if signer, err = signerName(*dir); err != nil {
			return err
		}
	}
	loadReq := custody.LoadRequest{Signer: signer, Pubkeys: pks, Takeover: *takeover}
	if err := lc.cust.CheckInterchange(ctx, loadReq, root, given, *noHistory); err != nil {
		return err // refused before anything is claimed
	}
	claims, err := lc.cust.ClaimForSigner(ctx, loadReq)
	if err != nil {
		return err
	}
	recs = claims.Records()
	loaded := false
	defer func() {
		if !loaded {
			if err := claims.Release(context.WithoutCancel(ctx)); err != nil {
				fmt.Fprintf(e.stderr, "ethkeygen decrypt: could not release the claim: %s\n", oneLine(err.Error()))
			}
		}
	}()
	// Slashing protection travels with the keys: what the ledger holds from
	// their last signer and the file given, empty only for keys that never
	// signed; a takeover without any history is refused (custody's rule).
	interchange, err := claims.Interchange(root, given, *noHistory)
	if err != nil {
		return err
	}
	if client != nil {
		return loadKeymanager(ctx, e, lc, claims, client, signer, interchange, opener, int64(of.maxMem), *kmBatch, *asJSON, &loaded)
	}
	p := newProgress(e, "opened", len(recs))
	secrets, err := lc.cust.Opener(opener).OpenRecords(ctx, recs, int64(of.maxMem), p.update)
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
		keys[i] = web3signer.Key{Pubkey: recs[i].Pubkey, SecretKey: s.SigningKey(), Path: s.Path()}
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
	icPath := filepath.Join(*dir, interchangeName(recs))
	if _, err := os.Lstat(icPath); err == nil {
		return fmt.Errorf("%s exists: these keys were loaded into this directory before", icPath)
	}
	if err := web3signer.WriteKeyDir(*dir, keys, opts...); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(icPath, interchange, web3signer.FilePerm); err != nil {
		// The keys are in the directory: they stay claimed, and the
		// operator must import their history before starting the signer.
		loaded = true
		return fmt.Errorf("the keys are written, but not their slashing-protection interchange (%v): import their history before starting the signer", err)
	}
	loaded = true
	if *asJSON {
		pks := make([]string, len(recs))
		for i, r := range recs {
			pks[i] = r.Pubkey
		}
		return json.NewEncoder(e.stdout).Encode(map[string]any{"web3signer_dir": *dir, "pubkeys": pks, "slashing_protection": icPath})
	}
	for _, r := range recs {
		fmt.Fprintf(e.stdout, "0x%s\n", r.Pubkey)
	}
	fmt.Fprintf(e.stderr, "%d keys written to %s; import their slashing protection from %s before the signer signs\n", len(recs), *dir, icPath)
	return nil
}

// interchangeName is the file name of a load's interchange in a key
// directory: one per load (a hash of its keys), never replaced.
func interchangeName(recs []*store.Record) string {
	h := sha256.New()
	for _, r := range recs {
		h.Write([]byte(r.Pubkey))
	}
	return fmt.Sprintf("slashing-protection-%x.json", h.Sum(nil)[:8])
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
