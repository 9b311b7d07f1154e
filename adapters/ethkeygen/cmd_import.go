package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/store"
)

func init() {
	register(command{"import", "bring validators made elsewhere (keystores or a mnemonic) under custody", runImport})
}

func runImport(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "import", "(--keystore F... --keystore-password-file F | --mnemonic-file F --start-index N --count K) --chain NAME [flags]",
		"Verifies keys made elsewhere (each keystore opens with the password to the key its pubkey claims; the mnemonic\n"+
			"derives the keys, and the --pubkey ones when given), then seals and stores each as a record of origin\n"+
			"imported, signed with the generator's key. Their deposits were made elsewhere: none is stored, none exported.\n"+
			"--status deposited records them as live on --signer already (running elsewhere): loading them anywhere\n"+
			"else is then a takeover, which needs that signer's slashing-protection history.\n"+
			"Bad input stores nothing; importing the same keys again stores nothing twice.")
	var keystores, claimed multiFlag
	fs.Var(&keystores, "keystore", "EIP-2335 keystore file to import (repeatable)")
	pwFile := fs.String("keystore-password-file", "", "file holding the keystores' password")
	mnemonicFile := fs.String("mnemonic-file", "", "file holding the mnemonic the keys were derived from")
	passphraseFile := fs.String("mnemonic-passphrase-file", "", "file holding the mnemonic's BIP-39 passphrase, if any")
	start := fs.Uint64("start-index", 0, "first EIP-2334 validator index to import from the mnemonic")
	count := fs.Int("count", 0, "number of validators to import from the mnemonic")
	fs.Var(&claimed, "pubkey", "with --mnemonic-file: the pubkey each derived key must have, in index order (repeatable)")
	chain := fs.String("chain", "", "the keys' network (a known name, or a devnet name with --fork-version)")
	forkVersion := fs.String("fork-version", "", "genesis fork version of a devnet")
	status := fs.String("status", "imported", "imported (not running anywhere), or deposited (live on --signer now)")
	signer := fs.String("signer", "", "with --status deposited: the signer the keys run on now (e.g. keymanager:https://host:port)")
	var bf backendFlags
	bf.register(fs, true)
	newKeys := fs.Bool("new-recipient", false, "seal or sign under other keys than this store was first used with (a deliberate key change)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if (len(keystores) > 0) == (*mnemonicFile != "") {
		return usagef("give --keystore or --mnemonic-file (one of them)")
	}
	if *chain == "" {
		return usagef("--chain is required")
	}
	var network depositdata.Network
	var err error
	if *forkVersion != "" {
		network, err = depositdata.CustomNetwork(*chain, *forkVersion)
	} else {
		network, err = depositdata.NetworkByName(*chain)
	}
	if err != nil {
		return usageError{err}
	}
	switch *status {
	case "imported":
		if *signer != "" {
			return usagef("--signer goes with --status deposited")
		}
	case "deposited":
		if *signer == "" {
			return usagef("--status deposited needs --signer (where the keys run now)")
		}
	default:
		return usagef("--status %q: want imported or deposited", *status)
	}
	var keys []*custody.ImportedKey
	defer func() {
		for _, k := range keys {
			k.Destroy()
		}
	}()
	if len(keystores) > 0 {
		if *pwFile == "" {
			return usagef("--keystore needs --keystore-password-file")
		}
		if *count != 0 || *start != 0 || len(claimed) > 0 || *passphraseFile != "" {
			return usagef("--count, --start-index, --pubkey and --mnemonic-passphrase-file go with --mnemonic-file")
		}
		pw, err := fsutil.ReadSecretFile(*pwFile)
		if err != nil {
			return fmt.Errorf("password file: %w", err)
		}
		defer keygen.Wipe(pw)
		for _, f := range keystores {
			b, err := readKeystoreFile(f)
			if err != nil {
				return err
			}
			k, err := custody.KeyFromKeystore(ctx, b, pw)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			keys = append(keys, k)
		}
	} else {
		if *pwFile != "" {
			return usagef("--keystore-password-file goes with --keystore")
		}
		if err := requireFlag(fs, "count"); err != nil {
			return err
		}
		if *count < 1 || *count > custody.MaxCount {
			return usagef("--count %d: want 1 to %d", *count, custody.MaxCount)
		}
		if err := checkStartIndex(*start, *count); err != nil {
			return err
		}
		var want []string
		if len(claimed) > 0 {
			want = claimed
		}
		seed, err := readSeed(*mnemonicFile, *passphraseFile)
		if err != nil {
			return err
		}
		keys, err = custody.KeysFromMnemonic(seed, uint32(*start), *count, want)
		seed.Destroy()
		if err != nil {
			return err
		}
	}
	bf.cfg.Notify = func(msg string) { fmt.Fprintln(e.stderr, msg) }
	sealer, _, err := bf.cfg.Sealers(ctx)
	if err != nil {
		return err
	}
	gsigner, err := bf.cfg.GeneratorSigner(ctx)
	if err != nil {
		return err
	}
	st, err := bf.openStore(ctx)
	if err != nil {
		return err
	}
	lc, err := openLifecycle(ctx, &bf, st)
	if err != nil {
		st.Close()
		return err
	}
	defer lc.Close()
	if *status == "deposited" {
		// Refuse before anything is stored a key the ledger already has in
		// another state (it was imported before, or is ours).
		for _, k := range keys {
			rec, ks, err := lc.cust.Get(ctx, k.Pubkey)
			if err == nil && custody.StateOf(rec, ks) != store.StatusImported && (ks == nil || ks.Signer != *signer) {
				return fmt.Errorf("0x%s is in the store already as %s", k.Pubkey, custody.StateOf(rec, ks))
			}
		}
	}
	gen, err := custody.NewGenerator(st, sealer, gsigner, custody.WithLedger(lc.ledger, *newKeys))
	if err != nil {
		return err
	}
	res, err := gen.Import(ctx, network, keys)
	if err != nil {
		return err
	}
	if *status == "deposited" {
		if err := lc.cust.RecordLive(ctx, *signer, res.Pubkeys()); err != nil {
			return fmt.Errorf("the keys are stored but not recorded as live on %s (run the same import again): %w", *signer, err)
		}
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"request_id": res.RequestID, "created": res.Created,
			"pubkeys": res.Pubkeys(), "status": *status, "signer": *signer})
	}
	for _, pk := range res.Pubkeys() {
		fmt.Fprintf(e.stdout, "0x%s\n", pk)
	}
	fmt.Fprintf(e.stderr, "%d keys imported (%d new) as %s, request id %s\n", len(keys), res.Created, *status, res.RequestID)
	return nil
}
