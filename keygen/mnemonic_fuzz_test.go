package keygen_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/keygen"
)

// FuzzParseMnemonic: no input makes ParseMnemonic panic; what it accepts is
// a canonical phrase that parses again to itself in the same language; what
// it refuses comes with a one-line error that is one of the package's
// sentinels.
func FuzzParseMnemonic(f *testing.F) {
	for _, s := range []string{
		"abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
		"test test test test test test test test test test test waste",
		"  TEST\ttest\r\ntest test test test test test test test test waste\n",
		"abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon",
		"abandon abandon abandon",
		"",
		"あいこくしん　あいこくしん　あいこくしん　あいこくしん　あいこくしん　あいこくしん　あいこくしん　あいこくしん　あいこくしん　あいこくしん　あいこくしん　あおぞら",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := keygen.ParseMnemonic(s)
		if err != nil {
			if m != nil {
				t.Fatal("a mnemonic and an error")
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("multi-line error %q", msg)
			}
			if !errors.Is(err, keygen.ErrMnemonicLength) && !errors.Is(err, keygen.ErrMnemonicWord) && !errors.Is(err, keygen.ErrMnemonicChecksum) {
				t.Fatalf("error %q is no sentinel", msg)
			}
			return
		}
		defer m.Destroy()
		phrase := m.UnsafeString()
		switch m.Words() {
		case 12, 15, 18, 21, 24:
		default:
			t.Fatalf("%d words accepted", m.Words())
		}
		if strings.Count(phrase, " ") != m.Words()-1 || strings.TrimSpace(phrase) != phrase {
			t.Fatalf("phrase %q is not words joined by single spaces", phrase)
		}
		again, err := keygen.ParseMnemonic(phrase)
		if err != nil {
			t.Fatalf("accepted %q, but its normal form %q fails: %v", s, phrase, err)
		}
		defer again.Destroy()
		if again.UnsafeString() != phrase || again.Language() != m.Language() {
			t.Fatalf("round trip: %q (%s) became %q (%s)", phrase, m.Language(), again.UnsafeString(), again.Language())
		}
	})
}
