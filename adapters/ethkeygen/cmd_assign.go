package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/store"
)

func init() {
	register(command{"assign", "assign validators to a named signer, for its loader (parent --watch) to load", runAssign})
}

func runAssign(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "assign", "(--pubkey HEX... | --request-id ID | --export-id ID) --signer NAME [--unassign] [--json]",
		"Records in the ledger that validators are to be loaded on the signer NAME: a loader for it (parent --watch\n"+
			"--signer NAME) finds them and loads them; no other signer may claim them while they are assigned. Only\n"+
			"validators whose deposit was handed out (or imported ones), not retired, without a signed exit and not\n"+
			"live on any signer are assigned; a key live on a signer moves only by a takeover or after an unload.\n"+
			"A validator not live yet may be reassigned, or unassigned with --unassign (with --signer: only from NAME).\n"+
			"All selected validators are assigned, or none.")
	var pubkeys multiFlag
	fs.Var(&pubkeys, "pubkey", "this validator (repeatable)")
	requestID := fs.String("request-id", "", "the validators of this request")
	exportID := fs.String("export-id", "", "the validators whose deposits this export handed out (list --exports shows them)")
	signer := fs.String("signer", "", "the signer's name, as its loader claims keys (e.g. parent --watch --signer NAME)")
	unassign := fs.Bool("unassign", false, "remove the assignment instead")
	var bf backendFlags
	bf.register(fs, false)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	sel := 0
	for _, b := range []bool{len(pubkeys) > 0, *requestID != "", *exportID != ""} {
		if b {
			sel++
		}
	}
	if sel != 1 {
		return usagef("select the validators with one of --pubkey, --request-id or --export-id")
	}
	if *signer == "" && !*unassign {
		return usagef("--signer NAME is required (or --unassign)")
	}
	if err := checkSignerName(*signer); err != nil {
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
	bf.cfg.ExistingStore = true // nothing to assign in a store that is not there
	lc, err := openLifecycle(ctx, &bf, nil)
	if err != nil {
		return err
	}
	defer lc.Close()
	switch {
	case *exportID != "":
		if pks, err = lc.cust.ExportMembers(ctx, *exportID); err != nil {
			return err
		}
	case *requestID != "":
		for en, err := range lc.cust.List(ctx, store.Filter{RequestID: *requestID}) {
			if err != nil {
				return err
			}
			pks = append(pks, en.Record.Pubkey)
		}
	}
	if len(pks) == 0 {
		return fmt.Errorf("no validator selected (request %q holds none)", *requestID)
	}
	do, verb := lc.cust.Assign, "assigned"
	if *unassign {
		do = func(ctx context.Context, pks []string, from string) ([]custody.Assignment, error) {
			return lc.cust.Unassign(ctx, pks, from)
		}
		verb = "unassigned"
	}
	res, err := do(ctx, pks, *signer)
	if err != nil {
		return err
	}
	type out struct {
		Pubkey   string `json:"pubkey"`
		Signer   string `json:"signer"`
		Previous string `json:"previous,omitempty"`
		Changed  bool   `json:"changed"`
		Live     string `json:"live_on,omitempty"`
	}
	var outs []out
	changed := 0
	for _, a := range res {
		o := out{Pubkey: a.Pubkey, Previous: a.Previous, Changed: a.Changed}
		if a.Key != nil {
			o.Signer = a.Key.AssignedTo
			if a.Key.State == store.StatusDeposited || a.Key.State == store.StatusExitSigned {
				o.Live = a.Key.Signer
			}
		}
		if a.Changed {
			changed++
		}
		outs = append(outs, o)
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{verb: outs})
	}
	for _, o := range outs {
		what := verb
		switch {
		case o.Live != "":
			what = "live on " + o.Live
		case !o.Changed:
			what = "unchanged"
		}
		fmt.Fprintf(e.stdout, "0x%s\t%s\t%s\n", o.Pubkey, what, o.Signer)
	}
	fmt.Fprintf(e.stderr, "%d of %s %s\n", changed, plural(len(outs), "validator"), verb)
	return nil
}

// checkSignerName refuses names that would not read back as typed in a
// log line or the list output: control characters, leading or trailing
// space, more than store.MaxTextLen bytes.
func checkSignerName(s string) error {
	if len(s) > store.MaxTextLen {
		return usagef("--signer: longer than %d bytes", store.MaxTextLen)
	}
	if strings.TrimSpace(s) != s || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }) {
		return usagef("--signer %q: control characters and leading or trailing spaces are not allowed", s)
	}
	return nil
}
