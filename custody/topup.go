package custody

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/ops"
	"github.com/ethkeygen/ethkeygen/store"
)

// Top-ups add stake to validators already on chain: one deposit of an
// amount per key, signed anew with the key and paying its recorded
// withdrawal credentials. A top-up is handed out through the export
// machinery like a key's own deposit, so that it too is handed out once: it
// is a top-up export in the ledger (store.Export.TopUpGwei), created and
// frozen before its file leaves custody, and the file is a pure function
// of the frozen export (deposit signatures are deterministic). Asking for the same
// top-up again (the same request id, or without one the same network, keys
// in the same order and amount) finds that export and returns the same
// bytes; a second top-up of the same keys and amount needs a new request
// id. Unlike a key's own deposit, a key can be in any number of top-ups.

// TopUpPrefix starts the export id of every top-up: topup-<request id>.
const TopUpPrefix = "topup-"

// TopUpExportID is the export id of the top-up with request id requestID.
func TopUpExportID(requestID string) string { return TopUpPrefix + requestID }

// TopUpRequest asks for a top-up deposit of AmountGwei for each of Pubkeys.
type TopUpRequest struct {
	// RequestID names the top-up (export TopUpExportID(RequestID)). Empty:
	// the id is derived from the network, Pubkeys in order and AmountGwei,
	// so that the same top-up asked twice is one top-up. Give a new one for
	// a second top-up of the same keys and amount.
	RequestID string
	// Pubkeys are the validators (lowercase hex, no 0x), in file order.
	// With RequestID of an existing top-up they may be left out (with
	// AmountGwei): that top-up is written again.
	Pubkeys    []string
	AmountGwei uint64
	// MaxMemory bounds the memory used to open keystores (0:
	// DefaultMaxMemory); Progress, if set, is told how many keys are open.
	MaxMemory int64
	Progress  func(done int)
}

// DeriveTopUpID is the export id of a top-up asked for without a request
// id: a digest of the network, the pubkeys in order and the amount.
func DeriveTopUpID(network string, pubkeys []string, amountGwei uint64) string {
	h := sha256.New()
	h.Write([]byte("ethkeygen top-up v1\x00" + network + "\x00" + strconv.FormatUint(amountGwei, 10) + "\x00"))
	h.Write([]byte(strings.Join(pubkeys, ",")))
	return TopUpExportID(hex.EncodeToString(h.Sum(nil)[:12]))
}

// topUpRequestID is the request id that names top-up export e again.
func topUpRequestID(e *store.Export) string { return strings.TrimPrefix(e.ID, TopUpPrefix) }

// errTopUpExport refuses to build the file of a top-up export without its
// keys (export-deposits --export-id).
func errTopUpExport(e *store.Export) error {
	return fmt.Errorf("%w: export %s is a top-up (%d deposit(s) of %d gwei): its deposits are signed with the keys, so write it again in protected compute with top-up --request-id %s",
		ErrRequest, e.ID, len(e.Candidates), e.TopUpGwei, topUpRequestID(e))
}

// TopUp hands out a top-up: one deposit of req.AmountGwei for each of
// req.Pubkeys, in order. Every key must be one an operation may sign for
// (CheckSignable: not retired, not forged, its deposit handed out) and not
// exit-signed; the amount must suit each key's credentials
// (depositdata.CheckAmount); the keys must be of one network. The keys are
// opened with op, the deposits signed (ops.TopUp) and the file verified
// entry by entry; then the top-up export is created (or found: the same
// top-up asked again) and frozen, and only then is the file returned.
// Re-running a top-up, interrupted or not, returns the same file under the
// same export; an export of that id with other keys or another amount is
// refused. The result's Resumed is set when the top-up existed before this
// call.
func (c *Custodian) TopUp(ctx context.Context, op envelope.Opener, req TopUpRequest) (*ExportResult, error) {
	if op == nil {
		return nil, fmt.Errorf("%w: a top-up needs the opener of the sealed keys", ErrRequest)
	}
	if err := store.ValidatePubkeys("top-up", req.Pubkeys); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRequest, err)
	}
	if err := c.checkIdentity(ctx); err != nil {
		return nil, err
	}
	var (
		e       *store.Export
		resumed bool
		id      string
	)
	if req.RequestID != "" {
		id = TopUpExportID(req.RequestID)
		if err := store.ValidateExportID(id); err != nil {
			return nil, fmt.Errorf("%w: top-up request id %q: %w", ErrRequest, req.RequestID, err)
		}
		got, err := c.ledger.GetExport(ctx, id)
		switch {
		case err == nil:
			if err := sameTopUp(got, req.Pubkeys, req.AmountGwei); err != nil {
				return nil, err
			}
			e, resumed = got, true
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("custody: reading top-up %s: %w", id, err)
		}
	}
	pubkeys, amount := req.Pubkeys, req.AmountGwei
	if e != nil {
		pubkeys, amount = e.Candidates, e.TopUpGwei
	}
	switch {
	case len(pubkeys) == 0 && req.RequestID != "":
		return nil, fmt.Errorf("%w: there is no top-up %s: give the validators and the amount", ErrRequest, id)
	case len(pubkeys) == 0:
		return nil, fmt.Errorf("%w: no validator to top up", ErrRequest)
	case amount == 0:
		return nil, fmt.Errorf("%w: give the amount of each top-up deposit", ErrRequest)
	}
	// Checked on every run, a re-written top-up too: the file is signed
	// again now.
	keys, n, err := c.topUpKeys(ctx, pubkeys, amount)
	if err != nil {
		return nil, err
	}
	if e != nil && e.Network != n.Name {
		return nil, fmt.Errorf("custody: top-up %s is for %s, its keys are %s validators", e.ID, e.Network, n.Name)
	}
	if id == "" {
		id = DeriveTopUpID(n.Name, pubkeys, amount)
	}
	// Signed before the ledger records the top-up, so that a run that
	// cannot open the keys records nothing; the file leaves custody only
	// once the top-up is recorded and frozen.
	res, err := c.signTopUp(ctx, op, id, keys, amount, n, req)
	if err != nil {
		return nil, err
	}
	if e == nil {
		ne := &store.Export{ID: id, CreatedAt: c.clock(), Network: n.Name, Candidates: pubkeys, By: c.by, TopUpGwei: amount}
		stored, err := c.ledger.CreateExport(ctx, ne)
		switch {
		case errors.Is(err, store.ErrExists):
			// Asked before (or by a concurrent run): the stored one rules.
			if err := sameTopUp(stored, pubkeys, amount); err != nil {
				return nil, err
			}
			e, resumed = stored, true
		case err != nil:
			return nil, fmt.Errorf("custody: recording top-up %s: %w", id, err)
		default:
			e = stored
		}
	}
	if !e.Sealed {
		// Frozen at once (also an interrupted one): members = candidates.
		if err := c.ledger.SealExport(ctx, e.ID, e.Candidates, 0); err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("custody: top-up %s: freezing it: %w", e.ID, err)
		}
		if e, err = c.ledger.GetExport(ctx, id); err != nil {
			return nil, fmt.Errorf("custody: top-up %s: %w", id, err)
		}
		if !e.Sealed {
			return nil, fmt.Errorf("custody: top-up %s could not be frozen; run it again", e.ID)
		}
	}
	if !slices.Equal(e.Members, pubkeys) || e.TopUpGwei != amount || e.Network != n.Name {
		return nil, fmt.Errorf("custody: top-up %s was frozen with other members, amount or network than the deposits signed", e.ID)
	}
	res.Export, res.FileName, res.Resumed = e, ExportFileName(e), resumed
	return res, nil
}

// sameTopUp checks that e is the top-up of pubkeys (unless none are given)
// and amount (unless 0).
func sameTopUp(e *store.Export, pubkeys []string, amount uint64) error {
	if !e.TopUp() {
		return fmt.Errorf("%w: export %s holds generated deposits, not a top-up: choose another request id", ErrRequest, e.ID)
	}
	if (len(pubkeys) > 0 && !slices.Equal(e.Candidates, pubkeys)) || (amount != 0 && amount != e.TopUpGwei) {
		return fmt.Errorf("%w: top-up %s exists with other validators or another amount (%d deposit(s) of %d gwei): a new top-up needs a new request id",
			ErrRequest, e.ID, len(e.Candidates), e.TopUpGwei)
	}
	return nil
}

// topUpKey is one validator of a top-up.
type topUpKey struct {
	rec   *store.Record
	creds [32]byte
}

// topUpKeys checks the validators of a top-up: each signable and not
// exit-signed, with credentials the amount suits, all of one network.
func (c *Custodian) topUpKeys(ctx context.Context, pubkeys []string, amount uint64) ([]topUpKey, depositdata.Network, error) {
	var n depositdata.Network
	out := make([]topUpKey, 0, len(pubkeys))
	for i, pk := range pubkeys {
		rec, ks, err := c.CheckSignable(ctx, pk)
		if err != nil {
			return nil, n, err
		}
		if ks != nil && ks.State == store.StatusExitSigned {
			return nil, n, fmt.Errorf("%w: 0x%s is exit-signed: a top-up of an exiting validator adds no stake (the deposit is only withdrawn again with its balance)", ErrState, pk)
		}
		b, err := hex.DecodeString(rec.WithdrawalCredentials)
		if err != nil || len(b) != 32 {
			return nil, n, fmt.Errorf("%w: 0x%s has no recorded withdrawal credentials (imported without a deposit): a top-up cannot be signed for it", ErrState, pk)
		}
		creds := [32]byte(b)
		if err := depositdata.CheckAmount(amount, creds); err != nil {
			return nil, n, fmt.Errorf("%w: 0x%s: %w", ErrRequest, pk, err)
		}
		if i == 0 {
			if n, err = recordNetwork(rec); err != nil {
				return nil, n, err
			}
		} else if rec.Network != n.Name {
			return nil, n, fmt.Errorf("%w: the top-up holds %s and %s validators: choose one network", ErrRequest, n.Name, rec.Network)
		}
		out = append(out, topUpKey{rec, creds})
	}
	return out, n, nil
}

// recordNetwork is the network rec's deposits are signed for: a known one,
// or a devnet with the fork version of the record's own deposit.
func recordNetwork(rec *store.Record) (depositdata.Network, error) {
	if n, err := depositdata.NetworkByName(rec.Network); err == nil {
		return n, nil
	}
	if len(rec.DepositData) == 0 {
		return depositdata.Network{}, fmt.Errorf("%w: 0x%s is on the devnet %s and has no deposit to take its fork version from", ErrState, rec.Pubkey, rec.Network)
	}
	v, err := ValidatorOf(rec)
	if err != nil {
		return depositdata.Network{}, err
	}
	return depositdata.CustomNetwork(rec.Network, v.Deposit.ForkVersion)
}

// signTopUp opens the keys of top-up id, signs their deposits of amount
// and checks the file: every entry verifies and is the deposit asked for.
// The result has no Export yet.
func (c *Custodian) signTopUp(ctx context.Context, op envelope.Opener, id string, keys []topUpKey, amount uint64, n depositdata.Network, req TopUpRequest) (*ExportResult, error) {
	maxMem := req.MaxMemory
	if maxMem <= 0 {
		maxMem = DefaultMaxMemory
	}
	recs := make([]*store.Record, len(keys))
	for i, k := range keys {
		recs[i] = k.rec
	}
	secrets, err := c.Opener(op).OpenRecords(ctx, recs, maxMem, req.Progress)
	if err != nil {
		return nil, err
	}
	deposits := make([]*depositdata.Deposit, len(keys))
	for i, s := range secrets {
		if deposits[i], err = ops.TopUp(s.SigningKey(), keys[i].creds, amount, n); err != nil {
			err = fmt.Errorf("custody: top-up %s: 0x%s: %w", id, keys[i].rec.Pubkey, err)
			break
		}
	}
	for _, s := range secrets {
		s.Destroy()
	}
	if err != nil {
		return nil, err
	}
	file, err := depositdata.MarshalFile(deposits)
	if err != nil {
		return nil, err
	}
	back, errs := depositdata.VerifyFile(file, &n)
	if len(errs) > 0 {
		return nil, fmt.Errorf("custody: top-up %s: checking its file: %w", id, errs[0])
	}
	if len(back) != len(keys) {
		return nil, fmt.Errorf("custody: top-up %s: its file holds %d deposits, not %d", id, len(back), len(keys))
	}
	sums := map[[2]string]*TargetSummary{}
	for i, d := range back {
		r := keys[i].rec
		if d.Pubkey != r.Pubkey || d.Amount != amount || d.WithdrawalCredentials != r.WithdrawalCredentials || d.NetworkName != n.Name {
			return nil, fmt.Errorf("custody: top-up %s: entry %d of its file is not the deposit signed for 0x%s", id, i, r.Pubkey)
		}
		to := d.WithdrawalCredentials
		if keys[i].creds[0] == depositdata.BLSWithdrawalPrefix {
			to = store.BLSTarget // each its own 0x00 credentials: one line for all
		}
		k := [2]string{to, strconv.FormatUint(d.Amount, 10)}
		if sums[k] == nil {
			sums[k] = &TargetSummary{WithdrawalCredentials: to, AmountGwei: d.Amount}
		}
		sums[k].Count++
	}
	res := &ExportResult{Deposits: deposits, File: file}
	for _, s := range sums {
		res.Summary = append(res.Summary, *s)
	}
	slices.SortFunc(res.Summary, func(a, b TargetSummary) int { return strings.Compare(a.WithdrawalCredentials, b.WithdrawalCredentials) })
	return res, nil
}
