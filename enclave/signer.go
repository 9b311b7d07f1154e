package enclave

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ethkeygen/ethkeygen/internal/fsutil"
	"github.com/ethkeygen/ethkeygen/web3signer"
	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

// Signer is the running signer that loaded keys go to: Web3Signer (key
// directory plus POST /reload, or its Keymanager API) or a validator
// client's Keymanager API. The enclave calls Load once per accepted load
// request, for as long as it runs: keys reach the signer without a
// restart.
type Signer interface {
	// Load hands keys (hand-off keystores and their passwords: they
	// travel together) and the EIP-3076 interchange of their history
	// (root already checked) to the signer. It returns, per key in
	// order, whether the key is now live on the signer and, if not, a
	// fixed non-secret reason; err means no key was loaded.
	Load(ctx context.Context, keys []*web3signer.Handoff, root [32]byte, interchange []byte) ([]Outcome, error)
}

// Outcome is what the signer did with one key.
type Outcome struct {
	Loaded bool
	Reason string // when not loaded: a fixed, non-secret phrase
}

// KeyDirSigner writes keys into Web3Signer's key directory (an in-memory
// filesystem) and the cumulative interchange of every key loaded so far
// to InterchangeFile, then, if ReloadURL is set, asks Web3Signer to load
// the new files (POST /reload, e.g. http://127.0.0.1:9000/reload).
// All-or-nothing per load; a key already in the directory fails the load
// (no file is ever replaced).
type KeyDirSigner struct {
	Dir             string
	InterchangeFile string
	ReloadURL       string
	HTTPClient      *http.Client // nil: a client with a 30 s timeout
}

// Load implements Signer.
func (s *KeyDirSigner) Load(ctx context.Context, keys []*web3signer.Handoff, root [32]byte, interchange []byte) ([]Outcome, error) {
	if s.Dir == "" || s.InterchangeFile == "" {
		return nil, errors.New("enclave: KeyDirSigner needs Dir and InterchangeFile")
	}
	// The interchange file holds every key this signer was given, so
	// whatever imports it (at start or after a reload) sees them all.
	merged, err := mergeInterchange(s.InterchangeFile, root, interchange)
	if err != nil {
		return nil, err
	}
	wk := make([]web3signer.Key, len(keys))
	for i, k := range keys {
		wk[i] = k.Key()
	}
	if err := os.MkdirAll(filepath.Dir(s.InterchangeFile), 0o700); err != nil {
		return nil, fmt.Errorf("enclave: interchange directory: %w", err)
	}
	old, readErr := os.ReadFile(s.InterchangeFile)
	if err := fsutil.ReplaceFileAtomic(s.InterchangeFile, merged, 0o600); err != nil {
		return nil, fmt.Errorf("enclave: writing the interchange: %w", err)
	}
	if err := web3signer.WriteKeyDir(s.Dir, wk, web3signer.AllowNonEmpty()); err != nil {
		// Put the interchange back as it was.
		if readErr == nil {
			_ = fsutil.ReplaceFileAtomic(s.InterchangeFile, old, 0o600)
		} else {
			_ = os.Remove(s.InterchangeFile)
		}
		return nil, err
	}
	out := make([]Outcome, len(keys))
	for i := range out {
		out[i].Loaded = true
	}
	if s.ReloadURL != "" {
		if err := s.reload(ctx); err != nil {
			// The files are in place: Web3Signer loads them at its next
			// reload or start. Say so rather than pretend.
			for i := range out {
				out[i] = Outcome{Reason: "written to the key directory, but the signer's reload failed"}
			}
		}
	}
	return out, nil
}

func (s *KeyDirSigner) reload(ctx context.Context) error {
	c := s.HTTPClient
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.ReloadURL, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("reload: %s", resp.Status)
	}
	return nil
}

// mergeInterchange returns the interchange of the keys already in file
// (if it exists) and of the new document, for root.
func mergeInterchange(file string, root [32]byte, interchange []byte) ([]byte, error) {
	add, err := web3signer.ParseInterchange(interchange, root)
	if err != nil {
		return nil, err
	}
	var keys []web3signer.KeyHistory
	index := map[string]int{}
	addDoc := func(doc *web3signer.Interchange, raw []byte) {
		for _, d := range doc.Data {
			if _, ok := index[d.Pubkey]; !ok {
				index[d.Pubkey] = len(keys)
				keys = append(keys, web3signer.KeyHistory{Pubkey: d.Pubkey, Previous: raw})
			}
		}
	}
	if b, err := os.ReadFile(file); err == nil {
		have, err := web3signer.ParseInterchange(b, root)
		if err != nil {
			return nil, fmt.Errorf("enclave: the interchange file already written: %w", err)
		}
		addDoc(have, b)
		for _, d := range add.Data {
			if _, ok := index[d.Pubkey]; ok {
				return nil, fmt.Errorf("enclave: key %s was loaded here before", short(strings.TrimPrefix(d.Pubkey, "0x")))
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("enclave: reading the interchange file: %w", err)
	}
	addDoc(add, interchange)
	return web3signer.BuildInterchange(root, keys)
}

// KeymanagerSigner imports keys through a Keymanager API (Web3Signer with
// --key-manager-api-enabled, or a validator client). An import is not
// atomic on the server: each key's outcome is reported as the server gave
// it ("duplicate" is not a load: the signer already held the key).
type KeymanagerSigner struct {
	Client *keymanager.Client
}

// Load implements Signer.
func (s *KeymanagerSigner) Load(ctx context.Context, keys []*web3signer.Handoff, _ [32]byte, interchange []byte) ([]Outcome, error) {
	kms := make([]keymanager.Keystore, len(keys))
	for i, k := range keys {
		kms[i] = keymanager.Keystore{JSON: k.JSON, Password: k.Password.UnsafeBytes()}
	}
	res, err := s.Client.Import(ctx, kms, interchange)
	if err != nil {
		return nil, err
	}
	out := make([]Outcome, len(res))
	for i, r := range res {
		switch r.Status {
		case keymanager.Imported:
			out[i].Loaded = true
		case keymanager.Duplicate:
			out[i].Reason = "the signer already held this key (duplicate): not loaded by this request"
		default:
			out[i].Reason = "the signer refused this key"
		}
	}
	return out, nil
}
