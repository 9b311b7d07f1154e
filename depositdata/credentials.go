package depositdata

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/sha3"
)

// Withdrawal credential prefixes.
const (
	BLSWithdrawalPrefix         byte = 0x00
	ExecutionWithdrawalPrefix   byte = 0x01
	CompoundingWithdrawalPrefix byte = 0x02
)

// Errors about withdrawal addresses.
var (
	ErrAddress          = errors.New("depositdata: invalid execution address")
	ErrAddressChecksum  = errors.New("depositdata: execution address fails its EIP-55 checksum")
	ErrAddressLowercase = errors.New("depositdata: execution address has no EIP-55 checksum (all one case)")
)

// Address is a 20-byte execution-layer address.
type Address [20]byte

// String is the EIP-55 checksummed form.
func (a Address) String() string { return checksumAddress(a) }

func checksumAddress(a Address) string {
	lower := hex.EncodeToString(a[:])
	h := sha3.NewLegacyKeccak256()
	h.Write([]byte(lower))
	sum := h.Sum(nil)
	out := []byte("0x" + lower)
	for i := 0; i < 40; i++ {
		nibble := sum[i/2] >> (4 * (1 - uint(i%2))) & 0xf
		if nibble >= 8 && out[2+i] >= 'a' {
			out[2+i] -= 'a' - 'A'
		}
	}
	return string(out)
}

// ParseAddress parses "0x" and 40 hex digits. A mixed-case address must
// carry a valid EIP-55 checksum. An address all in one case has no checksum
// to protect it against typos: it is refused with ErrAddressLowercase unless
// allowUnchecksummed is set, as the deposit CLIs do.
func ParseAddress(s string, allowUnchecksummed bool) (Address, error) {
	var a Address
	if len(s) != 42 || !strings.HasPrefix(s, "0x") {
		return a, fmt.Errorf("%w %q: want 0x and 40 hex digits", ErrAddress, s)
	}
	b, err := hex.DecodeString(s[2:])
	if err != nil {
		return a, fmt.Errorf("%w %q: not hex", ErrAddress, s)
	}
	copy(a[:], b)
	if checksumAddress(a) == s {
		return a, nil // includes addresses whose checksummed form has no lowercase letter
	}
	body := s[2:]
	if body == strings.ToLower(body) || body == strings.ToUpper(body) {
		if !allowUnchecksummed {
			return a, fmt.Errorf("%w: %s (if it is right, its checksummed form is %s)", ErrAddressLowercase, s, a)
		}
		return a, nil
	}
	return a, fmt.Errorf("%w: %s", ErrAddressChecksum, s)
}

// BLSCredentials are 0x00 credentials: the prefix and sha256(pubkey)[1:].
func BLSCredentials(withdrawalPubkey []byte) [32]byte {
	c := sha256.Sum256(withdrawalPubkey)
	c[0] = BLSWithdrawalPrefix
	return c
}

// ExecutionCredentials are 0x01 credentials, or 0x02 (compounding) ones.
func ExecutionCredentials(a Address, compounding bool) [32]byte {
	var c [32]byte
	c[0] = ExecutionWithdrawalPrefix
	if compounding {
		c[0] = CompoundingWithdrawalPrefix
	}
	copy(c[12:], a[:])
	return c
}
