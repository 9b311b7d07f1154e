package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ethkeygen/ethkeygen/beacon"
	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/internal/opsfile"
	"github.com/ethkeygen/ethkeygen/ops"
	"github.com/ethkeygen/ethkeygen/store"
)

// The operations after the deposit on sealed records (the protected-compute
// side, like decrypt): exit, bls-change and top-up. Which keys may be
// signed for, and the exit-signed state, are custody's; these commands
// parse flags, open, sign with package ops, verify and write.

func init() {
	register(command{"exit", "in protected compute: sign voluntary exits with sealed validator keys (marks them exit-signed)", runSealedExit})
	register(command{"bls-change", "in protected compute: sign BLS-to-execution changes with the sealed mnemonics' withdrawal keys", runSealedBLSChange})
	register(command{"top-up", "in protected compute: a deposit file topping up existing validators of the store", runSealedTopUp})
}

// selectionFlags name the keys of an operation.
type selectionFlags struct {
	pubkeys   multiFlag
	requestID string
	all       bool
	allowAll  bool
}

func (s *selectionFlags) register(fs *flag.FlagSet, allowAll bool) {
	fs.Var(&s.pubkeys, "pubkey", "this validator (repeatable; keys in the order given)")
	fs.StringVar(&s.requestID, "request-id", "", "the validators of this request, in slot order")
	if allowAll {
		fs.BoolVar(&s.all, "all", false, "every validator that can be signed for (not retired, not forged, exported), in pubkey order")
	}
	s.allowAll = allowAll
}

func (s *selectionFlags) selection() (custody.OpsSelection, error) {
	n := 0
	for _, b := range []bool{len(s.pubkeys) > 0, s.requestID != "", s.all} {
		if b {
			n++
		}
	}
	if n != 1 {
		if s.allowAll {
			return custody.OpsSelection{}, usagef("select the validators with one of --pubkey, --request-id or --all")
		}
		return custody.OpsSelection{}, usagef("select the validators with --pubkey or --request-id (one of them)")
	}
	sel := custody.OpsSelection{RequestID: s.requestID, All: s.all}
	for _, p := range s.pubkeys {
		pk, err := normalizePubkey(p)
		if err != nil {
			return sel, usageError{err}
		}
		sel.Pubkeys = append(sel.Pubkeys, pk)
	}
	return sel, nil
}

// indexFlags are the validators' beacon chain indices, in key order.
type indexFlags struct {
	indices multiFlag
	file    string
}

func (x *indexFlags) register(fs *flag.FlagSet, withFile bool) {
	fs.Var(&x.indices, "validator-index", "beacon chain index of the validators, in key order (repeatable, or a comma-separated list)")
	if withFile {
		fs.StringVar(&x.file, "indices-file", "", "file of the validators' beacon chain indices, in key order (commas or white space between them)")
	}
}

// parse is the indices given, or nil when none was.
func (x *indexFlags) parse() ([]uint64, error) {
	switch {
	case len(x.indices) > 0 && x.file != "":
		return nil, usagef("give --validator-index or --indices-file, not both")
	case x.file != "":
		b, err := os.ReadFile(x.file)
		if err != nil {
			return nil, usagef("--indices-file: %v", err)
		}
		return parseIndexList("indices-file", string(b))
	case len(x.indices) > 0:
		return parseIndexList("validator-index", strings.Join(x.indices, ","))
	}
	return nil, nil
}

// devnetFlags give the chain constants of a devnet record's network (the
// known networks have theirs).
type devnetFlags struct{ genesisForkVersion, capellaForkVersion, genesisValidatorsRoot string }

func (d *devnetFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.genesisForkVersion, "genesis-fork-version", "", "genesis fork version of the records' devnet, for imported keys (a generated record's deposit holds it)")
	fs.StringVar(&d.capellaForkVersion, "capella-fork-version", "", "Capella fork version of the records' devnet (known networks need none)")
	fs.StringVar(&d.genesisValidatorsRoot, "genesis-validators-root", "", "genesis validators root of the records' devnet (0x and 32 bytes of hex)")
}

// network is the one network of recs, with the constants exits and BLS
// changes are signed under.
func (d *devnetFlags) network(recs []*store.Record) (depositdata.Network, error) {
	name := recs[0].Network
	for _, r := range recs[1:] {
		if r.Network != name {
			return depositdata.Network{}, usagef("the selection holds %s and %s validators: choose one network", name, r.Network)
		}
	}
	n, err := depositdata.NetworkByName(name)
	if err != nil {
		// A devnet: its genesis fork version is in a generated record's
		// deposit; an imported key has no deposit, so the operator names it.
		fork := d.genesisForkVersion
		for _, r := range recs {
			if len(r.DepositData) == 0 {
				continue
			}
			v, verr := custody.ValidatorOf(r)
			if verr != nil {
				return n, verr
			}
			if fork != "" && !strings.EqualFold(strings.TrimPrefix(fork, "0x"), strings.TrimPrefix(v.Deposit.ForkVersion, "0x")) {
				return n, usagef("--genesis-fork-version %s: the deposit of 0x%s is for fork version %s", fork, r.Pubkey, v.Deposit.ForkVersion)
			}
			fork = v.Deposit.ForkVersion
		}
		if fork == "" {
			return n, usagef("%s is a devnet and the keys were imported (no deposit holds its fork version): give --genesis-fork-version", name)
		}
		if n, err = depositdata.CustomNetwork(name, fork); err != nil {
			return n, usageError{err}
		}
		if d.capellaForkVersion == "" || d.genesisValidatorsRoot == "" {
			return n, usageError{fmt.Errorf("%w: %s is a devnet: give --capella-fork-version and --genesis-validators-root", depositdata.ErrNoChainRoots, name)}
		}
		if n, err = n.WithChainRoots(d.capellaForkVersion, d.genesisValidatorsRoot); err != nil {
			return n, usageError{err}
		}
	} else if d.genesisForkVersion != "" || d.capellaForkVersion != "" || d.genesisValidatorsRoot != "" {
		return n, usagef("%s is a known network: --genesis-fork-version, --capella-fork-version and --genesis-validators-root are for devnets", name)
	}
	if !n.HasChainRoots() {
		return n, usageError{fmt.Errorf("%w: %s", depositdata.ErrNoChainRoots, n.Name)}
	}
	return n, nil
}

// beaconFlags are the optional beacon node of exit and bls-change.
type beaconFlags struct {
	url    string
	submit bool
}

func (b *beaconFlags) register(fs *flag.FlagSet, pool string) {
	fs.StringVar(&b.url, "beacon-node", "", "beacon node REST API (http(s)://host:port): look the validators' indices (and credentials) up by pubkey")
	fs.BoolVar(&b.submit, "submit", false, "also post the signed messages to the node's "+pool+" pool (needs --beacon-node)")
}

func (b *beaconFlags) check() error {
	if b.submit && b.url == "" {
		return usagef("--submit needs --beacon-node")
	}
	return nil
}

func (b *beaconFlags) client() (*beacon.Client, error) {
	if b.url == "" {
		return nil, nil
	}
	c, err := beacon.New(b.url)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// lookup resolves the validators of recs on the node; given indices (if
// any) must be the node's.
func lookup(ctx context.Context, bc *beacon.Client, recs []*store.Record, given []uint64) ([]beacon.Validator, error) {
	pks := make([][48]byte, len(recs))
	for i, r := range recs {
		b, err := hex.DecodeString(r.Pubkey)
		if err != nil || len(b) != 48 {
			return nil, fmt.Errorf("record 0x%s: malformed pubkey", r.Pubkey)
		}
		pks[i] = [48]byte(b)
	}
	vs, err := bc.ValidatorsByPubkey(ctx, pks)
	if err != nil {
		return nil, err
	}
	for i, v := range vs {
		if given != nil && given[i] != v.Index {
			return nil, fmt.Errorf("validator 0x%s: the beacon node says index %d, not %d as given", recs[i].Pubkey, v.Index, given[i])
		}
	}
	return vs, nil
}

// indicesFor checks that there is one index per key.
func indicesFor(recs []*store.Record, vis []uint64) error {
	if vis == nil {
		return usagef("give the validators' indices (--validator-index, or --indices-file), or --beacon-node to look them up")
	}
	if len(vis) != len(recs) {
		return usagef("%d validator index(es) for %d key(s): give one index per key, in key order", len(vis), len(recs))
	}
	return nil
}

// openSignable opens the decrypting side and the lifecycle and selects the
// keys an operation may sign for (custody's rule), naming those it leaves
// out. The caller closes the lifecycle.
func openSignable(ctx context.Context, e *env, bf *backendFlags, useKMS bool, identity, cmd string, sel custody.OpsSelection) (envelope.Opener, *lifecycle, []*store.Record, error) {
	opener, err := bf.cfg.Opener(ctx, useKMS, identity)
	if err != nil {
		return nil, nil, nil, err
	}
	lc, err := openLifecycle(ctx, bf, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	recs, skipped, err := lc.cust.SelectSignable(ctx, sel)
	reportSkipped(e, cmd, skipped)
	if err != nil {
		lc.Close()
		return nil, nil, nil, err
	}
	return opener, lc, recs, nil
}

func reportSkipped(e *env, cmd string, skipped []custody.Skipped) {
	for _, s := range skipped {
		fmt.Fprintf(e.stderr, "ethkeygen %s: leaving out 0x%s: %s\n", cmd, s.Pubkey, oneLine(s.Err.Error()))
	}
}

func pubkeyBytes(rec *store.Record) []byte {
	b, _ := hex.DecodeString(rec.Pubkey)
	return b
}

func runSealedExit(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "exit", "(--pubkey HEX... | --request-id ID | --all) (--validator-index N... | --indices-file F | --beacon-node URL) [--epoch E] --out DIR",
		"The protected-compute step for leaving. For each selected validator: custody checks that it may be signed\n"+
			"for (not retired, not forged, its deposit handed out), its sealed key is opened (local identity, or --kms),\n"+
			"the voluntary exit is signed under the network's Capella fork version (EIP-7044: valid in every later fork)\n"+
			"and verified, the key is marked exit-signed in the ledger, and only then are the files written, all or\n"+
			"none: DIR/signed_exit_transaction-<index>-<unix>.json in the beacon API form (--encrypt-password-file:\n"+
			"encrypted for Lido's validator ejector, as its encryptor does). Indices go in key order\n"+
			"(--pubkey order, a request's slots, --all by pubkey); --beacon-node looks them up and refuses a mismatch.\n"+
			"A signed exit cannot be revoked: keep the files as safe as the keys.")
	var sf selectionFlags
	sf.register(fs, true)
	var xf indexFlags
	xf.register(fs, true)
	var df devnetFlags
	df.register(fs)
	var bn beaconFlags
	bn.register(fs, "voluntary exit")
	epoch := fs.String("epoch", "0", "earliest epoch the exit can be processed (0: at once)")
	out := fs.String("out", "", "output directory, created 0700 if missing (required)")
	var ef encryptFlag
	ef.register(fs)
	var of openerFlags
	of.register(fs)
	var bf backendFlags
	bf.register(fs, false)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "out"); err != nil {
		return err
	}
	sel, err := sf.selection()
	if err != nil {
		return err
	}
	vis, err := xf.parse()
	if err != nil {
		return err
	}
	ep, err := parseEpoch(*epoch)
	if err != nil {
		return err
	}
	if err := bn.check(); err != nil {
		return err
	}
	bc, err := bn.client()
	if err != nil {
		return err
	}
	if err := checkOutDir(*out); err != nil {
		return err
	}
	password, err := ef.password()
	if err != nil {
		return err
	}
	defer password.Destroy()
	opener, lc, recs, err := openSignable(ctx, e, &bf, of.useKMS, of.identity, "exit", sel)
	if err != nil {
		return err
	}
	defer lc.Close()
	if bc != nil {
		if vis != nil && len(vis) != len(recs) {
			return indicesFor(recs, vis)
		}
		vs, err := lookup(ctx, bc, recs, vis)
		if err != nil {
			return err
		}
		vis = make([]uint64, len(vs))
		for i, v := range vs {
			vis[i] = v.Index
		}
	}
	if err := indicesFor(recs, vis); err != nil {
		return err
	}
	n, err := df.network(recs)
	if err != nil {
		return err
	}
	p := newProgress(e, "opened", len(recs))
	secrets, err := lc.cust.Opener(opener).OpenRecords(ctx, recs, int64(of.maxMem), p.update)
	p.finish()
	if err != nil {
		return err
	}
	exits := make([]opsfile.Exit, len(recs))
	for i, s := range secrets {
		x, err := ops.SignExit(s.SigningKey(), vis[i], ep, n)
		if err != nil {
			for _, s := range secrets {
				s.Destroy()
			}
			return fmt.Errorf("0x%s: %w", recs[i].Pubkey, err)
		}
		exits[i] = opsfile.Exit{Exit: x, Pubkey: pubkeyBytes(recs[i])}
	}
	for _, s := range secrets {
		s.Destroy()
	}
	files, err := opsfile.ExitFiles(exits, n, password)
	if err != nil {
		return err
	}
	// The ledger first: the exit-signed state licenses the files. A run
	// that stops between the two signs the same exits again when re-run.
	for _, r := range recs {
		if _, err := lc.cust.MarkExitSigned(ctx, r.Pubkey); err != nil {
			return err
		}
	}
	if err := writeExitFiles(e, *out, exits, files, n, password != nil, *asJSON); err != nil {
		return err
	}
	if bc != nil && bn.submit {
		for _, x := range exits {
			if err := bc.SubmitExit(ctx, x.Exit); err != nil {
				return fmt.Errorf("submitting the exit of validator %d (its file is written): %w", x.Exit.Message.ValidatorIndex, err)
			}
		}
		fmt.Fprintf(e.stderr, "%d exit(s) submitted to %s\n", len(exits), bn.url)
	}
	return nil
}

// mnemonicOpenerFlags open separately sealed mnemonics.
type mnemonicOpenerFlags struct {
	identity string
	kms      bool
}

func (m *mnemonicOpenerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.identity, "mnemonic-identity-file", "", "age identity of the mnemonic key (records generated with --mnemonic-recipient)")
	fs.BoolVar(&m.kms, "mnemonic-kms", false, "open separately sealed mnemonics with AWS KMS (records generated with --mnemonic-kms-key-id)")
}

func (m *mnemonicOpenerFlags) opener(ctx context.Context, bf *backendFlags) (envelope.Opener, error) {
	switch {
	case m.identity != "" && m.kms:
		return nil, usagef("give --mnemonic-identity-file or --mnemonic-kms, not both")
	case m.kms:
		return bf.cfg.Opener(ctx, true, "")
	case m.identity != "":
		return bf.cfg.Opener(ctx, false, m.identity)
	}
	return nil, nil
}

func runSealedBLSChange(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bls-change", "(--pubkey HEX... | --request-id ID) (--validator-index N... | --beacon-node URL) --withdrawal-address 0x.. --out DIR",
		"The protected-compute step that moves 0x00 (BLS) withdrawal credentials to 0x01 credentials of\n"+
			"--withdrawal-address. For each selected validator: custody checks that it may be signed for, its sealed\n"+
			"mnemonic is opened (sealed with the key, or separately: --mnemonic-identity-file / --mnemonic-kms), the\n"+
			"withdrawal key m/12381/3600/<index>/0 is derived and must hash to the validator's 0x00 credentials (the\n"+
			"record's, or the node's with --beacon-node), and the change is signed and verified. Writes\n"+
			"DIR/bls_to_execution_change-<unix>.json in ethstaker-deposit-cli's layout (--beacon-api: the pool\n"+
			"endpoint's form). The change is final: check the address. It must carry its EIP-55 checksum.")
	var sf selectionFlags
	sf.register(fs, false)
	var xf indexFlags
	xf.register(fs, false)
	var df devnetFlags
	df.register(fs)
	var bn beaconFlags
	bn.register(fs, "BLS-to-execution change")
	address := fs.String("withdrawal-address", "", "execution address to withdraw to, EIP-55 checksummed (required)")
	allowLower := fs.Bool("allow-lowercase-address", false, "accept a withdrawal address without an EIP-55 checksum")
	beaconAPI := fs.Bool("beacon-api", false, "write the beacon API form (the body of POST /eth/v1/beacon/pool/bls_to_execution_changes) instead")
	out := fs.String("out", "", "output directory, created 0700 if missing (required)")
	identity := fs.String("identity-file", "", "local age identity of the sealed secrets (default: the one in --key-dir)")
	useKMS := fs.Bool("kms", false, "decrypt the sealed secrets with AWS KMS")
	var mf mnemonicOpenerFlags
	mf.register(fs)
	var bf backendFlags
	bf.register(fs, false)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "withdrawal-address", "out"); err != nil {
		return err
	}
	sel, err := sf.selection()
	if err != nil {
		return err
	}
	vis, err := xf.parse()
	if err != nil {
		return err
	}
	to, err := depositdata.ParseAddress(*address, *allowLower)
	if err != nil {
		return usageError{fmt.Errorf("--withdrawal-address: %w", err)}
	}
	if to == (depositdata.Address{}) {
		fmt.Fprintln(e.stderr, "warning: the withdrawal address is the zero address 0x000...000: nobody holds its key, so withdrawn stake is lost")
	}
	if err := bn.check(); err != nil {
		return err
	}
	bc, err := bn.client()
	if err != nil {
		return err
	}
	if err := checkOutDir(*out); err != nil {
		return err
	}
	mnemonicOpener, err := mf.opener(ctx, &bf)
	if err != nil {
		return err
	}
	lc, err := openLifecycle(ctx, &bf, nil)
	if err != nil {
		return err
	}
	defer lc.Close()
	recs, _, err := lc.cust.SelectSignable(ctx, sel)
	if err != nil {
		return err
	}
	if vis != nil && len(vis) != len(recs) {
		return indicesFor(recs, vis)
	}
	// The credentials to replace: the node's when it is asked (what the
	// chain will check), else the record's.
	creds := make([][32]byte, len(recs))
	for i, r := range recs {
		b, err := hex.DecodeString(r.WithdrawalCredentials)
		if err != nil || len(b) != 32 {
			return fmt.Errorf("record 0x%s: malformed withdrawal credentials", r.Pubkey)
		}
		creds[i] = [32]byte(b)
	}
	if bc != nil {
		vs, err := lookup(ctx, bc, recs, vis)
		if err != nil {
			return err
		}
		vis = make([]uint64, len(vs))
		for i, v := range vs {
			vis[i], creds[i] = v.Index, v.WithdrawalCredentials
		}
	}
	if err := indicesFor(recs, vis); err != nil {
		return err
	}
	// 0x01/0x02 credentials point at an address already: refused before
	// any secret is opened.
	for i, c := range creds {
		if c[0] != depositdata.BLSWithdrawalPrefix {
			return fmt.Errorf("validator %d (0x%s): %w", vis[i], recs[i].Pubkey, ops.CheckBLSCredentials(c, nil))
		}
	}
	n, err := df.network(recs)
	if err != nil {
		return err
	}
	var secretOpener envelope.Opener
	for _, r := range recs {
		if r.SealedMnemonic != nil && mnemonicOpener == nil {
			return usagef("the mnemonic of 0x%s is sealed under a separate key: give --mnemonic-identity-file F or --mnemonic-kms", r.Pubkey)
		}
	}
	for _, r := range recs {
		if r.SealedMnemonic == nil {
			if secretOpener, err = bf.cfg.Opener(ctx, *useKMS, *identity); err != nil {
				return err
			}
			break
		}
	}
	changes := make([]*ops.SignedBLSToExecutionChange, len(recs))
	for i, r := range recs {
		wk, err := lc.cust.OpenWithdrawalKey(ctx, secretOpener, mnemonicOpener, r)
		if err != nil {
			return err
		}
		c, err := ops.SignBLSChange(wk, vis[i], creds[i], to, n)
		wk.Destroy()
		if err != nil {
			return fmt.Errorf("validator %d (0x%s): %w", vis[i], r.Pubkey, err)
		}
		changes[i] = c
	}
	file, err := opsfile.BLSChangeFile(changes, creds, n, *beaconAPI)
	if err != nil {
		return err
	}
	path, err := opsfile.WriteBLSChangeFile(*out, file, time.Now().Unix())
	if err != nil {
		return err
	}
	if *asJSON {
		if err := json.NewEncoder(e.stdout).Encode(map[string]any{"network": n.Name, "file": path, "validator_indices": vis, "to_execution_address": to.String()}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "%s: %d BLS-to-execution change(s) to %s on %s\n", path, len(changes), to, n.Name)
	}
	if bc != nil && bn.submit {
		if err := bc.SubmitBLSChanges(ctx, changes); err != nil {
			return fmt.Errorf("submitting the BLS changes (the file is written): %w", err)
		}
		fmt.Fprintf(e.stderr, "%d BLS change(s) submitted to %s\n", len(changes), bn.url)
	}
	return nil
}

func runSealedTopUp(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "top-up", "(--pubkey HEX... --amount-gwei G [--request-id ID] | --request-id ID) --out FILE",
		"The protected-compute step for adding stake to existing validators of the store. For each --pubkey custody\n"+
			"checks that it may be signed for (not retired, not forged, its deposit handed out) and is not exit-signed;\n"+
			"its sealed key is opened and signs a deposit of --amount-gwei with the record's withdrawal credentials, and\n"+
			"every deposit is verified. A top-up is handed out through an export, like a validator's own deposit, so\n"+
			"that it is never handed out twice: custody records it in the ledger (export topup-<ID> with --request-id,\n"+
			"else an id derived from the network, the keys in order and the amount) before FILE is written in the\n"+
			"Launchpad deposit_data form. Amounts: at least 1 ETH; at most 32 ETH for 0x00/0x01 credentials, 2048 ETH\n"+
			"for 0x02. The same command run again is the same top-up: it writes the same bytes (a FILE holding them\n"+
			"already is left as it is), never a second deposit. A second top-up of the same keys and amount needs a\n"+
			"new --request-id; --request-id ID alone writes top-up ID again (list --exports shows the top-ups).")
	var pubkeys multiFlag
	fs.Var(&pubkeys, "pubkey", "validator to top up (repeatable; the file's order)")
	amount := fs.Uint64("amount-gwei", 0, "amount of each deposit in gwei (required with --pubkey)")
	requestID := fs.String("request-id", "", "name of this top-up (export topup-<ID>); alone: write that top-up again")
	out := fs.String("out", "", "deposit file to write (required); an existing FILE must hold this top-up's bytes")
	var of openerFlags
	of.register(fs)
	var bf backendFlags
	bf.register(fs, false)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "out"); err != nil {
		return err
	}
	if len(pubkeys) == 0 && *requestID == "" {
		return usagef("--pubkey is required (or --request-id of an earlier top-up)")
	}
	if len(pubkeys) > 0 && *amount == 0 {
		return usagef("--amount-gwei is required with --pubkey")
	}
	req := custody.TopUpRequest{RequestID: *requestID, AmountGwei: *amount, MaxMemory: int64(of.maxMem)}
	for _, p := range pubkeys {
		pk, err := normalizePubkey(p)
		if err != nil {
			return usageError{err}
		}
		req.Pubkeys = append(req.Pubkeys, pk)
	}
	if st, err := os.Stat(*out); err == nil && st.IsDir() {
		return usagef("--out %s is a directory: give the deposit file's path", *out)
	}
	// An existing FILE that cannot be this top-up written before is refused
	// before anything is opened or recorded (its bytes are compared after).
	if have, err := os.ReadFile(*out); err == nil && !mayBeTopUp(have, req) {
		return fmt.Errorf("%s exists with other content: it is not this top-up (a file is never replaced: move it away, or give another --out)", *out)
	}
	if err := checkOutDir(filepath.Dir(*out)); err != nil {
		return err
	}
	opener, err := bf.cfg.Opener(ctx, of.useKMS, of.identity)
	if err != nil {
		return err
	}
	lc, err := openLifecycle(ctx, &bf, nil)
	if err != nil {
		return err
	}
	defer lc.Close()
	var p *progress
	if len(req.Pubkeys) > 0 {
		p = newProgress(e, "opened", len(req.Pubkeys))
		req.Progress = p.update
	}
	res, err := lc.cust.TopUp(ctx, opener, req)
	if p != nil {
		p.finish()
	}
	if err != nil {
		return err
	}
	written, err := writeTopUp(*out, res)
	if err != nil {
		return err
	}
	x := res.Export
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"network": x.Network, "deposit_data": *out, "count": len(res.Deposits),
			"amount_gwei": x.TopUpGwei, "export_id": x.ID, "resumed": res.Resumed, "written": written})
	}
	fmt.Fprintf(e.stdout, "%s: %d top-up deposit(s) of %d gwei on %s (top-up %s)\n", *out, len(res.Deposits), x.TopUpGwei, x.Network, x.ID)
	switch {
	case !written:
		fmt.Fprintf(e.stderr, "top-up %s was written before (%s holds its bytes): not written again, not a second top-up; a second top-up of these keys needs a new --request-id\n", x.ID, *out)
	case res.Resumed:
		fmt.Fprintf(e.stderr, "top-up %s was made before (%s): the same deposits again, not a second top-up; a second top-up of these keys needs a new --request-id\n", x.ID, x.CreatedAt.Format(time.RFC3339))
	}
	printSummary(e, res)
	return nil
}

// mayBeTopUp reports whether b could be the file of the top-up req asks
// for: a deposit file with req's keys, in order, and amount (when given).
func mayBeTopUp(b []byte, req custody.TopUpRequest) bool {
	deps, err := depositdata.ParseFile(b)
	if err != nil || len(deps) == 0 {
		return false
	}
	if len(req.Pubkeys) == 0 {
		return true
	}
	if len(deps) != len(req.Pubkeys) {
		return false
	}
	for i, d := range deps {
		if d.Pubkey != req.Pubkeys[i] || d.Amount != req.AmountGwei {
			return false
		}
	}
	return true
}

// writeTopUp writes a top-up's file to path. Its bytes are a pure function
// of the top-up, so a file there with the same bytes is this top-up written
// before (left as it is: false); one with other bytes is refused.
func writeTopUp(path string, res *custody.ExportResult) (bool, error) {
	if have, err := os.ReadFile(path); err == nil {
		if bytes.Equal(have, res.File) {
			return false, nil
		}
		return false, fmt.Errorf("%s exists with other content: it is not top-up %s (a file is never replaced: move it away, or give another --out)", path, res.Export.ID)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := fsutil.EnsurePrivateDir(filepath.Dir(path)); err != nil {
		return false, fmt.Errorf("output directory: %w", err)
	}
	if err := fsutil.WriteFileAtomic(path, res.File, 0o644); err != nil {
		return false, fmt.Errorf("writing the top-up file: %w", err)
	}
	return true, nil
}
