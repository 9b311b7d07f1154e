package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/backend"
	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/store"
)

func init() {
	register(command{"generate", "generate validators in memory, seal and store them, and write the Launchpad file (the main job)", runGenerate})
	register(command{"export-deposits", "write a Launchpad deposit_data file from the store and mark its records exported", runExportDeposits})
	register(command{"list", "list stored validators", runList})
}

// backendFlags select the store and keys: the embedded default, or AWS.
type backendFlags struct {
	cfg backend.Config
}

func (b *backendFlags) register(fs *flag.FlagSet, sealing bool) {
	fs.StringVar(&b.cfg.DBPath, "db", backend.DefaultDBPath, "embedded store file (used unless --dynamodb-table is set)")
	fs.StringVar(&b.cfg.DynamoDBTable, "dynamodb-table", "", "store records in this DynamoDB table instead of the embedded file")
	fs.StringVar(&b.cfg.Region, "region", "", "AWS region (default: the standard AWS environment; AWS_ENDPOINT_URL_* and profiles apply)")
	fs.StringVar(&b.cfg.KeyDir, "key-dir", "", "directory of the local identity and recipient files (default $ETHKEYGEN_HOME or ~/.config/ethkeygen)")
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
			"Launchpad file deposit_data-<unix>.json from what the store holds. Re-running with the same --request-id\n"+
			"returns the same validators and completes an interrupted run; it never creates a validator twice.\n"+
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
	od, err := openOutDir(*out)
	if err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	path := ""
	defer func() {
		if path == "" {
			od.discard() // no file written: leave no empty directory behind
		}
	}()
	bf.cfg.Notify = func(msg string) { fmt.Fprintln(e.stderr, msg) }
	sealer, mnemonicSealer, err := bf.cfg.Sealers(ctx)
	if err != nil {
		return err
	}
	st, err := bf.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	st, sealer = crashWrap(st, sealer) // crash tests (tests/crash): no-op unless built with -tags crashtest
	opts := []custody.Option{custody.WithMaxMemory(int64(maxMem))}
	if mnemonicSealer != nil {
		opts = append(opts, custody.WithMnemonicSealer(mnemonicSealer))
	}
	gen, err := custody.NewGenerator(st, sealer, opts...)
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
		e.log.Debug("validator stored", "slot", v.Slot, "pubkey", v.Pubkey, "status", v.Status)
	}
	// Only validators not exported yet go into the file: a repeat of the
	// request must not hand out a deposit again (a second deposit tops up a
	// live validator).
	var fresh []*depositdata.Deposit
	for _, v := range res.Validators {
		if v.Status == store.StatusGenerated {
			fresh = append(fresh, v.Deposit)
		}
	}
	if len(fresh) > 0 {
		if path, err = writeDepositFile(*out, fresh); err != nil {
			return err
		}
		crashPoint("export") // crash tests (tests/crash): no-op unless built with -tags crashtest
		if err := markExported(ctx, st, res.Validators); err != nil {
			return err
		}
	}
	if left := len(res.Validators) - len(fresh); left > 0 {
		fmt.Fprintf(e.stderr, "%d validators of request %s were exported before and are not in a new deposit file (export-deposits --status exported --request-id %s writes them again)\n", left, req.ID, req.ID)
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
		return json.NewEncoder(e.stdout).Encode(map[string]any{"request_id": res.RequestID, "created": res.Created,
			"network": req.Network.Name, "deposit_data": path, "validators": vs})
	}
	for _, v := range res.Validators {
		fmt.Fprintf(e.stdout, "0x%s\n", v.Pubkey)
	}
	shown := path
	if shown == "" {
		shown = "none written"
	}
	fmt.Fprintf(e.stderr, "%s (%d new) on %s; deposit data: %s\n", plural(len(res.Validators), "validator"), res.Created, req.Network.Name, shown)
	return nil
}

// writeDepositFile writes deposit_data-<unix>.json into dir, never replacing
// a file.
func writeDepositFile(dir string, deposits []*depositdata.Deposit) (string, error) {
	b, err := depositdata.MarshalFile(deposits)
	if err != nil {
		return "", err
	}
	ts := time.Now().Unix()
	for {
		path := filepath.Join(dir, depositdata.FileName(ts))
		err := fsutil.WriteFileAtomic(path, b, 0o644)
		if err == nil {
			return path, nil
		}
		if !errorsIsExist(err) {
			return "", fmt.Errorf("writing deposit data: %w", err)
		}
		ts++ // a file of the same second exists: take the next name
	}
}

func errorsIsExist(err error) bool {
	var ee *fsutil.ExistsError
	return errors.As(err, &ee)
}

// markExported moves records from generated to exported after their
// deposit file is written.
func markExported(ctx context.Context, st store.Store, vs []custody.Validator) error {
	for _, v := range vs {
		if v.Status != store.StatusGenerated {
			continue
		}
		err := st.SetStatus(ctx, v.Pubkey, store.StatusGenerated, store.StatusExported)
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("marking 0x%s exported: %w", v.Pubkey, err)
		}
	}
	return nil
}

func runExportDeposits(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "export-deposits", "--out FILE [--status generated] [--request-id ID] [--chain NAME]",
		"Writes the Launchpad file for stored validators (default: those not exported yet) and marks them exported.\n"+
			"The file is written before any record changes status, so a failure never marks a record exported without a file.")
	out := fs.String("out", "", "deposit_data file to write; must not exist (required)")
	status := fs.String("status", string(store.StatusGenerated), "export records with this status: generated, exported, deposited, retired")
	requestID := fs.String("request-id", "", "only records of this request")
	chain := fs.String("chain", "", "only records of this network (required when the store holds several)")
	var bf backendFlags
	bf.register(fs, false)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "out"); err != nil {
		return err
	}
	if !store.Status(*status).Valid() {
		return usagef("--status %q: want generated, exported, deposited or retired", *status)
	}
	st, err := bf.openExistingStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	var vs []custody.Validator
	var deposits []*depositdata.Deposit
	networks := map[string]bool{}
	for rec, err := range st.Query(ctx, store.Filter{RequestID: *requestID, Status: store.Status(*status)}) {
		if err != nil {
			return err
		}
		if *chain != "" && rec.Network != *chain {
			continue
		}
		v, err := custody.VerifyRecord(rec) // a record altered in the store never reaches the file
		if err != nil {
			return err
		}
		vs = append(vs, v)
		deposits = append(deposits, v.Deposit)
		networks[rec.Network] = true
	}
	if len(vs) == 0 {
		if _, err := depositdata.NetworkByName(*chain); *chain != "" && err != nil {
			return usagef("--chain %q: unknown network, and no stored validator is for it (known: %s)", *chain, strings.Join(depositdata.NetworkNames(), ", "))
		}
		return fmt.Errorf("no stored validators with status %s match", *status)
	}
	if len(networks) > 1 {
		return usagef("the records are for %d networks: choose one with --chain", len(networks))
	}
	b, err := depositdata.MarshalFile(deposits)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(*out, b, 0o644); err != nil {
		return fmt.Errorf("writing deposit data: %w", err)
	}
	if err := markExported(ctx, st, vs); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"deposit_data": *out, "count": len(vs)})
	}
	fmt.Fprintf(e.stdout, "%s: %d deposits\n", *out, len(vs))
	return nil
}

func runList(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "list", "[--status S] [--request-id ID] [--json]", "Lists stored validators (public data only).")
	status := fs.String("status", "", "only records with this status")
	requestID := fs.String("request-id", "", "only records of this request")
	var bf backendFlags
	bf.register(fs, false)
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *status != "" && !store.Status(*status).Valid() {
		return usagef("--status %q: want generated, exported, deposited or retired", *status)
	}
	st, err := bf.openExistingStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	enc := json.NewEncoder(e.stdout)
	for rec, err := range st.Query(ctx, store.Filter{RequestID: *requestID, Status: store.Status(*status)}) {
		if err != nil {
			return err
		}
		if *asJSON {
			if err := enc.Encode(map[string]any{"pubkey": rec.Pubkey, "status": rec.Status, "network": rec.Network,
				"request_id": rec.RequestID, "slot": rec.Slot, "withdrawal_credentials": rec.WithdrawalCredentials,
				"created_at": rec.CreatedAt, "version": rec.Provenance.Version, "build": rec.Provenance.BuildHash}); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(e.stdout, "0x%s\t%s\t%s\t%s/%d\t%s\n", rec.Pubkey, rec.Status, rec.Network, rec.RequestID, rec.Slot, rec.CreatedAt.Format(time.RFC3339))
	}
	return nil
}

func storeName(c *backend.Config) string {
	if c.DynamoDBTable != "" {
		return "dynamodb:" + c.DynamoDBTable
	}
	return "sqlite:" + c.DBPath
}
