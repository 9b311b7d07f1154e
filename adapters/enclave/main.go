// Command enclave runs inside the AWS Nitro Enclave image as a long-running
// service: it accepts load requests from the parent over vsock, one at a
// time, for as long as it runs, and adds each request's keys to the
// Web3Signer key directory on the enclave's in-memory filesystem (then asks
// Web3Signer to reload, with -reload-url), or imports them through a
// Keymanager API (-keymanager-url, -keymanager-token-file, -keymanager-ca-file).
// All logic is in package enclave.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mdlayher/vsock"

	"github.com/ethkeygen/ethkeygen/attest"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/enclave"
	"github.com/ethkeygen/ethkeygen/internal/awsenv"
	"github.com/ethkeygen/ethkeygen/internal/hardening"
	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

func main() {
	_ = hardening.DisableCoreDumps() // best effort: secrets stay out of core files
	_ = hardening.DisableDumping()   // best effort: no core through a piped core_pattern, no ptrace or /proc/<pid>/mem by the same user
	port := flag.Uint("port", 5005, "vsock port to accept the parent's requests on")
	proxyPort := flag.Uint("kms-proxy-port", 8000, "vsock port of the parent's vsock-proxy to the KMS endpoint")
	keyDir := flag.String("key-dir", "/run/web3signer/keys", "Web3Signer key directory (must be on a tmpfs)")
	interchange := flag.String("interchange", "/run/web3signer/slashing-protection.json", "EIP-3076 interchange file to write")
	reload := flag.String("reload-url", "", "Web3Signer's reload endpoint (e.g. http://127.0.0.1:9000/reload), called after each load so new keys go live without a restart")
	kmURL := flag.String("keymanager-url", "", "load keys through this Keymanager API (Web3Signer --key-manager-api-enabled) instead of the key directory")
	kmToken := flag.String("keymanager-token-file", "", "bearer token file of the Keymanager API")
	kmCA := flag.String("keymanager-ca-file", "", "PEM CA that signed the Keymanager API's certificate (pinned: system roots not trusted)")
	debug := flag.Bool("debug", false, "log at debug level")
	flag.Parse()

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// The enclave's KMS client takes no endpoint or proxy from the
	// environment (enclave.NitroOpener builds it explicitly); refuse them
	// anyway, so that an image built with one fails loudly.
	if err := awsenv.RefuseEndpointOverrides(os.Environ()); err != nil {
		log.Error("configuration", slog.String("error", err.Error()))
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	l, err := vsock.Listen(uint32(*port), nil)
	if err != nil {
		log.Error("listening on vsock", slog.String("error", err.Error()))
		os.Exit(1)
	}
	context.AfterFunc(ctx, func() { l.Close() })
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return vsock.Dial(vsock.Host, uint32(*proxyPort), nil) // CID 3: the parent
	}
	var signer enclave.Signer = &enclave.KeyDirSigner{Dir: *keyDir, InterchangeFile: *interchange, ReloadURL: *reload}
	if *kmURL != "" {
		client, err := keymanagerClient(*kmURL, *kmToken, *kmCA)
		if err != nil {
			log.Error("keymanager", slog.String("error", err.Error()))
			os.Exit(2)
		}
		defer client.Close()
		signer = &enclave.KeymanagerSigner{Client: client}
	}
	cfg := enclave.Config{
		KeyDir: *keyDir, InterchangeFile: *interchange, Logger: log,
		NewOpener: enclave.NitroOpener(dial, attest.NSM{}),
		Signer:    signer,
		// The network table decides each record's genesis validators root;
		// the parent's is checked against it (a devnet the table does not
		// hold is refused here).
		GenesisRoot: func(network string) ([32]byte, bool) {
			n, err := depositdata.NetworkByName(network)
			if err != nil || !n.HasChainRoots() {
				return [32]byte{}, false
			}
			return n.GenesisValidatorsRoot, true
		},
	}
	log.Info("ready", slog.Uint64("port", uint64(*port)))
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Error("accepting", slog.String("error", err.Error()))
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		if err := enclave.Serve(sctx, conn, cfg); err != nil {
			log.Error("load failed", slog.String("error", err.Error()))
		}
		cancel()
		conn.Close()
	}
}

func keymanagerClient(url, tokenFile, caFile string) (*keymanager.Client, error) {
	if tokenFile == "" {
		return nil, errors.New("-keymanager-url needs -keymanager-token-file")
	}
	tok, err := keymanager.ReadTokenFile(tokenFile)
	if err != nil {
		return nil, err
	}
	var opts []keymanager.Option
	if caFile != "" {
		opts = append(opts, keymanager.WithCAFile(caFile))
	}
	return keymanager.New(url, tok, opts...)
}
