package ops

import (
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ErrInput marks an operator's list or number that does not parse.
var ErrInput = errors.New("ops: invalid input")

// MaxBatch bounds the validators of one run of exits or BLS changes.
const MaxBatch = 10000

// listSep separates list entries: commas or white space, as
// ethstaker-deposit-cli accepts them.
var listSep = regexp.MustCompile(`\s*,\s*|\s+`)

// SplitList splits an operator's list ("A,B,C" or "A B C") into at most
// MaxBatch entries; an empty list or entry is an error.
func SplitList(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: the list is empty", ErrInput)
	}
	parts := listSep.Split(s, -1)
	if len(parts) > MaxBatch {
		return nil, fmt.Errorf("%w: %d entries, at most %d", ErrRange, len(parts), MaxBatch)
	}
	for i, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("%w: entry %d is empty", ErrInput, i+1)
		}
	}
	return parts, nil
}

// ParseValidatorIndices parses an operator's list of validator indices
// (decimal, each at most MaxValidatorIndex, none twice), in its order.
func ParseValidatorIndices(s string) ([]uint64, error) {
	parts, err := SplitList(s)
	if err != nil {
		return nil, err
	}
	out := make([]uint64, len(parts))
	seen := make(map[uint64]bool, len(parts))
	for i, p := range parts {
		v, err := ParseUint("validator index", p)
		if err != nil || CheckValidatorIndex(v) != nil {
			return nil, fmt.Errorf("%w: entry %d: %q is not a validator index (a decimal number up to %d)", ErrInput, i+1, p, MaxValidatorIndex)
		}
		if seen[v] {
			return nil, fmt.Errorf("%w: validator %d appears twice", ErrInput, v)
		}
		seen[v] = true
		out[i] = v
	}
	return out, nil
}

// ParseEpoch parses an operator's epoch: a decimal number from 0 to
// MaxEpoch.
func ParseEpoch(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("%w: %q: want a whole number from 0 to %d", ErrInput, s, MaxEpoch)
	}
	if err := CheckEpoch(v); err != nil {
		return 0, err
	}
	return v, nil
}

// ParseCredentialsList parses an operator's list of withdrawal
// credentials: 32 bytes of hex each, with or without 0x.
func ParseCredentialsList(s string) ([][32]byte, error) {
	parts, err := SplitList(s)
	if err != nil {
		return nil, err
	}
	out := make([][32]byte, len(parts))
	for i, p := range parts {
		b, err := hex.DecodeString(strings.TrimPrefix(p, "0x"))
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("%w: entry %d: want 32 bytes of hex", ErrInput, i+1)
		}
		out[i] = [32]byte(b)
	}
	return out, nil
}
