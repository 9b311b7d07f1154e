package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
)

func init() {
	register(command{"verify-deposits", "check a deposit_data file as the Staking Launchpad does", runVerifyDeposits})
	register(command{"verify-keystore", "decrypt an EIP-2335 keystore and check its pubkey", runVerifyKeystore})
}

func runVerifyDeposits(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "verify-deposits", "FILE [--chain NAME | --fork-version 0x..] [--json]",
		"Checks every entry: field formats, amount range, fork version against the network, deposit_cli_version >= 1.0.0,\n"+
			"deposit message root, BLS signature over the deposit domain, deposit data root, and no repeated pubkey.\n"+
			"Every entry must be for the same network; a devnet file (a name this tool does not know) needs --fork-version.\n"+
			"Exit status 0 when all entries are valid, else 1 with one line per bad entry.")
	chain := fs.String("chain", "", "network the file must be for (default: the known network the entries name; all entries must name the same)")
	forkVersion := fs.String("fork-version", "", "genesis fork version of a custom devnet")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	file, err := parseOneFile(fs, args)
	if err != nil {
		return err
	}
	var network *depositdata.Network
	if *chain != "" || *forkVersion != "" {
		d := depositFlags{chain: *chain, forkVersion: *forkVersion}
		n, err := d.network()
		if err != nil {
			return err
		}
		network = &n
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	deposits, errs := depositdata.VerifyFile(b, network)
	if *asJSON {
		msgs := make([]string, len(errs))
		for i, err := range errs {
			msgs[i] = userText(err)
		}
		_ = json.NewEncoder(e.stdout).Encode(map[string]any{"file": file, "entries": len(deposits), "valid": len(errs) == 0, "errors": msgs})
	} else {
		for _, err := range errs {
			fmt.Fprintf(e.stderr, "ethkeygen verify-deposits: %s: %s\n", file, userText(err))
		}
		if len(errs) == 0 {
			fmt.Fprintf(e.stdout, "%s: %s valid\n", file, plural(len(deposits), "deposit"))
		}
	}
	if len(errs) != 0 {
		return errSilentFailure
	}
	return nil
}

func runVerifyKeystore(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "verify-keystore", "FILE --password-file F [--json]",
		"Decrypts an EIP-2335 keystore and checks that the key matches the keystore's pubkey.")
	passwordFile := fs.String("password-file", "", "file holding the keystore password (required)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	file, err := parseOneFile(fs, args)
	if err != nil {
		return err
	}
	if err := requireFlag(fs, "password-file"); err != nil {
		return err
	}
	b, err := readKeystoreFile(file)
	if err != nil {
		return err
	}
	ks, err := keystore.Parse(b)
	if err != nil {
		return err
	}
	pw, err := fsutil.ReadSecretFile(*passwordFile)
	if err != nil {
		return fmt.Errorf("password file: %w", err)
	}
	defer keygen.Wipe(pw)
	// Cancellable: SIGINT/SIGTERM end the KDF within milliseconds.
	sk, err := ks.DecryptKeyContext(ctx, pw)
	if err != nil {
		return err
	}
	pub := hex.EncodeToString(sk.PublicKey())
	sk.Destroy()
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"file": file, "pubkey": pub, "path": ks.Path, "valid": true})
	}
	fmt.Fprintf(e.stdout, "%s: valid, pubkey 0x%s, path %s\n", file, pub, ks.Path)
	return nil
}

// readKeystoreFile reads a keystore file through keystore.MaxFileSize: a
// larger file (or a device that never ends) is refused without reading it
// all.
func readKeystoreFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, keystore.MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > keystore.MaxFileSize {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, keystore.ErrFormat, keystore.MaxFileSize)
	}
	return b, nil
}

func versionString() string {
	return "ethkeygen " + depositdata.DepositCLIVersion
}
