package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/store"
)

func TestValidPubkey(t *testing.T) {
	good := strings.Repeat("a1", 48)
	for s, want := range map[string]bool{
		good:                    true,
		"":                      false,
		good[:94]:               false,
		good + "00":             false,
		"0x" + good[2:]:         false,
		strings.ToUpper(good):   false,
		"g" + good[1:]:          false,
		strings.Repeat("0", 96): true,
	} {
		if got := store.ValidPubkey(s); got != want {
			t.Errorf("ValidPubkey(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestTimeFormat(t *testing.T) {
	in := time.Date(2025, 1, 2, 3, 4, 5, 678901234, time.FixedZone("X", -3600))
	s := store.FormatTime(in)
	if s != "2025-01-02T04:04:05.678Z" {
		t.Fatalf("FormatTime = %s", s)
	}
	out, err := store.ParseTime(s)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Equal(in.Truncate(time.Millisecond)) || out.Location() != time.UTC {
		t.Fatalf("ParseTime = %v", out)
	}
	// The text sorts in time order.
	if a, b := store.FormatTime(in), store.FormatTime(in.Add(time.Millisecond)); a >= b {
		t.Errorf("%s >= %s", a, b)
	}
}

func TestValidateTransition(t *testing.T) {
	pk := strings.Repeat("ab", 48)
	if err := store.ValidateTransition(pk, store.StatusGenerated, store.StatusExported); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][3]string{{"x", "generated", "exported"}, {pk, "", "exported"}, {pk, "generated", "gone"}} {
		if err := store.ValidateTransition(c[0], store.Status(c[1]), store.Status(c[2])); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ValidateTransition(%q) = %v, want ErrInvalid", c, err)
		}
	}
}
