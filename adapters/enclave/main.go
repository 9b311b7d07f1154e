// Command enclave runs inside the AWS Nitro Enclave image as a long-running
// service: it accepts load requests from the parent over vsock, one at a
// time, for as long as it runs, and adds each request's keys to the
// Web3Signer key directory on the enclave's in-memory filesystem (then asks
// Web3Signer to reload, with -reload-url). All logic is in package enclave.
package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mdlayher/vsock"

	"github.com/ethkeygen/ethkeygen/attest"
	"github.com/ethkeygen/ethkeygen/enclave"
	"github.com/ethkeygen/ethkeygen/internal/hardening"
)

func main() {
	_ = hardening.DisableCoreDumps() // best effort: secrets stay out of core files
	port := flag.Uint("port", 5005, "vsock port to accept the parent's requests on")
	proxyPort := flag.Uint("kms-proxy-port", 8000, "vsock port of the parent's vsock-proxy to the KMS endpoint")
	keyDir := flag.String("key-dir", "/run/web3signer/keys", "Web3Signer key directory (must be on a tmpfs)")
	interchange := flag.String("interchange", "/run/web3signer/slashing-protection.json", "EIP-3076 interchange file to write")
	reload := flag.String("reload-url", "", "Web3Signer's reload endpoint (e.g. http://127.0.0.1:9000/reload), called after each load so new keys go live without a restart")
	debug := flag.Bool("debug", false, "log at debug level")
	flag.Parse()

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
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
	cfg := enclave.Config{
		KeyDir: *keyDir, InterchangeFile: *interchange, Logger: log,
		NewOpener: enclave.NitroOpener(dial, attest.NSM{}),
		Signer:    &enclave.KeyDirSigner{Dir: *keyDir, InterchangeFile: *interchange, ReloadURL: *reload},
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
