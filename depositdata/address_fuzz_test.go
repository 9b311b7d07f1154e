package depositdata_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/depositdata"
)

// FuzzParseAddress: any --withdrawal-address or withdrawal_address. It never
// panics; an accepted mixed-case address is its own EIP-55 form; an
// all-one-case address is accepted only when unchecksummed addresses are
// allowed; String() of what is accepted parses again strictly to the same
// address; every refusal is one of the address sentinels and one line.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"0x0f51bb10119727a7e5eA3538074fb341F56B09Ad",
		"0x0F51bb10119727a7e5eA3538074fb341F56B09Ad",
		"0x0f51bb10119727a7e5ea3538074fb341f56b09ad",
		"0x0F51BB10119727A7E5EA3538074FB341F56B09AD",
		"0x0000000000000000000000000000000000000000",
		"0X0f51bb10119727a7e5eA3538074fb341F56B09Ad",
		"0x0f51bb10119727a7e5eA3538074fb341F56B09A",
		"0x0f51bb10119727a7e5eA3538074fb341F56B09Ag",
		"",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, allowUnchecksummed bool) {
		a, err := depositdata.ParseAddress(s, allowUnchecksummed)
		if err != nil {
			if !errors.Is(err, depositdata.ErrAddress) && !errors.Is(err, depositdata.ErrAddressChecksum) && !errors.Is(err, depositdata.ErrAddressLowercase) {
				t.Fatalf("error %q is no address sentinel", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error %q is not one line", err)
			}
			return
		}
		body := s[2:]
		oneCase := body == strings.ToLower(body) || body == strings.ToUpper(body)
		if oneCase && !allowUnchecksummed && a.String() != s {
			t.Fatalf("unchecksummed %q accepted", s)
		}
		canonical := a.String()
		if !oneCase && canonical != s {
			t.Fatalf("mixed-case %q accepted, but its EIP-55 form is %q", s, canonical)
		}
		if !strings.EqualFold(canonical, s) {
			t.Fatalf("%q parsed to another address %q", s, canonical)
		}
		b, err := depositdata.ParseAddress(canonical, false)
		// The EIP-55 form is always accepted, also when all its letters
		// share one case (or it has no letter).
		if err != nil {
			t.Fatalf("canonical form %q of %q fails: %v", canonical, s, err)
		}
		if err == nil && b != a {
			t.Fatalf("round trip %q -> %q -> %q", s, canonical, b.String())
		}
	})
}
