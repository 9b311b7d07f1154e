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

func TestKeyStateValidate(t *testing.T) {
	good := func() *store.KeyState {
		return &store.KeyState{Pubkey: strings.Repeat("ab", 48), ExportID: "exp-1", State: store.StatusDeposited,
			Signer: "s", Version: 2, UpdatedAt: time.Now(), Interchange: []byte(`{}`)}
	}
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, st := range []store.Status{store.StatusExported, store.StatusDeposited, store.StatusExitSigned, store.StatusRetired} {
		k := good()
		k.State = st
		if err := k.Validate(); err != nil {
			t.Errorf("state %s: %v", st, err)
		}
	}
	for name, m := range map[string]func(k *store.KeyState){
		"pubkey":      func(k *store.KeyState) { k.Pubkey = "ab" },
		"generated":   func(k *store.KeyState) { k.State = store.StatusGenerated },
		"version":     func(k *store.KeyState) { k.Version = 0 },
		"time":        func(k *store.KeyState) { k.UpdatedAt = time.Time{} },
		"interchange": func(k *store.KeyState) { k.Interchange = []byte("{") },
		"export id":   func(k *store.KeyState) { k.ExportID = "x#y" },
	} {
		k := good()
		m(k)
		if err := k.Validate(); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
	var nilKS *store.KeyState
	if err := nilKS.Validate(); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("nil: Validate = %v, want ErrInvalid", err)
	}
}

func TestExportValidate(t *testing.T) {
	a, b := strings.Repeat("a1", 48), strings.Repeat("b2", 48)
	good := func() *store.Export {
		return &store.Export{ID: "deposit-2026_01.a", CreatedAt: time.Now(), Network: "mainnet",
			WithdrawalCredentials: "01" + strings.Repeat("0", 62), Candidates: []string{a, b}}
	}
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	sealed := good()
	sealed.Sealed, sealed.Members, sealed.Claims = true, []string{b}, 1
	if err := sealed.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := store.ValidateNewExport(sealed); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ValidateNewExport(sealed) = %v, want ErrInvalid", err)
	}
	for name, m := range map[string]func(e *store.Export){
		"id":         func(e *store.Export) { e.ID = "" },
		"id #":       func(e *store.Export) { e.ID = "a#b" },
		"id long":    func(e *store.Export) { e.ID = strings.Repeat("a", store.MaxExportIDLen+1) },
		"time":       func(e *store.Export) { e.CreatedAt = time.Time{} },
		"network":    func(e *store.Export) { e.Network = "" },
		"wc":         func(e *store.Export) { e.WithdrawalCredentials = "01" },
		"claims":     func(e *store.Export) { e.Claims = -1 },
		"candidate":  func(e *store.Export) { e.Candidates[0] = "A" + a[1:] },
		"repeat":     func(e *store.Export) { e.Candidates[1] = a },
		"unsealed":   func(e *store.Export) { e.Members = []string{a} },
		"non-member": func(e *store.Export) { e.Sealed, e.Members = true, []string{strings.Repeat("c3", 48)} },
	} {
		e := good()
		m(e)
		if err := e.Validate(); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
}

func TestStatuses(t *testing.T) {
	for _, s := range []store.Status{"generated", "imported", "exported", "deposited", "exit-signed", "retired"} {
		if !s.Valid() {
			t.Errorf("%s is not Valid", s)
		}
	}
	if store.StatusImported != "imported" || store.StatusExitSigned != "exit-signed" {
		t.Error("status spellings changed")
	}
	for _, s := range []store.Status{"", "lost", "Exported"} {
		if s.Valid() {
			t.Errorf("%q is Valid", s)
		}
	}
}
