package custody

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
)

// MaxSpecSize bounds an encoded Spec.
const MaxSpecSize = 16 << 10

// Spec is the wire form of a Request, as the Lambda event and the fan-out
// batches carry it:
//
//	{"request_id": "...", "count": N, "chain": "hoodi", "withdrawal_address": "0x...",
//	 "compounding": false, "amount_gwei": 32000000000}
//
// A request states where withdrawals go: withdrawal_address, or bls_withdrawal
// true for 0x00 credentials (withdrawable only after a BLS-to-execution change
// signed with the validator's withdrawal key). Omitting both is refused with
// ErrWithdrawalChoice, as are explicit zeros for amount_gwei and
// keys_per_mnemonic (absent fields take their defaults).
type Spec struct {
	RequestID             string `json:"request_id"`
	Count                 int    `json:"count"`
	Chain                 string `json:"chain,omitempty"`
	ForkVersion           string `json:"fork_version,omitempty"`
	WithdrawalAddress     string `json:"withdrawal_address,omitempty"`
	BLSWithdrawal         bool   `json:"bls_withdrawal,omitempty"`
	AllowLowercaseAddress bool   `json:"allow_lowercase_address,omitempty"`
	Compounding           bool   `json:"compounding,omitempty"`
	AmountGwei            uint64 `json:"amount_gwei,omitempty"`
	SecretFormat          string `json:"secret_format,omitempty"`
	KDF                   string `json:"kdf,omitempty"`
	KeysPerMnemonic       int    `json:"keys_per_mnemonic,omitempty"`
}

// ErrWithdrawalChoice: a request names neither a withdrawal address nor
// bls_withdrawal (or names both).
var ErrWithdrawalChoice = fmt.Errorf("%w: state where withdrawals go: a withdrawal address (0x01, or 0x02 with compounding), "+
	"or bls_withdrawal for 0x00 credentials (withdrawable only after a BLS-to-execution change signed from the mnemonic)", ErrRequest)

// ParseSpec decodes a Spec strictly: unknown fields, trailing data and
// oversized input are errors.
func ParseSpec(b []byte) (Spec, error) {
	var s Spec
	if len(b) > MaxSpecSize {
		return s, fmt.Errorf("%w: request larger than %d bytes", ErrRequest, MaxSpecSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("%w: %v", ErrRequest, err)
	}
	if dec.More() {
		return s, fmt.Errorf("%w: trailing data after the request", ErrRequest)
	}
	// An explicit zero is a mistake, not a request for the default.
	var fields map[string]json.RawMessage
	if json.Unmarshal(b, &fields) == nil {
		for _, f := range []string{"amount_gwei", "keys_per_mnemonic"} {
			if v, ok := fields[f]; ok && bytes.Equal(bytes.TrimSpace(v), []byte("0")) {
				return s, fmt.Errorf("%w: %s 0 (leave it out for the default)", ErrRequest, f)
			}
		}
	}
	return s, nil
}

// Network resolves Chain and ForkVersion.
func (s Spec) Network() (depositdata.Network, error) {
	var (
		n   depositdata.Network
		err error
	)
	switch {
	case s.ForkVersion != "":
		n, err = depositdata.CustomNetwork(s.Chain, s.ForkVersion)
	case s.Chain != "":
		n, err = depositdata.NetworkByName(s.Chain)
	default:
		return n, fmt.Errorf("%w: chain or fork_version is required", ErrRequest)
	}
	if err != nil {
		return n, fmt.Errorf("%w: %w", ErrRequest, err)
	}
	return n, nil
}

// Request resolves the Spec into a validated Request.
func (s Spec) Request() (Request, error) {
	network, err := s.Network()
	if err != nil {
		return Request{}, err
	}
	r := Request{ID: s.RequestID, Count: s.Count, Network: network, Amount: s.AmountGwei,
		Format: SecretFormat(s.SecretFormat), KDF: keystore.KDF(s.KDF), KeysPerMnemonic: s.KeysPerMnemonic}
	if s.WithdrawalAddress != "" {
		a, err := depositdata.ParseAddress(s.WithdrawalAddress, s.AllowLowercaseAddress)
		if err != nil {
			return Request{}, fmt.Errorf("%w: %w", ErrRequest, err)
		}
		r.Withdrawal.Address = &a
	}
	r.Withdrawal.Compounding = s.Compounding
	if err := r.normalize(); err != nil {
		return Request{}, err
	}
	// Checked last, so that every other mistake is reported in its own words.
	if (s.WithdrawalAddress == "") == !s.BLSWithdrawal {
		if s.BLSWithdrawal {
			return Request{}, fmt.Errorf("%w: bls_withdrawal and a withdrawal address exclude each other", ErrWithdrawalChoice)
		}
		return Request{}, ErrWithdrawalChoice
	}
	return r, nil
}
