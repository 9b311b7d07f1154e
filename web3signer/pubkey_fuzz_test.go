package web3signer_test

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/web3signer"
)

// FuzzNormalizePubkey: any --pubkey argument or record field. It never
// panics; what it accepts is 96 lowercase hex digits (48 bytes), a fixed
// point, and names the same bytes as the input; a refusal is ErrKey and
// one line.
func FuzzNormalizePubkey(f *testing.F) {
	pk := "a99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c"
	for _, s := range []string{pk, "0x" + pk, "0X" + strings.ToUpper(pk), pk[:94], pk + "00", "0x", "", "0x0x" + pk, "zz" + pk[2:], " " + pk} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := web3signer.NormalizePubkey(s)
		if err != nil {
			if !errors.Is(err, web3signer.ErrKey) {
				t.Fatalf("error %q is not ErrKey", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error %q is not one line", err)
			}
			return
		}
		b, herr := hex.DecodeString(p)
		if herr != nil || len(b) != 48 || p != strings.ToLower(p) {
			t.Fatalf("accepted %q as %q", s, p)
		}
		if again, err := web3signer.NormalizePubkey(p); err != nil || again != p {
			t.Fatalf("not a fixed point: %q -> %q, %v", p, again, err)
		}
		if in, err := hex.DecodeString(s[len(s)-96:]); err != nil || string(in) != string(b) {
			t.Fatalf("%q normalised to other bytes %q", s, p)
		}
	})
}
