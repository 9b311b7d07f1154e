package web3signer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
)

// Handoff is one key made ready for a signer that receives the password
// with the keystore: a keystore under the cheapest KDF EIP-2335 allows
// (keystore.WithHandoffKDF: pbkdf2, c=1) and its fresh random password.
// Call Destroy when done.
type Handoff struct {
	Pubkey   string             // 96 lowercase hex, no 0x
	Keystore *keystore.Keystore // public data, but opens with Password at no cost
	JSON     []byte             // Keystore encoded (EIP-2335 JSON)
	Password *keygen.Bytes
}

// Destroy clears the password.
func (h *Handoff) Destroy() {
	if h != nil {
		h.Password.Destroy()
	}
}

// Key is the hand-off as a Key for WriteKeyDir (the keystore and its
// password; no KDF runs when it is written).
func (h *Handoff) Key() Key {
	return Key{Pubkey: h.Pubkey, Keystore: h.Keystore, Password: h.Password.UnsafeBytes()}
}

// HandoffKeystore encrypts sk, whose public key is pubkey (48 bytes, as the
// caller has already checked: it is not derived again here), into a
// hand-off keystore recording path (the EIP-2334 path, or ""), under a
// fresh random password. It returns the keystore JSON and the password.
//
// It runs no costly KDF, which is safe only because the password travels
// or is stored with the keystore (a Keymanager API request; a key
// directory that holds the password files): see the package's Security
// notes. It never decrypts anything, so it has nothing to verify with a
// second KDF run: sk came out of an authenticated envelope.
func HandoffKeystore(sk *keygen.SecretKey, pubkey []byte, path string) ([]byte, *keygen.Bytes, error) {
	h, err := newHandoff(rand.Reader, sk, pubkey, path)
	if err != nil {
		return nil, nil, err
	}
	return h.JSON, h.Password, nil
}

func newHandoff(random io.Reader, sk *keygen.SecretKey, pubkey []byte, path string) (*Handoff, error) {
	if sk == nil || len(pubkey) != 48 {
		return nil, fmt.Errorf("%w: a hand-off needs the secret key and its 48-byte pubkey", ErrKey)
	}
	pw, err := keystore.RandomPassword(random)
	if err != nil {
		return nil, fmt.Errorf("web3signer: %w", err)
	}
	ks, err := keystore.Encrypt(random, sk.UnsafeBytes(), pw.UnsafeBytes(), keystore.WithPubkey(pubkey), keystore.WithPath(path), keystore.WithHandoffKDF())
	if err != nil {
		pw.Destroy()
		return nil, fmt.Errorf("web3signer: encrypting a hand-off keystore: %w", err)
	}
	js, err := ks.Marshal()
	if err != nil {
		pw.Destroy()
		return nil, fmt.Errorf("web3signer: encoding a hand-off keystore: %w", err)
	}
	return &Handoff{Pubkey: hex.EncodeToString(pubkey), Keystore: ks, JSON: js, Password: pw}, nil
}

// Opened is one key as an open function hands it to PrepareHandoffs.
type Opened struct {
	Pubkey    string            // hex, "0x" optional; the key's checked public key
	SecretKey *keygen.SecretKey // the signing key
	Path      string            // EIP-2334 path, or ""
	// Release, if set, is called once the hand-off keystore is made (or
	// the work is abandoned): it destroys the opened secret.
	Release func()
}

// PrepareHandoffs opens n keys with open (i from 0 to n-1) and makes a
// hand-off keystore of each, on workers goroutines (GOMAXPROCS if workers
// <= 0). Each worker holds one opened secret at a time: the caller bounds
// memory by its choice of workers (custody.Workers(maxMemory,
// custody.ScryptWorkerMemory) when opening runs scrypt; GOMAXPROCS for
// raw-format secrets, whose opening runs no KDF).
//
// An open function that returns a zero Opened and a nil error skips key i
// (its entry in the result is nil): it records why itself, so that every
// key can be tried and each failure reported.
//
// The result is in the order of i. On the first error, or when ctx ends,
// it stops handing out work, waits only for the calls in flight, destroys
// every hand-off made, and returns the error (ctx.Err() on cancellation).
func PrepareHandoffs(ctx context.Context, n, workers int, open func(ctx context.Context, i int) (Opened, error)) ([]*Handoff, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	out := make([]*Handoff, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	fail := func(err error) { once.Do(func() { firstErr = err; cancel() }) }
	next := make(chan int)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if ctx.Err() != nil {
					continue // drain: the feeder stops soon
				}
				h, err := prepareOne(ctx, i, open)
				if err != nil {
					fail(err)
					continue
				}
				out[i] = h
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	err := firstErr
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		for _, h := range out {
			h.Destroy()
		}
		return nil, err
	}
	return out, nil
}

func prepareOne(ctx context.Context, i int, open func(ctx context.Context, i int) (Opened, error)) (*Handoff, error) {
	o, err := open(ctx, i)
	if o.Release != nil {
		defer o.Release()
	}
	if err != nil {
		return nil, err
	}
	if o.Pubkey == "" && o.SecretKey == nil {
		return nil, nil // skipped by the open function, which records why
	}
	pk, err := NormalizePubkey(o.Pubkey)
	if err != nil {
		return nil, err
	}
	if o.SecretKey == nil {
		return nil, fmt.Errorf("%w: no secret key opened for 0x%s", ErrKey, pk[:16])
	}
	pkb, _ := hex.DecodeString(pk)
	return newHandoff(rand.Reader, o.SecretKey, pkb, o.Path)
}
