package ops_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/ethkeygen/ethkeygen/ops"
)

func TestParseValidatorIndices(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []uint64
		err  string
	}{
		{"1,2,3", []uint64{1, 2, 3}, ""},
		{" 7 8\t9 ", []uint64{7, 8, 9}, ""},
		{"5 , 6", []uint64{5, 6}, ""},
		{"1099511627775", []uint64{ops.MaxValidatorIndex}, ""},
		{"1099511627776", nil, `entry 1: "1099511627776" is not a validator index`},
		{"", nil, "the list is empty"},
		{"1,,2", nil, "entry 2 is empty"},
		{"1,x", nil, `entry 2: "x" is not a validator index`},
		{"01", nil, "is not a validator index"},
		{"-1", nil, "is not a validator index"},
		{"3,4,3", nil, "validator 3 appears twice"},
		{strings.Repeat("1 ", ops.MaxBatch+1), nil, "10001 entries, at most 10000"},
	} {
		got, err := ops.ParseValidatorIndices(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !(errors.Is(err, ops.ErrInput) || errors.Is(err, ops.ErrRange)) {
				t.Errorf("%q: %v, %v; want an error with %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || len(got) != len(c.want) {
			t.Errorf("%q: %v, %v; want %v", c.in, got, err, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%q: %v, want %v", c.in, got, c.want)
			}
		}
	}
}

func TestParseEpoch(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "194048": 194048, "4294967295": ops.MaxEpoch} {
		if got, err := ops.ParseEpoch(in); err != nil || got != want {
			t.Errorf("%q: %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "+1", "-1", "1.5", "0x10", "4294967296", "18446744073709551616"} {
		if got, err := ops.ParseEpoch(in); err == nil {
			t.Errorf("%q: accepted as %d", in, got)
		}
	}
}

func TestParseCredentialsList(t *testing.T) {
	a, b := "0x00"+strings.Repeat("ab", 31), strings.Repeat("01", 32)
	got, err := ops.ParseCredentialsList(a + ", " + b)
	if err != nil || len(got) != 2 || got[0][0] != 0 || got[0][31] != 0xab || got[1][0] != 1 {
		t.Fatalf("%x, %v", got, err)
	}
	for _, in := range []string{"", "0x00", a + ",0x" + strings.Repeat("zz", 32), a + ",," + b, strings.Repeat("00", 33)} {
		if got, err := ops.ParseCredentialsList(in); err == nil || !errors.Is(err, ops.ErrInput) {
			t.Errorf("%q: %x, %v", in, got, err)
		}
	}
}

// FuzzParseInputs: the parsers of the operator's lists and epochs never
// panic, and what they accept is in range: distinct indices the registry
// can hold, epochs up to ops.MaxEpoch, one 32-byte credential per entry.
func FuzzParseInputs(f *testing.F) {
	f.Add("1,2,3", "0", "0x00"+strings.Repeat("ab", 31))
	f.Add("1,,2", "-1", "0x01,0x02")
	f.Add("1099511627775", "4294967295", "00"+strings.Repeat("0", 62)+",0x"+strings.Repeat("1", 64))
	f.Fuzz(func(t *testing.T, indices, epoch, creds string) {
		if vs, err := ops.ParseValidatorIndices(indices); err == nil {
			seen := map[uint64]bool{}
			for _, v := range vs {
				if v > ops.MaxValidatorIndex || seen[v] {
					t.Fatalf("accepted %q as %v", indices, vs)
				}
				seen[v] = true
			}
		}
		if e, err := ops.ParseEpoch(epoch); err == nil && e > ops.MaxEpoch {
			t.Fatalf("accepted epoch %q as %d", epoch, e)
		}
		if cs, err := ops.ParseCredentialsList(creds); err == nil && len(cs) != len(strings.FieldsFunc(creds, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })) {
			t.Fatalf("accepted %q as %d credentials", creds, len(cs))
		}
	})
}
