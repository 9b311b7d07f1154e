// Package opsfile writes the files of the operations after the deposit
// (signed exits, BLS-to-execution changes) as the ethkeygen CLI writes
// them, so that every program that makes them (the CLI, the enclave's
// parent) writes the same bytes under the same names: ethstaker-deposit-
// cli's names and layout, an exit encrypted for Lido's validator ejector
// when a password is given. The messages come from package ops (pure);
// this package checks each file as written (parsed back and verified) and
// writes a batch all or none. It applies no lifecycle rule: custody's
// exit-signed mark comes before the caller writes.
package opsfile

import (
	"crypto/rand"
	"fmt"
	"path/filepath"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/ops"
)

// Exit is one signed exit with the pubkey that signed it.
type Exit struct {
	Exit    *ops.SignedVoluntaryExit
	Pubkey  []byte
	KeyPath string // the key's EIP-2334 path, when known
}

// Written is one exit file written.
type Written struct {
	ValidatorIndex uint64 `json:"validator_index"`
	Epoch          uint64 `json:"epoch"`
	Pubkey         string `json:"pubkey"`
	KeyPath        string `json:"key_path,omitempty"`
	File           string `json:"file"`
	Encrypted      bool   `json:"encrypted,omitempty"`
}

// ReadPassword reads the password file of encrypted exits as the project
// reads user-chosen passwords: one trailing newline dropped, at least
// keystore.MinPasswordLength characters after EIP-2335 normalisation
// (which drops control codes: the ejector, reading the file whole, gets
// the same key). Destroy it when done; it is never printed.
func ReadPassword(path string) (*keygen.Bytes, error) {
	raw, err := fsutil.ReadSecretFile(path)
	if err != nil {
		return nil, fmt.Errorf("exit encryption password file: %w", err)
	}
	pw := keygen.NewBytes(raw)
	if err := keystore.CheckPassword(string(pw.UnsafeBytes())); err != nil {
		pw.Destroy()
		return nil, fmt.Errorf("exit encryption password file: %w", err)
	}
	return pw, nil
}

// ExitFiles is the file of each exit (ops.MarshalExitFile), each parsed
// back and verified against its signing pubkey on n, then, with a
// password, encrypted for the ejector (ops.EncryptExitFile, whose
// encryption checks itself).
func ExitFiles(exits []Exit, n depositdata.Network, password *keygen.Bytes) ([][]byte, error) {
	files := make([][]byte, len(exits))
	for i, x := range exits {
		b, err := ops.MarshalExitFile(x.Exit)
		if err != nil {
			return nil, err
		}
		back, err := ops.ParseExit(b)
		if err != nil {
			return nil, fmt.Errorf("checking the exit file of validator %d: %w", x.Exit.Message.ValidatorIndex, err)
		}
		if err := ops.VerifyExit(back, x.Pubkey, n); err != nil {
			return nil, fmt.Errorf("checking the exit file: %w", err)
		}
		if password != nil {
			if b, err = ops.EncryptExitFile(rand.Reader, b, password.UnsafeBytes()); err != nil {
				return nil, err
			}
		}
		files[i] = b
	}
	return files, nil
}

// WriteExits writes files (ExitFiles') into dir, created 0700 if
// missing, as signed_exit_transaction-<index>-<ts>.json, all or none.
func WriteExits(dir string, exits []Exit, files [][]byte, ts int64, encrypted bool) ([]Written, error) {
	if len(files) != len(exits) {
		return nil, fmt.Errorf("opsfile: %d files for %d exits", len(files), len(exits))
	}
	if err := fsutil.EnsurePrivateDir(dir); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	var batch fsutil.Batch
	defer batch.Rollback()
	written := make([]Written, 0, len(exits))
	for i, x := range exits {
		vi := uint64(x.Exit.Message.ValidatorIndex)
		path := filepath.Join(dir, ops.ExitFileName(vi, ts))
		if err := batch.Write(path, files[i], 0o644); err != nil {
			return nil, fmt.Errorf("writing exit: %w", err)
		}
		written = append(written, Written{vi, uint64(x.Exit.Message.Epoch), fmt.Sprintf("0x%x", x.Pubkey), x.KeyPath, path, encrypted})
	}
	batch.Commit()
	return written, nil
}

// BLSChangeFile is the file of changes on n: ethstaker-deposit-cli's
// layout (with metadata), or the beacon API's list with beaconAPI. It is
// parsed back and every entry verified, and each entry's key must hash to
// the credentials it replaces (creds, in the changes' order).
func BLSChangeFile(changes []*ops.SignedBLSToExecutionChange, creds [][32]byte, n depositdata.Network, beaconAPI bool) ([]byte, error) {
	if len(creds) != len(changes) {
		return nil, fmt.Errorf("opsfile: %d credentials for %d changes", len(creds), len(changes))
	}
	var file []byte
	var err error
	if beaconAPI {
		file, err = ops.MarshalBLSChanges(changes)
	} else {
		file, err = ops.MarshalBLSChangeFile(changes, n, depositdata.DepositCLIVersion)
	}
	if err != nil {
		return nil, err
	}
	back, err := ops.VerifyBLSChangeFile(file, n)
	if err != nil {
		return nil, fmt.Errorf("checking the BLS change file: %w", err)
	}
	for k, c := range back {
		if err := ops.CheckBLSCredentials(creds[k], c.BLSToExecutionChange.FromBLSPubKey[:]); err != nil {
			return nil, fmt.Errorf("checking the BLS change file: %w", err)
		}
	}
	return file, nil
}

// WriteBLSChangeFile writes file (BLSChangeFile's) into dir, created 0700
// if missing, as bls_to_execution_change-<ts>.json, and returns its path.
func WriteBLSChangeFile(dir string, file []byte, ts int64) (string, error) {
	if err := fsutil.EnsurePrivateDir(dir); err != nil {
		return "", fmt.Errorf("output directory: %w", err)
	}
	path := filepath.Join(dir, ops.BLSChangeFileName(ts))
	if err := fsutil.WriteFileAtomic(path, file, 0o644); err != nil {
		return "", fmt.Errorf("writing BLS changes: %w", err)
	}
	return path, nil
}
