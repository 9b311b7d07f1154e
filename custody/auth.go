package custody

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store"
)

// ErrForged reports a record that was not made by this store's generator
// (its authenticator is missing, made by another key, or does not cover
// what the record holds now). The record is refused everywhere: no export,
// no load, no later operation.
var ErrForged = errors.New("custody: record not made by this store's generator")

// Origins of a record.
const (
	OriginGenerated = "generated" // made by our generator for a request
	OriginImported  = "imported"  // brought in from elsewhere (import)
)

// authDomain separates record authenticators from anything else the
// generator's key might sign.
const authDomain = "ethkeygen/record-authenticator/v1"

// authMessage is the canonical encoding of a record's public fields that
// the generator signs: every field that decides where a deposit's money
// goes or which secret a key is, each length-prefixed. The deposit JSON
// and the sealed blobs are covered by their SHA-256, so no byte of them can
// change (or be swapped with another record's) without breaking it. The
// status is not covered: custody keeps state in the ledger, not the record.
func authMessage(rec *store.Record) []byte {
	var b []byte
	put := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	sum := func(p []byte) string {
		if p == nil {
			return ""
		}
		h := sha256.Sum256(p)
		return string(h[:])
	}
	put(authDomain)
	put(rec.Pubkey)
	put(rec.RequestID)
	put(strconv.Itoa(rec.Slot))
	put(rec.Network)
	put(rec.WithdrawalCredentials)
	put(rec.Origin)
	put(sum(rec.DepositData))
	put(sum(rec.Sealed))
	put(sum(rec.SealedMnemonic))
	put(store.FormatTime(rec.CreatedAt))
	put(rec.Provenance.Version)
	put(rec.Provenance.BuildHash)
	return b
}

// signRecord sets rec's authenticator.
func signRecord(ctx context.Context, s provenance.Signer, rec *store.Record) error {
	rec.AuthKeyID = s.KeyID()
	sig, err := s.Sign(ctx, authMessage(rec))
	if err != nil {
		return fmt.Errorf("custody: signing the record of %s: %w", short(rec.Pubkey), err)
	}
	rec.Auth = sig
	return nil
}

// checkAuth refuses a record whose authenticator is missing, made by
// another key than v's, or does not verify. The error names the pubkey.
func checkAuth(v provenance.Verifier, rec *store.Record) error {
	switch {
	case len(rec.Auth) == 0:
		return fmt.Errorf("%w: 0x%s carries no authenticator", ErrForged, rec.Pubkey)
	case rec.AuthKeyID != v.KeyID():
		return fmt.Errorf("%w: 0x%s is signed by %q, not this store's generator key %q", ErrForged, rec.Pubkey, rec.AuthKeyID, v.KeyID())
	}
	if err := v.Verify(authMessage(rec), rec.Auth); err != nil {
		return fmt.Errorf("%w: 0x%s: its authenticator does not verify (the record was changed or planted)", ErrForged, rec.Pubkey)
	}
	return nil
}

// Encryption context keys custody binds each sealed secret to, besides the
// pubkey and the purpose: a sealed secret moved to another record, slot,
// request, network or withdrawal target does not open.
const (
	ContextRequestID   = "request_id"
	ContextSlot        = "slot"
	ContextNetwork     = "network"
	ContextCredentials = "withdrawal_credentials"
)

// EncryptionContextKeys are the keys of every sealed secret's encryption
// context (sorted; the envelope adds "format"): what a KMS key policy's
// kms:EncryptionContextKeys condition must allow.
func EncryptionContextKeys() []string {
	keys := []string{envelope.FormatKey}
	for k := range sealContext(&store.Record{}, PurposeSecret) {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sealContext is the encryption context of a record's secret (purpose
// PurposeSecret) or separately sealed mnemonic (PurposeMnemonic). It holds
// public data only: it appears in CloudTrail.
func sealContext(rec *store.Record, purpose string) envelope.Context {
	return envelope.Context{
		envelope.PubkeyKey:  rec.Pubkey,
		envelope.PurposeKey: purpose,
		ContextRequestID:    rec.RequestID,
		ContextSlot:         strconv.Itoa(rec.Slot),
		ContextNetwork:      rec.Network,
		ContextCredentials:  rec.WithdrawalCredentials,
	}
}
