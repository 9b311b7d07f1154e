package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mdlayher/vsock"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/enclave/parent"
	"github.com/ethkeygen/ethkeygen/internal/awsenv"
	"github.com/ethkeygen/ethkeygen/internal/backend"
	"github.com/ethkeygen/ethkeygen/internal/opsfile"
	"github.com/ethkeygen/ethkeygen/keygen"
)

// The operations after the deposit through the enclave: "parent exit" and
// "parent bls-change" name keys, the enclave signs (custody's rules; the
// ledger marks exits first) and answers with the signed messages only,
// and the files are written with the CLI's writer (internal/opsfile):
// the same names and bytes as ethkeygen exit / bls-change.

// isOpsCommand says whether args name one of these subcommands.
func isOpsCommand(args []string) bool {
	return len(args) > 0 && (args[0] == "exit" || args[0] == "bls-change")
}

// runOpsMain runs the subcommand of args and returns the exit code: 0, 1
// failure, 2 usage, 130 interrupted.
func runOpsMain(args []string, stdout, stderr io.Writer) int {
	err := runOps(args[0], args[1:], stdout, stderr)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "parent %s: %v\n", args[0], ue.err)
		return 2
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "parent %s: interrupted\n", args[0])
		return 130
	default:
		fmt.Fprintf(stderr, "parent %s: %s\n", args[0], strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
}

type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }

func runOps(cmd string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parent "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cid := fs.Uint("enclave-cid", 16, "CID of the enclave (nitro-cli describe-enclaves)")
	port := fs.Uint("port", 5005, "vsock port the enclave listens on")
	table := fs.String("dynamodb-table", "", "DynamoDB table of the store (else --db)")
	db := fs.String("db", backend.DefaultDBPath, "embedded store file")
	region := fs.String("region", "", "AWS region (else the standard AWS environment)")
	ledgerTable := fs.String("ledger-table", "", "DynamoDB lifecycle ledger table (default: the --dynamodb-table name plus -ledger)")
	signingKey := fs.String("signing-kms-key-id", "", "the generator's KMS record-signing key (else generator.pub in --key-dir)")
	keyDir := fs.String("key-dir", "", "directory of generator.pub (default $ETHKEYGEN_HOME or ~/.config/ethkeygen)")
	pubkeys := fs.String("pubkey", "", "validators, comma-separated, in the order of --validator-index (required)")
	indices := fs.String("validator-index", "", "their beacon chain indices, comma-separated, in key order (required)")
	capella := fs.String("capella-fork-version", "", "Capella fork version of a devnet (known networks need none)")
	gvr := fs.String("genesis-validators-root", "", "genesis validators root of a devnet")
	out := fs.String("out", "", "output directory, created 0700 if missing (required)")
	epoch := fs.Uint64("epoch", 0, "exit: earliest epoch the exit can be processed (0: at once)")
	encFile := fs.String("encrypt-password-file", "", "exit: encrypt each exit file for Lido's validator ejector under the password in this file")
	address := fs.String("withdrawal-address", "", "bls-change: execution address, EIP-55 checksummed (required)")
	beaconAPI := fs.Bool("beacon-api", false, "bls-change: write the beacon API form instead of ethstaker-deposit-cli's")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	req := parent.SignRequest{CapellaForkVersion: *capella, GenesisValidatorsRoot: *gvr, Epoch: *epoch}
	for _, p := range strings.Split(*pubkeys, ",") {
		if p = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(p)), "0x"); p != "" {
			req.Pubkeys = append(req.Pubkeys, p)
		}
	}
	for _, s := range strings.Split(*indices, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return usageError{fmt.Errorf("--validator-index %q is not a number", s)}
		}
		req.ValidatorIndices = append(req.ValidatorIndices, v)
	}
	switch {
	case len(req.Pubkeys) == 0 || *out == "":
		return usageError{errors.New("--pubkey and --out are required")}
	case len(req.ValidatorIndices) != len(req.Pubkeys):
		return usageError{fmt.Errorf("%d validator index(es) for %d key(s): give one index per key, in key order", len(req.ValidatorIndices), len(req.Pubkeys))}
	case cmd == "exit" && (*address != "" || *beaconAPI):
		return usageError{errors.New("--withdrawal-address and --beacon-api are for bls-change")}
	case cmd == "bls-change" && (*encFile != "" || *epoch != 0):
		return usageError{errors.New("--epoch and --encrypt-password-file are for exit")}
	}
	if cmd == "bls-change" {
		to, err := depositdata.ParseAddress(*address, false)
		if err != nil {
			return usageError{fmt.Errorf("--withdrawal-address: %w", err)}
		}
		req.ToExecutionAddress = to.String()
	}
	var password *keygen.Bytes
	if *encFile != "" {
		var err error
		if password, err = opsfile.ReadPassword(*encFile); err != nil {
			return err
		}
		defer password.Destroy()
	}
	if err := awsenv.RefuseEndpointOverrides(os.Environ()); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	be := &backend.Config{DBPath: *db, DynamoDBTable: *table, Region: *region, Managed: true, LedgerTable: *ledgerTable, SigningKeyID: *signingKey, KeyDir: *keyDir}
	awsCfg, err := be.AWS(ctx)
	if err != nil {
		return err
	}
	if req.Credentials, err = parent.CredentialsFrom(ctx, awsCfg.Credentials); err != nil {
		return err
	}
	req.Region = awsCfg.Region
	cust, closeStores, err := custodian(ctx, be)
	if err != nil {
		return err
	}
	defer closeStores()
	conn, err := vsock.Dial(uint32(*cid), uint32(*port), nil)
	if err != nil {
		return fmt.Errorf("connecting to the enclave: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	ts := time.Now().Unix()
	if cmd == "exit" {
		res, err := parent.SignExits(ctx, conn, cust, req, log)
		if err != nil {
			return err
		}
		files, err := opsfile.ExitFiles(res.Exits, res.Network, password)
		if err != nil {
			return err
		}
		written, err := opsfile.WriteExits(*out, res.Exits, files, ts, password != nil)
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(map[string]any{"network": res.Network.Name, "exits": written})
	}
	res, err := parent.SignBLSChanges(ctx, conn, cust, req, log)
	if err != nil {
		return err
	}
	file, err := opsfile.BLSChangeFile(res.BLSChanges, res.Creds, res.Network, *beaconAPI)
	if err != nil {
		return err
	}
	path, err := opsfile.WriteBLSChangeFile(*out, file, ts)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]any{"network": res.Network.Name, "file": path, "validator_indices": req.ValidatorIndices, "to_execution_address": req.ToExecutionAddress})
}
