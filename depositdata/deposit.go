package depositdata

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	blsu "github.com/protolambda/bls12-381-util"
	"github.com/protolambda/zrnt/eth2/beacon/common"
	"github.com/protolambda/ztyp/tree"

	"github.com/ethkeygen/ethkeygen/internal/pyjson"
	"github.com/ethkeygen/ethkeygen/internal/version"
)

// Amounts in gwei.
const (
	GweiPerETH           uint64 = 1_000_000_000
	MinAmount                   = 1 * GweiPerETH
	MaxAmount                   = 32 * GweiPerETH   // for 0x00 and 0x01 credentials
	MaxCompoundingAmount        = 2048 * GweiPerETH // for 0x02 credentials
)

// DepositCLIVersion is written as deposit_cli_version. The Launchpad refuses
// files whose version compares below 1.0.0.
const DepositCLIVersion = version.Version

// Errors.
var (
	ErrAmount    = errors.New("depositdata: amount out of range")
	ErrInvalid   = errors.New("depositdata: invalid deposit")
	ErrSignature = errors.New("depositdata: signature does not verify")
)

// Signer is the key a deposit is made for: keygen.SecretKey satisfies it.
type Signer interface {
	PublicKey() []byte
	Sign(msg []byte) []byte
}

// Deposit is one entry of a deposit_data file, with fields in the order and
// encoding the deposit CLIs use.
type Deposit struct {
	Pubkey                string `json:"pubkey"`
	WithdrawalCredentials string `json:"withdrawal_credentials"`
	Amount                uint64 `json:"amount"`
	Signature             string `json:"signature"`
	DepositMessageRoot    string `json:"deposit_message_root"`
	DepositDataRoot       string `json:"deposit_data_root"`
	ForkVersion           string `json:"fork_version"`
	NetworkName           string `json:"network_name"`
	DepositCLIVersion     string `json:"deposit_cli_version"`
}

// CheckAmount applies the range rules: at least 1 ETH; at most 32 ETH, or
// 2048 ETH for compounding (0x02) credentials.
func CheckAmount(amount uint64, credentials [32]byte) error {
	limit := MaxAmount
	if credentials[0] == CompoundingWithdrawalPrefix {
		limit = MaxCompoundingAmount
	}
	if amount < MinAmount || amount > limit {
		return fmt.Errorf("%w: %d gwei (want %d to %d gwei for 0x%02x credentials)", ErrAmount, amount, MinAmount, limit, credentials[0])
	}
	return nil
}

// Domain is compute_domain(DOMAIN_DEPOSIT, fork version, zero root).
func (n Network) Domain() common.BLSDomain {
	return common.ComputeDomain(common.DOMAIN_DEPOSIT, common.Version(n.ForkVersion), common.Root{})
}

// Build signs a deposit of amount gwei for key with the given credentials on
// network, and checks the result with an independent BLS implementation
// before returning it.
func Build(key Signer, credentials [32]byte, amount uint64, network Network) (*Deposit, error) {
	if err := CheckAmount(amount, credentials); err != nil {
		return nil, err
	}
	msg := common.DepositMessage{WithdrawalCredentials: common.Root(credentials), Amount: common.Gwei(amount)}
	copy(msg.Pubkey[:], key.PublicKey())
	msgRoot := msg.HashTreeRoot(tree.GetHashFn())
	signingRoot := common.ComputeSigningRoot(msgRoot, network.Domain())
	data := common.DepositData{Pubkey: msg.Pubkey, WithdrawalCredentials: msg.WithdrawalCredentials, Amount: msg.Amount}
	copy(data.Signature[:], key.Sign(signingRoot[:]))
	dataRoot := data.HashTreeRoot(tree.GetHashFn())
	d := &Deposit{
		Pubkey:                hex.EncodeToString(msg.Pubkey[:]),
		WithdrawalCredentials: hex.EncodeToString(credentials[:]),
		Amount:                amount,
		Signature:             hex.EncodeToString(data.Signature[:]),
		DepositMessageRoot:    hex.EncodeToString(msgRoot[:]),
		DepositDataRoot:       hex.EncodeToString(dataRoot[:]),
		ForkVersion:           hex.EncodeToString(network.ForkVersion[:]),
		NetworkName:           network.Name,
		DepositCLIVersion:     DepositCLIVersion,
	}
	if err := d.Verify(network); err != nil {
		return nil, fmt.Errorf("depositdata: self-check of a new deposit failed: %w", err)
	}
	return d, nil
}

func decodeHex(field, s string, n int) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != n || s != strings.ToLower(s) {
		return nil, fmt.Errorf("%w: %s must be %d bytes of lowercase hex without 0x", ErrInvalid, field, n)
	}
	return b, nil
}

// Verify checks a deposit the way the Staking Launchpad does: field formats,
// amount range, fork version against network, deposit_cli_version at least
// 1.0.0, the deposit message root, the BLS signature over the deposit
// domain, and the deposit data root.
func (d *Deposit) Verify(network Network) error {
	pk, err := decodeHex("pubkey", d.Pubkey, 48)
	if err != nil {
		return err
	}
	wc, err := decodeHex("withdrawal_credentials", d.WithdrawalCredentials, 32)
	if err != nil {
		return err
	}
	sigBytes, err := decodeHex("signature", d.Signature, 96)
	if err != nil {
		return err
	}
	msgRootWant, err := decodeHex("deposit_message_root", d.DepositMessageRoot, 32)
	if err != nil {
		return err
	}
	dataRootWant, err := decodeHex("deposit_data_root", d.DepositDataRoot, 32)
	if err != nil {
		return err
	}
	fv, err := decodeHex("fork_version", d.ForkVersion, 4)
	if err != nil {
		return err
	}
	if !bytes.Equal(fv, network.ForkVersion[:]) {
		return fmt.Errorf("%w: fork_version %s is not %s's %x", ErrInvalid, d.ForkVersion, network.Name, network.ForkVersion)
	}
	if d.NetworkName != network.Name {
		return fmt.Errorf("%w: network_name %q, want %q", ErrInvalid, d.NetworkName, network.Name)
	}
	if !versionAtLeast(d.DepositCLIVersion, 1, 0, 0) {
		return fmt.Errorf("%w: deposit_cli_version %q is below 1.0.0 (the Launchpad refuses it)", ErrInvalid, d.DepositCLIVersion)
	}
	switch wc[0] {
	case BLSWithdrawalPrefix, ExecutionWithdrawalPrefix, CompoundingWithdrawalPrefix:
	default:
		return fmt.Errorf("%w: withdrawal credentials prefix 0x%02x", ErrInvalid, wc[0])
	}
	if wc[0] != BLSWithdrawalPrefix && !bytes.Equal(wc[1:12], make([]byte, 11)) {
		return fmt.Errorf("%w: withdrawal credentials 0x%02x must have 11 zero bytes before the address", ErrInvalid, wc[0])
	}
	if err := CheckAmount(d.Amount, [32]byte(wc)); err != nil {
		return err
	}
	msg := common.DepositMessage{WithdrawalCredentials: common.Root(wc), Amount: common.Gwei(d.Amount)}
	copy(msg.Pubkey[:], pk)
	msgRoot := msg.HashTreeRoot(tree.GetHashFn())
	if !bytes.Equal(msgRoot[:], msgRootWant) {
		return fmt.Errorf("%w: deposit_message_root does not match pubkey, credentials and amount", ErrInvalid)
	}
	pub, err := msg.Pubkey.Pubkey()
	if err != nil {
		return fmt.Errorf("%w: pubkey is not a valid BLS12-381 point", ErrInvalid)
	}
	data := common.DepositData{Pubkey: msg.Pubkey, WithdrawalCredentials: msg.WithdrawalCredentials, Amount: msg.Amount}
	copy(data.Signature[:], sigBytes)
	sig, err := data.Signature.Signature()
	if err != nil {
		return fmt.Errorf("%w: signature is not a valid BLS12-381 point", ErrSignature)
	}
	signingRoot := common.ComputeSigningRoot(msgRoot, network.Domain())
	if !blsu.Verify(pub, signingRoot[:], sig) {
		return fmt.Errorf("%w for %s's deposit domain", ErrSignature, network.Name)
	}
	dataRoot := data.HashTreeRoot(tree.GetHashFn())
	if !bytes.Equal(dataRoot[:], dataRootWant) {
		return fmt.Errorf("%w: deposit_data_root does not match the deposit", ErrInvalid)
	}
	return nil
}

// versionAtLeast compares a dotted version (an optional leading "v" and a
// pre-release suffix are ignored) with major.minor.patch.
func versionAtLeast(v string, major, minor, patch int) bool {
	v = strings.TrimPrefix(v, "v")
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	var got [3]int
	parts := strings.Split(v, ".")
	if len(parts) == 0 || len(parts) > 3 {
		return false
	}
	for i, p := range parts {
		if _, err := fmt.Sscanf(p, "%d", &got[i]); err != nil || p == "" {
			return false
		}
	}
	want := [3]int{major, minor, patch}
	for i := range got {
		if got[i] != want[i] {
			return got[i] > want[i]
		}
	}
	return true
}

// MarshalFile encodes deposits as a deposit_data file: one line, Python's
// separators, no trailing newline, as the deposit CLIs write it.
func MarshalFile(deposits []*Deposit) ([]byte, error) {
	if deposits == nil {
		deposits = []*Deposit{}
	}
	return pyjson.Marshal(deposits)
}

// ParseFile reads a deposit_data file. Unknown fields and missing fields are
// errors, as they are for the Launchpad.
func ParseFile(b []byte) ([]*Deposit, error) {
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: not a JSON list of deposits: %v", ErrInvalid, err)
	}
	out := make([]*Deposit, 0, len(raw))
	for i, r := range raw {
		for _, f := range []string{"pubkey", "withdrawal_credentials", "amount", "signature", "deposit_message_root", "deposit_data_root", "fork_version", "network_name", "deposit_cli_version"} {
			if _, ok := r[f]; !ok {
				return nil, fmt.Errorf("%w: entry %d has no %s", ErrInvalid, i, f)
			}
		}
		var d Deposit
		enc, _ := json.Marshal(r)
		dec := json.NewDecoder(bytes.NewReader(enc))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrInvalid, i, err)
		}
		out = append(out, &d)
	}
	return out, nil
}

// FileName is the name the deposit CLIs give the file: deposit_data-<unix>.json.
func FileName(ts int64) string { return fmt.Sprintf("deposit_data-%d.json", ts) }

// EntryError is the problem of one entry of a file.
type EntryError struct {
	Index  int
	Pubkey string
	Err    error
}

func (e *EntryError) Error() string {
	pk := e.Pubkey
	if len(pk) > 16 {
		pk = pk[:16] + "…"
	}
	return fmt.Sprintf("entry %d (pubkey %s): %v", e.Index, pk, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// VerifyFile checks every entry of a deposit_data file, and that no pubkey
// appears twice. With network nil, each entry is checked against the known
// network its network_name names, or, for an unknown name, against its own
// fork version (a devnet). It returns one error per bad entry.
func VerifyFile(b []byte, network *Network) ([]*Deposit, []error) {
	deposits, err := ParseFile(b)
	if err != nil {
		return nil, []error{err}
	}
	if len(deposits) == 0 {
		return nil, []error{fmt.Errorf("%w: the file holds no deposits", ErrInvalid)}
	}
	var errs []error
	seen := map[string]int{}
	for i, d := range deposits {
		n, err := networkFor(d, network)
		// A file is for one network: every entry names the first one's.
		if err == nil && i > 0 && (d.NetworkName != deposits[0].NetworkName || d.ForkVersion != deposits[0].ForkVersion) {
			err = fmt.Errorf("%w: network %q (fork version %s) differs from entry 0's %q (%s): a deposit file is for one network",
				ErrInvalid, d.NetworkName, d.ForkVersion, deposits[0].NetworkName, deposits[0].ForkVersion)
		}
		if err == nil {
			err = d.Verify(n)
		}
		if err == nil {
			if j, dup := seen[d.Pubkey]; dup {
				err = fmt.Errorf("%w: pubkey repeats entry %d", ErrInvalid, j)
			}
			seen[d.Pubkey] = i
		}
		if err != nil {
			errs = append(errs, &EntryError{Index: i, Pubkey: d.Pubkey, Err: err})
		}
	}
	return deposits, errs
}

// networkFor is the network entry d is checked against: want if given, else
// the known network d names.
func networkFor(d *Deposit, want *Network) (Network, error) {
	if want != nil {
		return *want, nil
	}
	n, err := NetworkByName(d.NetworkName)
	if err != nil {
		// Any name would do with its own fork version: without the network
		// given, only the known ones are checked.
		return n, fmt.Errorf("%w %q: a devnet file is checked only against a given network and fork version", ErrNetwork, d.NetworkName)
	}
	return n, nil
}
