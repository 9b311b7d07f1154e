package main

import (
	"context"
	"encoding/json"
	"fmt"

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
			"Only keys the ledger has live on this signer are removed.")
	var pubkeys multiFlag
	fs.Var(&pubkeys, "pubkey", "validator to remove (repeatable)")
	var km keymanagerFlags
	km.register(fs)
	genesisRoot := fs.String("genesis-validators-root", "", "genesis validators root of a devnet the network table does not hold")
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
		return fmt.Errorf("%d of %d keys not unloaded (see stdout); the ledger keeps them live on %s", failed, len(pks), signer)
	}
	fmt.Fprintf(e.stderr, "%d keys removed from %s; their slashing-protection history is stored with them\n", len(pks), signer)
	return nil
}
