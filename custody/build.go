package custody

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
)

// MaxCount bounds the validators of one request or one mnemonic run.
const MaxCount = 100_000

// ErrRequest reports a request that is invalid before any work starts.
var ErrRequest = errors.New("custody: invalid request")

// Withdrawal says where a validator's stake goes.
type Withdrawal struct {
	Address     *depositdata.Address // nil: 0x00 BLS credentials from the withdrawal key
	Compounding bool                 // 0x02 credentials (needs Address)
}

// Credentials returns the withdrawal credentials for validator keys v.
func (w Withdrawal) Credentials(v *keygen.ValidatorKeys) [32]byte {
	if w.Address == nil {
		return depositdata.BLSCredentials(v.WithdrawalPubkey)
	}
	return depositdata.ExecutionCredentials(*w.Address, w.Compounding)
}

func (w Withdrawal) check(amount uint64) error {
	if w.Compounding && w.Address == nil {
		return fmt.Errorf("%w: compounding (0x02) credentials need a withdrawal address", ErrRequest)
	}
	var c [32]byte
	switch {
	case w.Compounding:
		c[0] = depositdata.CompoundingWithdrawalPrefix
	case w.Address != nil:
		c[0] = depositdata.ExecutionWithdrawalPrefix
	}
	if err := depositdata.CheckAmount(amount, c); err != nil {
		return fmt.Errorf("%w: %w", ErrRequest, err)
	}
	// A 0x00 or 0x01 validator activates only with 32 ETH of effective
	// balance: a smaller deposit locks the stake in a validator that never
	// activates until topped up. Only 0x02 (compounding) takes other amounts.
	if !w.Compounding && amount != depositdata.MaxAmount {
		return fmt.Errorf("%w: %w: %d gwei: 0x00 and 0x01 validators take exactly 32 ETH (a smaller deposit never activates); "+
			"other amounts need compounding (0x02) credentials", ErrRequest, depositdata.ErrAmount, amount)
	}
	return nil
}

// MnemonicRequest asks for the keystores and deposits of validators
// StartIndex .. StartIndex+Count-1 of an existing mnemonic, as
// staking-deposit-cli's existing-mnemonic command makes them.
type MnemonicRequest struct {
	Seed       *keygen.Bytes // BIP-39 seed of the mnemonic (and passphrase)
	StartIndex uint32
	Count      int
	Network    depositdata.Network
	Withdrawal Withdrawal
	Amount     uint64 // gwei; 0 means 32 ETH
	KDF        keystore.KDF
	Password   *keygen.Bytes // keystore password, already checked by the caller
	MaxMemory  int64         // bytes; 0 means DefaultMaxMemory
	Random     io.Reader     // nil means crypto/rand

	// Progress, when set, is called after each validator with the number done.
	Progress func(done int)

	keystoreOpts []keystore.Option // tests lower the KDF cost
}

// Built is one validator's keystore and deposit.
type Built struct {
	Index    uint32
	Keystore *keystore.Keystore
	Deposit  *depositdata.Deposit
}

func (r *MnemonicRequest) check() error {
	if r.Count < 1 || r.Count > MaxCount {
		return fmt.Errorf("%w: count %d (want 1 to %d)", ErrRequest, r.Count, MaxCount)
	}
	if uint64(r.StartIndex)+uint64(r.Count)-1 > keygen.MaxIndex {
		return fmt.Errorf("%w: start index %d + count %d passes the last EIP-2334 index", ErrRequest, r.StartIndex, r.Count)
	}
	if r.Amount == 0 {
		r.Amount = depositdata.MaxAmount
	}
	if r.KDF == "" {
		r.KDF = keystore.Scrypt
	}
	if r.Seed == nil || r.Password == nil {
		return fmt.Errorf("%w: seed and password are required", ErrRequest)
	}
	return r.Withdrawal.check(r.Amount)
}

// kdfMemory is the memory one worker needs for kdf.
func kdfMemory(kdf keystore.KDF) int64 {
	if kdf == keystore.Scrypt {
		return ScryptWorkerMemory
	}
	return 16 << 20
}

// BuildFromMnemonic derives, encrypts, signs and verifies the validators of
// req on every core within req.MaxMemory, returning them in index order.
// Each keystore is verified without a second KDF run and each deposit is
// verified by an independent BLS implementation.
func BuildFromMnemonic(ctx context.Context, req MnemonicRequest) ([]*Built, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	random := req.Random
	if random == nil {
		random = rand.Reader
	}
	out := make([]*Built, req.Count)
	var done atomic.Int64
	err := forEach(ctx, req.Count, Workers(req.MaxMemory, kdfMemory(req.KDF)), func(ctx context.Context, i int) error {
		index := req.StartIndex + uint32(i)
		b, err := buildOne(req.Seed, index, req.Network, req.Withdrawal, req.Amount, req.KDF, req.Password, random, req.keystoreOpts)
		if err != nil {
			return err
		}
		out[i] = b
		if req.Progress != nil {
			req.Progress(int(done.Add(1)))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func buildOne(seed *keygen.Bytes, index uint32, network depositdata.Network, w Withdrawal, amount uint64,
	kdf keystore.KDF, password *keygen.Bytes, random io.Reader, extra []keystore.Option) (*Built, error) {
	v, err := keygen.DeriveValidator(seed, index)
	if err != nil {
		return nil, err
	}
	defer v.Destroy()
	dep, err := depositdata.Build(v.Signing, w.Credentials(v), amount, network)
	if err != nil {
		return nil, err
	}
	opts := append([]keystore.Option{keystore.WithKDF(kdf), keystore.WithPubkey(v.Signing.PublicKey()), keystore.WithPath(keygen.SigningPath(index))}, extra...)
	ks, err := keystore.Encrypt(random, v.Signing.UnsafeBytes(), password.UnsafeBytes(), opts...)
	if err != nil {
		return nil, err
	}
	return &Built{Index: index, Keystore: ks, Deposit: dep}, nil
}
