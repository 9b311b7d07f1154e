// Command bootstrap is ethkeygen's AWS Lambda function (runtime
// provided.al2023, arm64 or x86_64). Each invocation takes a custody.Spec
// event, generates fresh validators, seals them under KMS, stores them in
// DynamoDB and returns only public data: the request id, pubkeys and
// Launchpad deposit entries. The logic is in package handler.
//
// Configuration (environment):
//
//	ETHKEYGEN_KMS_KEY_ID           KMS key ARN sealing validator secrets (required)
//	ETHKEYGEN_TABLE                DynamoDB table (required)
//	ETHKEYGEN_MNEMONIC_KMS_KEY_ID  separate KMS key for mnemonics (optional)
//	ETHKEYGEN_ALLOWED_CHAINS       networks served (default mainnet,hoodi,sepolia,holesky)
//	ETHKEYGEN_ALLOWED_WITHDRAWAL_ADDRESSES  withdrawal addresses (EIP-55) requests may name,
//	                               and "bls" for 0x00 credentials (required)
//	ETHKEYGEN_MAX_COUNT            validators per invocation (default 100, at most 5000)
//	AWS_LAMBDA_FUNCTION_MEMORY_SIZE  set by Lambda: 80% of it bounds the pipeline's
//	                               memory, and so its number of workers
//
// The function refuses to start when any AWS_ENDPOINT_URL*, AWS_CA_BUNDLE or
// proxy variable (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY, any case) is
// set, and reads no shared AWS config file: its environment is changed by
// lambda:UpdateFunctionConfiguration, which code signing does not cover, and
// a redirected KMS endpoint would learn every data key. Tests build it with
// the tag ethkeygen_localendpoints to reach local stand-ins; the release
// build (package release) never sets it.
//
// Building: BLS signing uses herumi/bls-eth-go-binary, which needs cgo.
//
//	CGO_ENABLED=1 GOOS=linux GOARCH=amd64 go build -trimpath -tags lambda.norpc -o bootstrap ./adapters/lambda
//	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc \
//	    go build -trimpath -tags lambda.norpc -o bootstrap ./adapters/lambda
//
// The arm64 build on an x86_64 host needs a cross C and C++ toolchain:
// herumi's library links libstdc++, so on Debian
// `apt-get install gcc-aarch64-linux-gnu g++-aarch64-linux-gnu` (gcc alone
// fails at link time with "cannot find -lstdc++"). Both builds link glibc
// dynamically (Debian 12 builds need glibc 2.34 at most; provided.al2023
// has 2.34).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/ethkeygen/ethkeygen/adapters/lambda/handler"
	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/internal/awsenv"
	"github.com/ethkeygen/ethkeygen/internal/backend"
	"github.com/ethkeygen/ethkeygen/internal/hardening"
)

// EnvSigningKeyID names the generator's KMS record-signing key.
const EnvSigningKeyID = "ETHKEYGEN_SIGNING_KEY_ID"

func main() {
	_ = hardening.DisableCoreDumps() // best effort: secrets stay out of core files
	_ = hardening.DisableDumping()   // best effort: no core through a piped core_pattern, no ptrace or /proc/<pid>/mem by the same user
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	h, err := setup(context.Background(), os.Getenv, os.Environ(), logger)
	if err != nil {
		logger.Error("configuration", slog.String("error", err.Error()))
		os.Exit(1)
	}
	lambda.Start(h) // h implements lambda.Handler: it decodes the payload itself
}

// setup builds the handler from the environment. It opens clients only: no
// key material exists before an invocation.
func setup(ctx context.Context, getenv func(string) string, environ []string, logger *slog.Logger) (*handler.Handler, error) {
	if !localEndpoints {
		if err := awsenv.RefuseEndpointOverrides(environ); err != nil {
			return nil, err
		}
	}
	cfg, err := handler.ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	// The generator's record-signing key (KMS, ECC_NIST_P256): exports and
	// loads refuse any record it did not sign.
	signingKey := getenv(EnvSigningKeyID)
	if signingKey == "" {
		return nil, fmt.Errorf("%s is not set: the function signs every record it stores with this KMS key", EnvSigningKeyID)
	}
	bc := &backend.Config{DynamoDBTable: cfg.Table, KMSKeyID: cfg.KMSKeyID, MnemonicKMSKeyID: cfg.MnemonicKMSKeyID, SigningKeyID: signingKey, Managed: !localEndpoints}
	st, err := bc.OpenStore(ctx)
	if err != nil {
		return nil, err
	}
	sealer, mnemonicSealer, err := bc.Sealers(ctx)
	if err != nil {
		return nil, err
	}
	if getenv("GOMEMLIMIT") == "" && cfg.MaxMemory > 0 {
		debug.SetMemoryLimit(cfg.MaxMemory / 8 * 9) // 90% of the function's memory: freed scrypt buffers are collected in time
	}
	opts := []custody.Option{custody.WithMaxMemory(cfg.MaxMemory)}
	if mnemonicSealer != nil {
		opts = append(opts, custody.WithMnemonicSealer(mnemonicSealer))
	}
	// No KMS call before the first invocation: the key's public half is
	// fetched when the first record is signed.
	signer, err := bc.DeferredGeneratorSigner(ctx)
	if err != nil {
		return nil, err
	}
	gen, err := custody.NewGenerator(st, sealer, signer, opts...)
	if err != nil {
		return nil, err
	}
	logger.Info("ready", slog.String("table", cfg.Table), slog.Any("chains", cfg.AllowedChains),
		slog.Int("withdrawal_addresses", len(cfg.AllowedAddresses)), slog.Bool("bls_withdrawals", cfg.AllowBLS),
		slog.Int("max_count", cfg.MaxCount), slog.Int64("max_memory", cfg.MaxMemory))
	return &handler.Handler{Generator: gen, AllowedChains: cfg.AllowedChains, AllowedAddresses: cfg.AllowedAddresses,
		AllowBLS: cfg.AllowBLS, MaxCount: cfg.MaxCount, Logger: logger}, nil
}
