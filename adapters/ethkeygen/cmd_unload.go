package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ethkeygen/ethkeygen/internal/fsutil"

	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

func init() {
	register(command{"unload", "remove keys from a Keymanager API signer, keeping their slashing-protection history", runUnload})
}

func runUnload(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "unload", "--pubkey HEX... --keymanager-url URL --keymanager-token-file F [flags]",
		"Removes keys from the signer (DELETE /eth/v1/keystores) and records in the ledger that they left it, with\n"+
			"the EIP-3076 slashing-protection history the signer returned (public data), so the next signer starts\n"+
			"from it (decrypt --takeover is then not needed, and the history is imported with the keys).\n"+
			"Only keys the ledger has live on this signer are removed. The history is written to a file before the\n"+
			"ledger records it (--slashing-protection-out, or a file in the key directory's unloaded/ removed once every\n"+
			"key is recorded): if the ledger write fails, the error names that file, and a re-run with\n"+
			"--slashing-protection-file FILE records it for the keys the signer no longer holds.")
	var pubkeys multiFlag
	fs.Var(&pubkeys, "pubkey", "validator to remove (repeatable)")
	var km keymanagerFlags
	km.register(fs)
	genesisRoot := fs.String("genesis-validators-root", "", "genesis validators root of a devnet the network table does not hold")
	icOut := fs.String("slashing-protection-out", "", "also keep the interchange the signer returns in this file (never replaced)")
	spFile := fs.String("slashing-protection-file", "", "EIP-3076 history of keys the signer no longer holds (saved by an unload whose ledger write failed)")
	var bf backendFlags
	bf.register(fs, false)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if len(pubkeys) == 0 {
		return usagef("--pubkey is required")
	}
	if err := requireFlag(fs, "keymanager-url"); err != nil {
		return err
	}
	var pks []string
	for _, p := range pubkeys {
		pk, err := normalizePubkey(p)
		if err != nil {
			return usageError{err}
		}
		pks = append(pks, pk)
	}
	given, err := readInterchangeFile(*spFile)
	if err != nil {
		return err
	}
	// Where the returned history goes before the ledger records it: known
	// (and free) before the keys leave the signer.
	icPath, keep := *icOut, *icOut != ""
	if !keep {
		if icPath, err = unloadedPath(&bf, pks); err != nil {
			return err
		}
	}
	if _, err := os.Lstat(icPath); err == nil {
		return usagef("--slashing-protection-out %s exists", icPath)
	}
	lc, err := openLifecycle(ctx, &bf, nil)
	if err != nil {
		return err
	}
	defer lc.Close()
	signer := km.signer()
	var recs []*store.Record
	for _, pk := range pks {
		rec, err := lc.cust.LiveOn(ctx, pk, signer)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
	}
	root, err := networkRoot(recs, *genesisRoot)
	if err != nil {
		return err
	}
	c, tok, err := km.client(ctx)
	if err != nil {
		return err
	}
	defer tok.Destroy()
	defer c.Close()
	res, interchange, err := c.Delete(ctx, pks)
	if err != nil {
		return err // nothing recorded: the keys stay live on the signer in the ledger
	}
	// The keys left the signer with their history: it is on disk before
	// the ledger is written, so a failed (or interrupted) ledger write
	// does not lose it.
	saved := ""
	if len(interchange) > 0 {
		if err := saveInterchange(icPath, interchange); err != nil {
			fmt.Fprintf(e.stderr, "ethkeygen unload: could not save the returned slashing-protection history to %s (%s); recording it in the ledger\n", icPath, oneLine(err.Error()))
		} else {
			saved = icPath
		}
	}
	out := make([]keyOutcome, len(pks))
	failed := 0
	for i, r := range res {
		out[i] = keyOutcome{Pubkey: pks[i], Status: string(r.Status), Message: r.Message}
		var ic []byte
		switch r.Status {
		case keymanager.Deleted, keymanager.NotActive:
			ic = interchange // its history is in the answer
		case keymanager.NotFound:
			out[i].Message = "the signer neither held it nor had history for it: released with the history the ledger held"
			if given != nil {
				ic = given
				out[i].Message = "the signer no longer held it: released with the history of --slashing-protection-file"
			}
		default:
			failed++
			continue // still live there
		}
		if _, err := lc.cust.ReleaseWithInterchange(ctx, pks[i], signer, root, ic); err != nil {
			out[i].Status, out[i].Message = "not-recorded", oneLine(err.Error())
			failed++
		}
	}
	if *asJSON {
		if err := json.NewEncoder(e.stdout).Encode(map[string]any{"signer": signer, "keys": out}); err != nil {
			return err
		}
	} else {
		for _, o := range out {
			if o.Message != "" {
				fmt.Fprintf(e.stdout, "0x%s\t%s\t%s\n", o.Pubkey, o.Status, o.Message)
			} else {
				fmt.Fprintf(e.stdout, "0x%s\t%s\n", o.Pubkey, o.Status)
			}
		}
	}
	if failed > 0 {
		if saved != "" {
			return fmt.Errorf("%d of %d keys not unloaded (see stdout); the ledger keeps them live on %s; the slashing-protection history the signer returned is saved in %s: "+
				"re-run unload with --slashing-protection-file %s to record it (or give it to decrypt --takeover) before the keys sign anywhere else",
				failed, len(pks), signer, saved, saved)
		}
		if len(interchange) > 0 {
			// Not on disk either: print it (public data), so it is not lost.
			fmt.Fprintf(e.stdout, "%s\n", interchange)
			return fmt.Errorf("%d of %d keys not unloaded (see stdout); the ledger keeps them live on %s; the slashing-protection history the signer returned "+
				"could not be saved and is printed on stdout: keep it and re-run unload with --slashing-protection-file", failed, len(pks), signer)
		}
		return fmt.Errorf("%d of %d keys not unloaded (see stdout); the ledger keeps them live on %s", failed, len(pks), signer)
	}
	if saved != "" && !keep {
		_ = os.Remove(saved) // the ledger holds it now
	}
	fmt.Fprintf(e.stderr, "%d keys removed from %s; their slashing-protection history is stored with them\n", len(pks), signer)
	return nil
}

// unloadedPath is the default file for the history an unload returns: in
// the key directory's unloaded/ (private, kept across reboots), named for
// the keys and the time.
func unloadedPath(bf *backendFlags, pks []string) (string, error) {
	dir, err := bf.cfg.KeyDirPath()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, pk := range pks {
		h.Write([]byte(pk))
	}
	return filepath.Join(dir, "unloaded", fmt.Sprintf("slashing-protection-%s-%x.json", time.Now().UTC().Format("20060102T150405.000000000Z"), h.Sum(nil)[:8])), nil
}

// saveInterchange writes an interchange atomically (never replacing a file),
// creating its directory private if it is missing.
func saveInterchange(path string, ic []byte) error {
	if err := fsutil.EnsurePrivateDir(filepath.Dir(path)); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, ic, 0o600)
}
