package ops

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	blsu "github.com/protolambda/bls12-381-util"
	"github.com/protolambda/zrnt/eth2/beacon/common"
	"github.com/protolambda/zrnt/eth2/beacon/phase0"
	"github.com/protolambda/ztyp/tree"

	"github.com/ethkeygen/ethkeygen/depositdata"
)

// The SSZ messages, as zrnt defines them.
type (
	VoluntaryExit              = phase0.VoluntaryExit
	SignedVoluntaryExit        = phase0.SignedVoluntaryExit
	BLSToExecutionChange       = common.BLSToExecutionChange
	SignedBLSToExecutionChange = common.SignedBLSToExecutionChange
)

// Signer is an opened BLS key: keygen.SecretKey satisfies it.
type Signer = depositdata.Signer

// Bounds of the numbers in a message.
const (
	// MaxValidatorIndex is the last index the validator registry can hold
	// (VALIDATOR_REGISTRY_LIMIT - 1).
	MaxValidatorIndex uint64 = 1<<40 - 1
	// MaxEpoch bounds an exit's epoch: 2^32 epochs are over 50,000 years of
	// mainnet, so anything later is a mistake, not a plan.
	MaxEpoch uint64 = 1<<32 - 1
)

// Errors.
var (
	ErrInvalid     = errors.New("ops: invalid message")
	ErrSignature   = errors.New("ops: signature does not verify")
	ErrCredentials = errors.New("ops: withdrawal credentials do not allow this change")
	ErrRange       = errors.New("ops: number out of range")
)

func checkChain(n depositdata.Network) error {
	if !n.HasChainRoots() {
		return fmt.Errorf("%w: %s (give --capella-fork-version and --genesis-validators-root for a devnet)", depositdata.ErrNoChainRoots, n.Name)
	}
	return nil
}

// ExitDomain is compute_domain(DOMAIN_VOLUNTARY_EXIT, CAPELLA_FORK_VERSION,
// genesis_validators_root) (EIP-7044).
func ExitDomain(n depositdata.Network) (common.BLSDomain, error) {
	if err := checkChain(n); err != nil {
		return common.BLSDomain{}, err
	}
	return common.ComputeDomain(common.DOMAIN_VOLUNTARY_EXIT, common.Version(n.CapellaForkVersion), common.Root(n.GenesisValidatorsRoot)), nil
}

// BLSChangeDomain is compute_domain(DOMAIN_BLS_TO_EXECUTION_CHANGE,
// GENESIS_FORK_VERSION, genesis_validators_root).
func BLSChangeDomain(n depositdata.Network) (common.BLSDomain, error) {
	if err := checkChain(n); err != nil {
		return common.BLSDomain{}, err
	}
	return common.ComputeDomain(common.DOMAIN_BLS_TO_EXECUTION_CHANGE, common.Version(n.ForkVersion), common.Root(n.GenesisValidatorsRoot)), nil
}

// CheckEpoch refuses epochs past MaxEpoch.
func CheckEpoch(epoch uint64) error {
	if epoch > MaxEpoch {
		return fmt.Errorf("%w: epoch %d is past %d", ErrRange, epoch, MaxEpoch)
	}
	return nil
}

// CheckValidatorIndex refuses indices the registry cannot hold.
func CheckValidatorIndex(index uint64) error {
	if index > MaxValidatorIndex {
		return fmt.Errorf("%w: validator index %d is past %d", ErrRange, index, MaxValidatorIndex)
	}
	return nil
}

// ExitSigningRoot is the root an exit's signature signs.
func ExitSigningRoot(m *VoluntaryExit, n depositdata.Network) (common.Root, error) {
	dom, err := ExitDomain(n)
	if err != nil {
		return common.Root{}, err
	}
	return common.ComputeSigningRoot(m.HashTreeRoot(tree.GetHashFn()), dom), nil
}

// BLSChangeSigningRoot is the root a BLS change's signature signs.
func BLSChangeSigningRoot(m *BLSToExecutionChange, n depositdata.Network) (common.Root, error) {
	dom, err := BLSChangeDomain(n)
	if err != nil {
		return common.Root{}, err
	}
	return common.ComputeSigningRoot(m.HashTreeRoot(tree.GetHashFn()), dom), nil
}

func verifySig(pubkey []byte, root common.Root, sig common.BLSSignature) error {
	if len(pubkey) != 48 {
		return fmt.Errorf("%w: pubkey has %d bytes, want 48", ErrInvalid, len(pubkey))
	}
	pk := common.BLSPubkey(pubkey)
	pub, err := pk.Pubkey()
	if err != nil {
		return fmt.Errorf("%w: pubkey is not a valid BLS12-381 point", ErrInvalid)
	}
	s, err := sig.Signature()
	if err != nil {
		return fmt.Errorf("%w: signature is not a valid BLS12-381 point", ErrSignature)
	}
	if !blsu.Verify(pub, root[:], s) {
		return ErrSignature
	}
	return nil
}

// SignExit signs a voluntary exit of validatorIndex, valid from epoch on,
// with the validator's signing key (m/12381/3600/i/0/0) on network n, and
// verifies it (independent BLS implementation) before returning it.
//
// This is the seam for custody: key is an opened signing key; the result
// is public.
func SignExit(key Signer, validatorIndex, epoch uint64, n depositdata.Network) (*SignedVoluntaryExit, error) {
	if err := CheckValidatorIndex(validatorIndex); err != nil {
		return nil, err
	}
	if err := CheckEpoch(epoch); err != nil {
		return nil, err
	}
	m := VoluntaryExit{Epoch: common.Epoch(epoch), ValidatorIndex: common.ValidatorIndex(validatorIndex)}
	root, err := ExitSigningRoot(&m, n)
	if err != nil {
		return nil, err
	}
	out := &SignedVoluntaryExit{Message: m}
	copy(out.Signature[:], key.Sign(root[:]))
	if err := VerifyExit(out, key.PublicKey(), n); err != nil {
		return nil, fmt.Errorf("ops: self-check of a new exit failed: %w", err)
	}
	return out, nil
}

// VerifyExit checks e's ranges and its signature by the validator pubkey
// (48 bytes) under n's exit domain.
func VerifyExit(e *SignedVoluntaryExit, pubkey []byte, n depositdata.Network) error {
	if err := CheckValidatorIndex(uint64(e.Message.ValidatorIndex)); err != nil {
		return err
	}
	if err := CheckEpoch(uint64(e.Message.Epoch)); err != nil {
		return err
	}
	root, err := ExitSigningRoot(&e.Message, n)
	if err != nil {
		return err
	}
	if err := verifySig(pubkey, root, e.Signature); err != nil {
		return fmt.Errorf("exit of validator %d on %s: %w", e.Message.ValidatorIndex, n.Name, err)
	}
	return nil
}

// CheckBLSCredentials checks that credentials are 0x00 credentials of
// withdrawalPubkey: sha256(pubkey) with the first byte replaced by 0x00.
// 0x01/0x02 credentials already point at an address and cannot change.
func CheckBLSCredentials(credentials [32]byte, withdrawalPubkey []byte) error {
	if credentials[0] != depositdata.BLSWithdrawalPrefix {
		return fmt.Errorf("%w: credentials 0x%x have prefix 0x%02x, only 0x00 (BLS) credentials can be changed", ErrCredentials, credentials, credentials[0])
	}
	h := sha256.Sum256(withdrawalPubkey)
	if !bytes.Equal(h[1:], credentials[1:]) {
		return fmt.Errorf("%w: credentials 0x%x are not those of withdrawal key 0x%x", ErrCredentials, credentials, withdrawalPubkey)
	}
	return nil
}

// SignBLSChange signs the change of validatorIndex's 0x00 credentials to
// the execution address to, with the withdrawal key (m/12381/3600/i/0),
// after checking that the key's pubkey hashes to credentials; it verifies
// the result before returning it.
//
// This is the seam for custody: withdrawalKey is an opened withdrawal key,
// credentials the validator's current (on-chain or recorded) credentials.
func SignBLSChange(withdrawalKey Signer, validatorIndex uint64, credentials [32]byte, to depositdata.Address, n depositdata.Network) (*SignedBLSToExecutionChange, error) {
	if err := CheckValidatorIndex(validatorIndex); err != nil {
		return nil, err
	}
	pub := withdrawalKey.PublicKey()
	if err := CheckBLSCredentials(credentials, pub); err != nil {
		return nil, err
	}
	m := BLSToExecutionChange{ValidatorIndex: common.ValidatorIndex(validatorIndex), ToExecutionAddress: common.Eth1Address(to)}
	copy(m.FromBLSPubKey[:], pub)
	root, err := BLSChangeSigningRoot(&m, n)
	if err != nil {
		return nil, err
	}
	out := &SignedBLSToExecutionChange{BLSToExecutionChange: m}
	copy(out.Signature[:], withdrawalKey.Sign(root[:]))
	if err := VerifyBLSChange(out, n); err != nil {
		return nil, fmt.Errorf("ops: self-check of a new BLS change failed: %w", err)
	}
	return out, nil
}

// VerifyBLSChange checks c's signature by its from_bls_pubkey under n's
// BLS-change domain. Whether that key matches a validator's credentials is
// CheckBLSCredentials's question.
func VerifyBLSChange(c *SignedBLSToExecutionChange, n depositdata.Network) error {
	if err := CheckValidatorIndex(uint64(c.BLSToExecutionChange.ValidatorIndex)); err != nil {
		return err
	}
	root, err := BLSChangeSigningRoot(&c.BLSToExecutionChange, n)
	if err != nil {
		return err
	}
	if err := verifySig(c.BLSToExecutionChange.FromBLSPubKey[:], root, c.Signature); err != nil {
		return fmt.Errorf("BLS change of validator %d on %s: %w", c.BLSToExecutionChange.ValidatorIndex, n.Name, err)
	}
	return nil
}

// TopUp is a deposit of amount gwei to the existing validator of key, with
// the validator's current credentials, verified like every deposit
// (depositdata.Build). The beacon chain adds a deposit for a known pubkey to
// that validator's balance (it checks no signature and ignores the
// credentials for a known pubkey, but the deposit contract and the
// Launchpad want a complete deposit, so it is signed as a new one would
// be). Amounts: at least 1 ETH (the deposit contract's minimum); at most
// 32 ETH for 0x00/0x01 credentials and 2048 ETH for 0x02, the maximum
// effective balances: a 0x00/0x01 balance above 32 ETH earns nothing.
//
// This is the seam for custody: key is an opened signing key.
func TopUp(key Signer, credentials [32]byte, amount uint64, n depositdata.Network) (*depositdata.Deposit, error) {
	return depositdata.Build(key, credentials, amount, n)
}
