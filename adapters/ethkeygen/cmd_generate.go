package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/backend"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/web3signer"
)

func init() {
	register(command{"generate", "generate validators in memory, seal and store them, and write the Launchpad file (the main job)", runGenerate})
	register(command{"export-deposits", "write a Launchpad deposit_data file from the store and mark its records exported", runExportDeposits})
	register(command{"list", "list stored validators and their state, or the exports", runList})
	register(command{"retire", "mark validators never to be loaded, exported or signed for again", runRetire})
}

// backendFlags select the store and keys: the embedded default, or AWS.
type backendFlags struct {
	cfg backend.Config
}

func (b *backendFlags) register(fs *flag.FlagSet, sealing bool) {
	fs.StringVar(&b.cfg.DBPath, "db", backend.DefaultDBPath, "embedded store file (used unless --dynamodb-table is set)")
	fs.StringVar(&b.cfg.DynamoDBTable, "dynamodb-table", "", "store records in this DynamoDB table instead of the embedded file")
	fs.StringVar(&b.cfg.Region, "region", "", "AWS region (default: the standard AWS environment; AWS_ENDPOINT_URL_* and profiles apply)")
	fs.StringVar(&b.cfg.KeyDir, "key-dir", "", "directory of the local identity, recipient and generator key files (default $ETHKEYGEN_HOME or ~/.config/ethkeygen)")
	fs.StringVar(&b.cfg.LedgerPath, "ledger", "", "embedded lifecycle ledger file (default: the --db file plus .ledger)")
	fs.StringVar(&b.cfg.LedgerTable, "ledger-table", "", "DynamoDB lifecycle ledger table (default: the --dynamodb-table name plus -ledger)")
	fs.StringVar(&b.cfg.SigningKeyID, "signing-kms-key-id", "", "the generator's KMS record-signing key (ECC_NIST_P256) instead of the local generator.key")
	if sealing {
		fs.StringVar(&b.cfg.KMSKeyID, "kms-key-id", "", "seal secrets under this AWS KMS key (ARN or alias) instead of the local recipient")
		fs.StringVar(&b.cfg.Recipient, "recipient", "", "seal secrets to this age recipient (age1...) instead of the local one")
		fs.StringVar(&b.cfg.MnemonicKMSKeyID, "mnemonic-kms-key-id", "", "seal mnemonics separately under this KMS key, so the signing side never sees them")
		fs.StringVar(&b.cfg.MnemonicRecipient, "mnemonic-recipient", "", "seal mnemonics separately to this age recipient")
	}
}

func (b *backendFlags) openStore(ctx context.Context) (store.Store, error) {
	st, err := b.cfg.OpenStore(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	return st, nil
}

func runGenerate(ctx context.Context, e *env, args []string) error {
	for _, a := range args {
		if a == "--lambda" || a == "-lambda" || strings.HasPrefix(a, "--lambda=") || strings.HasPrefix(a, "-lambda=") {
			return runFanout(ctx, e, args) // generate in Lambda, fanned out
		}
	}
	fs := newFlags(e, "generate", "--count K --chain NAME [flags]",
		"Generates K validators in memory (a fresh 24-word mnemonic each by default), verifies each keystore and deposit,\n"+
			"seals every secret (fresh data key, AES-256-GCM, bound to its pubkey) and stores it, then writes the\n"+
			"Launchpad file from the store through the request's export (deposit_data-<unix>-req-<request id>.json).\n"+
			"Re-running with the same --request-id returns the same validators, completes an interrupted run and\n"+
			"writes the same file again; it never creates a validator twice nor hands a deposit out twice.\n"+
			"Default: embedded store ./ethkeygen.db and a local age identity; --kms-key-id / --dynamodb-table switch to AWS.")
	count := fs.Int("count", 0, fmt.Sprintf("number of validators, 1 to %d (required)", custody.MaxCount))
	var dep depositFlags
	dep.register(fs)
	var bf backendFlags
	bf.register(fs, true)
	requestID := fs.String("request-id", "", "idempotency key of this run (default: a new random id, printed)")
	format := fs.String("secret-format", string(custody.FormatKeystore), "what is sealed: keystore (EIP-2335 + random password) or raw (the key; no KDF at generation)")
	kdfName := fs.String("kdf", "scrypt", "keystore KDF for --secret-format keystore: scrypt or pbkdf2")
	perMnemonic := fs.Int("keys-per-mnemonic", 1, fmt.Sprintf("validators sharing one fresh mnemonic, 1 to %d", custody.MaxKeysPerMnemonic))
	out := fs.String("out", ".", "directory for the deposit_data file")
	maxMem := byteSize(custody.DefaultMaxMemory)
	fs.Var(&maxMem, "max-memory", "memory bound for key generation (scrypt needs 256MiB per worker), e.g. 4GiB")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	newKeys := fs.Bool("new-recipient", false, "seal or sign under other keys than this store was first used with (a deliberate key change; otherwise refused)")
	fs.String("lambda", "", "generate in this AWS Lambda function, fanned out in batches (flags: see generate-lambda --help)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "count"); err != nil {
		return err
	}
	if *count < 1 || *count > custody.MaxCount {
		return usagef("--count %d: want 1 to %d", *count, custody.MaxCount)
	}
	if _, err := parseKDF(*kdfName); err != nil {
		return err
	}
	if err := positive(fs, "keys-per-mnemonic", *perMnemonic); err != nil {
		return err
	}
	if err := dep.check(e); err != nil {
		return err
	}
	freshID := *requestID == ""
	if freshID {
		*requestID = uuid.NewString()
	}
	spec := custody.Spec{RequestID: *requestID, Count: *count, Chain: dep.chain, ForkVersion: dep.forkVersion,
		WithdrawalAddress: dep.address, AllowLowercaseAddress: dep.allowLowercase, Compounding: dep.compounding,
		BLSWithdrawal: dep.blsWithdrawal, AmountGwei: dep.amount, SecretFormat: *format, KDF: *kdfName, KeysPerMnemonic: *perMnemonic}
	if dep.chain == "" && dep.forkVersion == "" {
		return usagef("--chain or --fork-version is required")
	}
	req, err := spec.Request()
	if errors.Is(err, custody.ErrWithdrawalChoice) {
		return withdrawalChoice()
	}
	if err != nil {
		return err
	}
	if err := checkOutDir(*out); err != nil {
		return err
	}
	bf.cfg.Notify = func(msg string) { fmt.Fprintln(e.stderr, msg) }
	// The store first: a store that cannot be opened stops the run before
	// any key file is made.
	st, err := bf.openStore(ctx)
	if err != nil {
		return err
	}
	sealer, mnemonicSealer, err := bf.cfg.Sealers(ctx)
	if err != nil {
		st.Close()
		return err
	}
	signer, err := bf.cfg.GeneratorSigner(ctx)
	if err != nil {
		st.Close()
		return err
	}
	lc, err := openLifecycle(ctx, &bf, st)
	if err != nil {
		st.Close()
		return err
	}
	defer lc.Close()
	gst, sealer := crashWrap(st, sealer) // crash tests (tests/crash): no-op unless built with -tags crashtest
	opts := []custody.Option{custody.WithMaxMemory(int64(maxMem)), custody.WithLedger(lc.ledger, *newKeys)}
	if mnemonicSealer != nil {
		opts = append(opts, custody.WithMnemonicSealer(mnemonicSealer))
	}
	gen, err := custody.NewGenerator(gst, sealer, signer, opts...)
	if err != nil {
		return err
	}
	e.log.Debug("generate", "request_id", req.ID, "count", req.Count, "network", req.Network.Name,
		"format", req.Format, "store", storeName(&bf.cfg), "kms", bf.cfg.KMSKeyID != "")
	if freshID {
		// A new id cannot clash with a stored request: the hint holds.
		fmt.Fprintf(e.stderr, "request id %s (re-run with --request-id %s to resume or repeat)\n", req.ID, req.ID)
	}
	e.resumable(req.ID)
	limitMemory(e, int64(maxMem))
	p := newProgress(e, "validators stored", req.Count)
	res, err := gen.Generate(ctx, req, func(done, _ int) { p.update(done) })
	p.finish()
	if err != nil {
		return fmt.Errorf("request %s: %w", req.ID, err)
	}
	for _, v := range res.Validators {
		e.log.Debug("validator stored", "slot", v.Slot, "pubkey", v.Pubkey)
	}
	// The deposits go out only through the request's export: it claims
	// them in the ledger before the file exists, and the file is a pure
	// function of it, so a re-run writes the same file again and a deposit
	// exported before (by export-deposits) is never in a second file.
	exReq := custody.ExportRequest{RequestID: req.ID, Pubkeys: res.Pubkeys(), Network: req.Network.Name,
		Withdrawal: req.Withdrawal, BLSWithdrawal: req.Withdrawal.Address == nil}
	crashPoint("export")
	exp, err := lc.cust.Export(ctx, exReq)
	path := ""
	switch {
	case errors.Is(err, custody.ErrNothingToExport):
		fmt.Fprintf(e.stderr, "every validator of request %s is in an earlier export: no new deposit file (list --exports shows them)\n", req.ID)
	case err != nil:
		return fmt.Errorf("request %s: %w", req.ID, err)
	default:
		crashPoint("claimed")
		var wrote bool
		if path, wrote, err = writeExport(*out, exp); err != nil {
			return err
		}
		crashPoint("written")
		if left := len(res.Validators) - len(exp.Deposits); left > 0 {
			fmt.Fprintf(e.stderr, "%d validators of request %s are in other exports and not in this file (list --exports)\n", left, req.ID)
		}
		if !wrote && path != "" {
			fmt.Fprintf(e.stderr, "%s holds export %s already (same bytes)\n", path, exp.Export.ID)
		}
		printSummary(e, exp)
	}
	if *asJSON {
		type v struct {
			Slot   int    `json:"slot"`
			Pubkey string `json:"pubkey"`
		}
		vs := make([]v, len(res.Validators))
		for i, x := range res.Validators {
			vs[i] = v{x.Slot, x.Pubkey}
		}
		out := map[string]any{"request_id": res.RequestID, "created": res.Created,
			"network": req.Network.Name, "deposit_data": path, "validators": vs}
		if exp != nil {
			out["export_id"] = exp.Export.ID
			out["deposits"] = len(exp.Deposits)
		}
		return json.NewEncoder(e.stdout).Encode(out)
	}
	for _, v := range res.Validators {
		fmt.Fprintf(e.stdout, "0x%s\n", v.Pubkey)
	}
	shown := path
	if shown == "" {
		shown = "none written"
	}
	exportID := "none"
	if exp != nil {
		exportID = exp.Export.ID
	}
	fmt.Fprintf(e.stderr, "%s (%d new) on %s; export %s; deposit data: %s\n", plural(len(res.Validators), "validator"), res.Created, req.Network.Name, exportID, shown)
	return nil
}

func runExportDeposits(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "export-deposits", "(--request-id ID | --pubkey HEX... | --all | --export-id ID) --withdrawal-address 0x.. [--out DIR] [--assign-to NAME]",
		"Hands out deposits through an export: claims the selected validators for the export in the ledger (each\n"+
			"validator belongs to at most one export, whatever runs at the same time), freezes it, then writes its\n"+
			"Launchpad file deposit_data-<unix>-<export id>.json, a pure function of the export. Re-running it, or naming an\n"+
			"earlier export with --export-id, writes the same bytes again and never a new entry. Every deposit must be\n"+
			"signed by this store's generator and pay the withdrawal target you state: --withdrawal-address (0x01, or\n"+
			"0x02 with --compounding) or --bls-withdrawal; any other record is refused, naming its pubkey.")
	out := fs.String("out", ".", "directory for the deposit_data file")
	exportID := fs.String("export-id", "", "finish or re-write this export (list --exports shows them)")
	requestID := fs.String("request-id", "", "the validators of this request (export id req-<request id>)")
	var pubkeys multiFlag
	fs.Var(&pubkeys, "pubkey", "this validator (repeatable)")
	all := fs.Bool("all", false, "every validator not exported yet")
	chain := fs.String("chain", "", "the network every selected deposit must be for")
	assignTo := fs.String("assign-to", "", "then assign the export's validators to this signer (as ethkeygen assign --export-id ID --signer NAME)")
	var tf targetFlags
	tf.register(fs)
	var bf backendFlags
	bf.register(fs, false)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	sel := 0
	for _, b := range []bool{*exportID != "", *requestID != "", len(pubkeys) > 0, *all} {
		if b {
			sel++
		}
	}
	if sel != 1 {
		return usagef("select the deposits with one of --request-id, --pubkey, --all or --export-id")
	}
	req := custody.ExportRequest{ID: *exportID, RequestID: *requestID, All: *all}
	if *chain != "" {
		n, err := depositdata.NetworkByName(*chain)
		if err != nil {
			return usagef("--chain %q: unknown network (known: %s)", *chain, strings.Join(depositdata.NetworkNames(), ", "))
		}
		req.Network = n.Name
	}
	for _, p := range pubkeys {
		pk, err := normalizePubkey(p)
		if err != nil {
			return usageError{err}
		}
		req.Pubkeys = append(req.Pubkeys, pk)
	}
	if err := tf.request(&req); err != nil {
		return err
	}
	if err := checkSignerName(*assignTo); err != nil {
		return usagef("--assign-to: %s", strings.TrimPrefix(userText(err), "--signer "))
	}
	if err := checkOutDir(*out); err != nil {
		return err
	}
	bf.cfg.ExistingStore = true // nothing to read in a store that is not there
	lc, err := openLifecycle(ctx, &bf, nil)
	if err != nil {
		return err
	}
	defer lc.Close()
	res, err := lc.cust.Export(ctx, req)
	if errors.Is(err, custody.ErrNothingToExport) {
		return fmt.Errorf("%w (list --exports shows the exports; export-deposits --export-id ID writes one again)", err)
	}
	if err != nil {
		return err
	}
	crashPoint("claimed")
	path, wrote, err := writeExport(*out, res)
	if err != nil {
		return err
	}
	assigned := 0
	if *assignTo != "" && len(res.Export.Members) > 0 {
		as, err := lc.cust.Assign(ctx, res.Export.Members, *assignTo)
		if err != nil {
			return fmt.Errorf("deposit data written to %s, but assigning its validators to %s failed: %w", path, *assignTo, err)
		}
		assigned = len(as)
	}
	if *asJSON {
		m := map[string]any{"export_id": res.Export.ID, "deposit_data": path,
			"count": len(res.Deposits), "network": res.Export.Network, "resumed": res.Resumed}
		if *assignTo != "" {
			m["assigned_to"], m["assigned"] = *assignTo, assigned
		}
		return json.NewEncoder(e.stdout).Encode(m)
	}
	if path == "" {
		fmt.Fprintf(e.stderr, "export %s holds no deposit (its validators were claimed by other exports)\n", res.Export.ID)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s\n", path)
	note := ""
	if !wrote {
		note = " (already there, same bytes)"
	}
	fmt.Fprintf(e.stderr, "export %s: %d deposits on %s in %s%s\n", res.Export.ID, len(res.Deposits), res.Export.Network, path, note)
	printSummary(e, res)
	if *assignTo != "" {
		fmt.Fprintf(e.stderr, "%s assigned to %s\n", plural(assigned, "validator"), *assignTo)
	}
	return nil
}

func runList(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "list", "[--status S] [--request-id ID] [--exports] [--json]",
		"Lists stored validators with their state (public data only), or with --exports the exports.\n"+
			"States: generated, imported, exported, deposited (live on a signer), exit-signed, retired. A last column\n"+
			"names the signer a key is live on, or the one it is assigned to (assign) and not yet live on.\n"+
			"A record that fails its authenticator is listed as forged and is never exported or loaded.")
	status := fs.String("status", "", "only validators in this state")
	requestID := fs.String("request-id", "", "only records of this request")
	exports := fs.Bool("exports", false, "list the exports (id, network, deposits, file name; top-ups with their amount) instead")
	var bf backendFlags
	bf.register(fs, false)
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *status != "" && !store.Status(*status).Valid() {
		return usagef("--status %q: want generated, imported, exported, deposited, exit-signed or retired", *status)
	}
	bf.cfg.ExistingStore = true  // nothing to read in a store that is not there
	bf.cfg.ReadOnlyLedger = true // list changes nothing
	lc, err := openLifecycle(ctx, &bf, nil)
	if err != nil {
		return err
	}
	defer lc.Close()
	enc := json.NewEncoder(e.stdout)
	if *exports {
		for x, err := range lc.cust.Exports(ctx) {
			if err != nil {
				return err
			}
			state := "open"
			if x.Sealed {
				state = "sealed"
			}
			// A top-up's file goes where its run put it (--out), and is
			// written again only by top-up in protected compute.
			kind, deposits, file := "deposits", fmt.Sprintf("%d deposits", len(x.Members)), custody.ExportFileName(x)
			if x.TopUp() {
				kind = "top-up"
				deposits = fmt.Sprintf("%d top-up deposits of %d gwei", len(x.Members), x.TopUpGwei)
				file = "(top-up --request-id " + strings.TrimPrefix(x.ID, custody.TopUpPrefix) + " writes it)"
			}
			if *asJSON {
				m := map[string]any{"export_id": x.ID, "kind": kind, "network": x.Network, "state": state,
					"deposits": len(x.Members), "candidates": len(x.Candidates), "withdrawal_credentials": x.WithdrawalCredentials,
					"created_at": x.CreatedAt, "by": x.By}
				if x.TopUp() {
					m["top_up_gwei"] = x.TopUpGwei
				} else {
					m["deposit_data"] = file
				}
				if err := enc.Encode(m); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(e.stdout, "%s\t%s\t%s\t%s\t%s\t%s\n", x.ID, state, x.Network, deposits, file, x.CreatedAt.Format(time.RFC3339))
		}
		return nil
	}
	for en, err := range lc.cust.List(ctx, store.Filter{RequestID: *requestID, Status: store.Status(*status)}) {
		if err != nil {
			return err
		}
		rec, st := en.Record, string(en.Status)
		if en.Err != nil {
			st = "forged"
		}
		var exportID, signer, assignee string
		if en.Key != nil {
			exportID, signer, assignee = en.Key.ExportID, en.Key.Signer, en.Key.AssignedTo
		}
		if *asJSON {
			m := map[string]any{"pubkey": rec.Pubkey, "status": st, "network": rec.Network,
				"request_id": rec.RequestID, "slot": rec.Slot, "withdrawal_credentials": rec.WithdrawalCredentials,
				"created_at": rec.CreatedAt, "version": rec.Provenance.Version, "build": rec.Provenance.BuildHash,
				"origin": rec.Origin, "export_id": exportID, "signer": signer, "assigned_to": assignee,
				"slashing_history": en.Key != nil && en.Key.Interchange != nil}
			if en.Err != nil {
				m["error"] = oneLine(en.Err.Error())
			}
			if err := enc.Encode(m); err != nil {
				return err
			}
			continue
		}
		where := ""
		switch {
		case assignee != "":
			where = "\tassigned to " + assignee
		case signer != "":
			where = "\ton " + signer
		}
		fmt.Fprintf(e.stdout, "0x%s\t%s\t%s\t%s/%d\t%s%s\n", rec.Pubkey, st, rec.Network, rec.RequestID, rec.Slot, rec.CreatedAt.Format(time.RFC3339), where)
	}
	return nil
}

func runRetire(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "retire", "--pubkey HEX... --reason TEXT",
		"Marks validators retired in the ledger, with who and when: no export, load or signing operation will\n"+
			"touch them again. Use it for keys that left the validator set or must never run again.")
	var pubkeys multiFlag
	fs.Var(&pubkeys, "pubkey", "validator to retire (repeatable)")
	reason := fs.String("reason", "", "why (recorded with the retirement; public)")
	var bf backendFlags
	bf.register(fs, false)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if len(pubkeys) == 0 {
		return usagef("--pubkey is required")
	}
	var pks []string
	for _, p := range pubkeys {
		pk, err := normalizePubkey(p)
		if err != nil {
			return usageError{err}
		}
		pks = append(pks, pk)
	}
	lc, err := openLifecycle(ctx, &bf, nil)
	if err != nil {
		return err
	}
	defer lc.Close()
	type out struct {
		Pubkey string `json:"pubkey"`
		By     string `json:"by"`
		At     string `json:"at"`
	}
	var res []out
	for _, pk := range pks {
		ks, err := lc.cust.Retire(ctx, pk, *reason)
		if err != nil {
			return err
		}
		res = append(res, out{pk, ks.By, ks.UpdatedAt.Format(time.RFC3339)})
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"retired": res})
	}
	for _, r := range res {
		fmt.Fprintf(e.stdout, "0x%s\tretired\t%s\t%s\n", r.Pubkey, r.By, r.At)
	}
	return nil
}

func normalizePubkey(s string) (string, error) { return web3signer.NormalizePubkey(s) }

func storeName(c *backend.Config) string {
	if c.DynamoDBTable != "" {
		return "dynamodb:" + c.DynamoDBTable
	}
	return "sqlite:" + c.DBPath
}
