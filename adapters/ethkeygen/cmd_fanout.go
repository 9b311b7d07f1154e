package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/google/uuid"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/fanout"
)

func init() {
	register(command{"generate-lambda", "generate validators in an AWS Lambda function, fanned out in concurrent batches", runFanout})
}

// newLambdaInvoker makes the Lambda client; tests replace it.
var newLambdaInvoker = func(ctx context.Context, region string) (fanout.Invoker, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		return nil, usagef("no AWS region: pass --region or set AWS_REGION")
	}
	return lambda.NewFromConfig(cfg), nil
}

// runFanout is `ethkeygen generate-lambda` (and `generate --lambda`): it
// splits the run into batches with derived request ids, invokes the function
// for each, concurrently and with retries, verifies every deposit and writes
// one Launchpad file for the whole run.
func runFanout(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "generate-lambda", "--lambda FUNCTION --count N --chain NAME [--batch-size B] [--concurrency C] [flags]",
		"Generates N validators in the ethkeygen Lambda function: the run is split into batches of B validators\n"+
			"(request ids RUN/b00000, RUN/b00001, ...), invoked C at a time, each retried on throttling, network or\n"+
			"function errors. Every deposit is verified against the network and the request, pubkeys must be unique, and\n"+
			"one Launchpad file deposit_data-<unix>.json is written for the whole run, only when every batch succeeded.\n"+
			"Re-running with the same --request-id (and the same --count and --batch-size) resumes a failed run: stored\n"+
			"batches return their validators and none is created twice. Secrets stay in the function's store.")
	fn := fs.String("lambda", "", "function name, ARN or NAME:ALIAS (required)")
	count := fs.Int("count", 0, "number of validators in the run (required)")
	batchSize := fs.Int("batch-size", fanout.DefaultBatchSize, "validators per invocation (at most the function's ETHKEYGEN_MAX_COUNT)")
	concurrency := fs.Int("concurrency", fanout.DefaultConcurrency, "invocations at once (keep within the function's reserved concurrency)")
	retries := fs.Int("retries", fanout.DefaultRetries, "further tries of a failed batch")
	var dep depositFlags
	dep.register(fs)
	requestID := fs.String("request-id", "", "run id, the idempotency key of the run (default: a new random id, printed)")
	format := fs.String("secret-format", "", "what is sealed: keystore or raw (default: the function's default, keystore)")
	out := fs.String("out", ".", "directory for the deposit_data file")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	var bf backendFlags
	bf.register(fs, false)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "lambda", "count"); err != nil {
		return err
	}
	if *count < 1 {
		return usagef("--count %d: want at least 1", *count)
	}
	if *batchSize < 1 || *concurrency < 1 || *retries < 0 {
		return usagef("--batch-size and --concurrency must be at least 1, --retries at least 0")
	}
	if dep.chain == "" && dep.forkVersion == "" {
		return usagef("--chain or --fork-version is required")
	}
	if err := dep.check(e); err != nil {
		return err
	}
	freshID := *requestID == ""
	if freshID {
		*requestID = uuid.NewString()
	}
	plan := fanout.Plan{
		Function: *fn, Total: *count, BatchSize: *batchSize, Concurrency: *concurrency, Retries: *retries,
		Spec: custody.Spec{RequestID: *requestID, Chain: dep.chain, ForkVersion: dep.forkVersion,
			WithdrawalAddress: dep.address, AllowLowercaseAddress: dep.allowLowercase, Compounding: dep.compounding,
			BLSWithdrawal: dep.blsWithdrawal, AmountGwei: dep.amount, SecretFormat: *format},
	}
	if *retries == 0 {
		plan.Retries = -1
	}
	// The request is checked here, before any directory or invocation.
	probe := plan.Spec
	probe.Count = 1
	if _, err := probe.Request(); errors.Is(err, custody.ErrWithdrawalChoice) {
		return withdrawalChoice()
	} else if err != nil {
		return err
	}
	if !storeGiven(fs) {
		return usagef("--dynamodb-table (the function's store) is required: the run's deposits are handed out from it, through an export")
	}
	if err := checkOutDir(*out); err != nil {
		return err
	}
	inv, err := newLambdaInvoker(ctx, bf.cfg.Region)
	if err != nil {
		return err
	}
	e.resumable(*requestID)
	hint := ""
	if freshID { // a new id clashes with no stored run: the resume hint holds
		hint = fmt.Sprintf(" (re-run with --request-id %s to resume)", *requestID)
	}
	fmt.Fprintf(e.stderr, "run id %s: %d validators in %d batches of up to %d, %d at a time%s\n",
		*requestID, *count, plan.Batches(), *batchSize, *concurrency, hint)
	p := newProgress(e, "validators", *count)
	plan.Progress = func(done, _ int) { p.update(done) }
	res, err := fanout.Run(ctx, inv, plan)
	p.finish()
	if err != nil {
		if errors.Is(err, custody.ErrRequest) || ctx.Err() != nil {
			return fmt.Errorf("run %s: %w", *requestID, err)
		}
		return fmt.Errorf("run %s: %w (re-run with --request-id %s to resume)", *requestID, err, *requestID)
	}
	// The run's deposits go out only through its export, made from the
	// function's store: each record is checked as the generator's and as
	// paying the stated target, claimed, and only then written.
	lc, err := openLifecycle(ctx, &bf, nil)
	if err != nil {
		return fmt.Errorf("run %s: the function's store (--dynamodb-table) is needed to hand out its deposits: %w", *requestID, err)
	}
	defer lc.Close()
	exReq := custody.ExportRequest{ID: fanout.RunExportID(*requestID), Pubkeys: res.Pubkeys, SkipExported: true,
		Network: res.Network.Name, BLSWithdrawal: dep.address == ""}
	if dep.address != "" {
		w, err := dep.withdrawal()
		if err != nil {
			return err
		}
		exReq.Withdrawal = custody.Withdrawal{Address: w, Compounding: dep.compounding}
	}
	exp, err := lc.cust.Export(ctx, exReq)
	path := ""
	switch {
	case errors.Is(err, custody.ErrNothingToExport):
		fmt.Fprintf(e.stderr, "every validator of run %s is in an earlier export: no new deposit file\n", *requestID)
	case err != nil:
		return fmt.Errorf("run %s: %w", *requestID, err)
	default:
		if path, _, err = writeExport(*out, exp); err != nil {
			return err
		}
		printSummary(e, exp)
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"request_id": res.RunID, "network": res.Network.Name,
			"validators": len(res.Pubkeys), "created": res.Created, "batches": len(res.Batches), "retried": res.Retried,
			"deposit_data": path})
	}
	for _, pk := range res.Pubkeys {
		fmt.Fprintf(e.stdout, "0x%s\n", pk)
	}
	fmt.Fprintf(e.stderr, "%s (%d new) on %s in %d batches (%d retried); deposit data: %s\n",
		plural(len(res.Pubkeys), "validator"), res.Created, res.Network.Name, len(res.Batches), res.Retried, path)
	return nil
}

// storeGiven reports whether the operator named a store explicitly.
func storeGiven(fs *flag.FlagSet) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "dynamodb-table" || f.Name == "db" })
	return given
}
