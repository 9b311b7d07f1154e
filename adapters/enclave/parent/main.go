// Command parent runs on the Nitro Enclaves parent instance: it reads the
// named validator records from the store and hands them, sealed, with the
// instance role's credentials, to the enclave over vsock. With -watch it
// runs until SIGINT/SIGTERM and loads the keys assigned to -signer
// (ethkeygen assign) as they appear. It never sees a key. All logic is in
// package enclave/parent.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mdlayher/vsock"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/enclave"
	"github.com/ethkeygen/ethkeygen/enclave/parent"
	"github.com/ethkeygen/ethkeygen/internal/awsenv"
	"github.com/ethkeygen/ethkeygen/internal/backend"
	"github.com/ethkeygen/ethkeygen/internal/hardening"
	"github.com/ethkeygen/ethkeygen/web3signer"
)

func main() {
	_ = hardening.DisableCoreDumps() // best effort: secrets stay out of core files
	_ = hardening.DisableDumping()   // best effort: no core through a piped core_pattern, no ptrace or /proc/<pid>/mem by the same user
	// "parent exit" and "parent bls-change": ops.go.
	if isOpsCommand(os.Args[1:]) {
		os.Exit(runOpsMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	cid := flag.Uint("enclave-cid", 16, "CID of the enclave (nitro-cli describe-enclaves)")
	port := flag.Uint("port", 5005, "vsock port the enclave listens on")
	table := flag.String("dynamodb-table", "", "DynamoDB table of the store (else --db)")
	db := flag.String("db", backend.DefaultDBPath, "embedded store file")
	region := flag.String("region", "", "AWS region (else the standard AWS environment)")
	pubkeysFile := flag.String("pubkeys", "-", "file with one pubkey per line (- for stdin)")
	root := flag.String("genesis-validators-root", "", "genesis validators root of the network (hex), for the slashing protection interchange")
	takeover := flag.Bool("takeover", false, "also load keys with status deposited (only after the previous signer is stopped for good)")
	noHistory := flag.Bool("no-slashing-history-i-understand", false, "with -takeover: load taken-over keys although no slashing-protection history of their previous signer is known")
	ledgerTable := flag.String("ledger-table", "", "DynamoDB lifecycle ledger table (default: the --dynamodb-table name plus -ledger)")
	signingKey := flag.String("signing-kms-key-id", "", "the generator's KMS record-signing key, whose public key authenticates records (else generator.pub in --key-dir)")
	keyDir := flag.String("key-dir", "", "directory of generator.pub (default $ETHKEYGEN_HOME or ~/.config/ethkeygen)")
	debug := flag.Bool("debug", false, "log at debug level")
	signer := flag.String("signer", "", "this enclave's signer name in the ledger (default enclave:<hostname>:<cid>); with -watch, required: the name keys are assigned to (ethkeygen assign --signer NAME)")
	watch := flag.Bool("watch", false, "run until SIGINT/SIGTERM, loading the keys assigned to -signer as they appear (no -pubkeys)")
	interval := flag.Duration("interval", parent.DefaultWatchInterval, "with -watch: how often the ledger is read")
	batch := flag.Int("batch", parent.DefaultWatchBatch, "with -watch: the most keys per load request")
	flag.Parse()

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// The credentials and the store the parent hands on must come from AWS
	// itself: no endpoint, CA bundle or proxy override, no profile file.
	if err := awsenv.RefuseEndpointOverrides(os.Environ()); err != nil {
		log.Error("configuration", slog.String("error", err.Error()))
		os.Exit(1)
	}
	be := &backend.Config{DBPath: *db, DynamoDBTable: *table, Region: *region, Managed: true,
		LedgerTable: *ledgerTable, SigningKeyID: *signingKey, KeyDir: *keyDir}
	if *signer == "" && !*watch {
		host, _ := os.Hostname()
		*signer = fmt.Sprintf("enclave:%s:%d", host, *cid)
	}
	if *watch {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		switch {
		case *signer == "":
			usage(log, "-watch needs -signer NAME (the name keys are assigned to)")
		case *takeover || *noHistory:
			usage(log, "-watch never takes a key over: load taken-over keys with a one-off run (-pubkeys, -takeover)")
		case set["pubkeys"]:
			usage(log, "-watch loads the keys assigned to -signer: no -pubkeys")
		case *interval < time.Second:
			usage(log, "-interval must be at least 1s")
		case *batch < 1 || *batch > enclave.MaxRecords:
			usage(log, fmt.Sprintf("-batch must be 1 to %d", enclave.MaxRecords))
		}
		os.Exit(runWatch(log, uint32(*cid), uint32(*port), be, *signer, *root, *interval, *batch))
	}
	if err := run(log, uint32(*cid), uint32(*port), be, *signer, *pubkeysFile, *root, *takeover, *noHistory); err != nil {
		log.Error("load failed", slog.String("error", err.Error()))
		os.Exit(1)
	}
}

func usage(log *slog.Logger, msg string) {
	log.Error("usage", slog.String("error", msg))
	os.Exit(2)
}

// custodian opens the store, the ledger and the generator's verification
// key, and returns the custodian over them and a function closing them.
func custodian(ctx context.Context, be *backend.Config) (*custody.Custodian, func(), error) {
	st, err := be.OpenStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	ledger, err := be.OpenLedger(ctx)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	closeAll := func() { ledger.Close(); st.Close() }
	verifier, err := be.GeneratorVerifier(ctx)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	cust, err := custody.NewCustodian(st, ledger, verifier, custody.WithActor(backend.Actor()))
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return cust, closeAll, nil
}

// runWatch runs parent.Watch until SIGINT or SIGTERM: exit 0 when stopped
// between loads, 130 when stopped during one, 1 when it cannot start.
func runWatch(log *slog.Logger, cid, port uint32, be *backend.Config, signer, root string, interval time.Duration, batch int) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	awsCfg, err := be.AWS(ctx)
	if err != nil {
		log.Error("watch failed", slog.String("error", err.Error()))
		return 1
	}
	cust, closeAll, err := custodian(ctx, be)
	if err != nil {
		log.Error("watch failed", slog.String("error", err.Error()))
		return 1
	}
	defer closeAll()
	err = parent.Watch(ctx, cust, parent.WatchConfig{
		Signer: signer, Interval: interval, Batch: batch, Logger: log,
		Dial: func(ctx context.Context) (io.ReadWriteCloser, error) {
			c, err := vsock.Dial(cid, port, nil)
			if err != nil {
				return nil, err
			}
			_ = c.SetDeadline(time.Now().Add(15 * time.Minute))
			return c, nil
		},
		Request: func(ctx context.Context) (parent.Request, error) {
			creds, err := parent.CredentialsFrom(ctx, awsCfg.Credentials)
			return parent.Request{Region: awsCfg.Region, Credentials: creds, GenesisValidatorsRoot: root}, err
		},
	})
	if err != nil {
		log.Error("watch stopped", slog.String("error", err.Error()))
	}
	return parent.WatchExitCode(err)
}

func run(log *slog.Logger, cid, port uint32, be *backend.Config, signer, pubkeysFile, root string, takeover, noHistory bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()

	pubkeys, err := readPubkeys(pubkeysFile)
	if err != nil {
		return err
	}
	awsCfg, err := be.AWS(ctx)
	if err != nil {
		return err
	}
	creds, err := parent.CredentialsFrom(ctx, awsCfg.Credentials)
	if err != nil {
		return err
	}
	cust, closeAll, err := custodian(ctx, be)
	if err != nil {
		return err
	}
	defer closeAll()
	conn, err := vsock.Dial(cid, port, nil)
	if err != nil {
		return fmt.Errorf("connecting to the enclave: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	_, err = parent.Load(ctx, conn, cust, parent.Request{
		Region: awsCfg.Region, Credentials: creds, GenesisValidatorsRoot: root, Takeover: takeover, NoSlashingHistory: noHistory, Pubkeys: pubkeys,
		Signer: signer,
	}, log)
	return err
}

func readPubkeys(path string) ([]string, error) {
	f := os.Stdin
	if path != "-" {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
		defer f.Close()
	}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pk, err := web3signer.NormalizePubkey(line)
		if err != nil {
			return nil, err
		}
		out = append(out, pk)
	}
	return out, sc.Err()
}
