//go:build !ethkeygen_fuzzonly

package handler_test

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/adapters/lambda/handler"
	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/custody/custodytest"
	"github.com/ethkeygen/ethkeygen/depositdata"
)

// TestAllowedWithdrawalsFromEnv: ETHKEYGEN_ALLOWED_WITHDRAWAL_ADDRESSES is
// required, holds checksummed addresses and "bls", and is parsed exactly.
func TestAllowedWithdrawalsFromEnv(t *testing.T) {
	base := map[string]string{handler.EnvKMSKeyID: "k", handler.EnvTable: "t"}
	if _, err := handler.ConfigFromEnv(env(base)); err == nil || !strings.Contains(err.Error(), handler.EnvAllowedWithdrawals+" is required") {
		t.Fatalf("unset: %v", err)
	}
	base[handler.EnvAllowedWithdrawals] = " " + testAddress + ", BLS," + otherAddress + "," + testAddress
	c, err := handler.ConfigFromEnv(env(base))
	if err != nil {
		t.Fatal(err)
	}
	want := []depositdata.Address{mustAddress(t, testAddress), mustAddress(t, otherAddress)}
	if !slices.Equal(c.AllowedAddresses, want) || !c.AllowBLS {
		t.Fatalf("parsed %v bls=%v, want %v bls=true", c.AllowedAddresses, c.AllowBLS, want)
	}
	base[handler.EnvAllowedWithdrawals] = otherAddress
	if c, err = handler.ConfigFromEnv(env(base)); err != nil || c.AllowBLS || len(c.AllowedAddresses) != 1 {
		t.Fatalf("%+v %v", c, err)
	}
}

// TestAllowedWithdrawals: a request naming an address outside the list, or
// none when "bls" is not listed, is refused before anything is generated;
// one naming a listed address is served with credentials paying it. The
// served requests ask for the raw format: the keystore's scrypt (tested
// elsewhere) would be most of this test's time under -race.
func TestAllowedWithdrawals(t *testing.T) {
	e := custodytest.NewEmbedded(t)
	h := &handler.Handler{Generator: e.Generator, AllowedChains: []string{"hoodi"}, MaxCount: 5, Logger: slog.New(slog.DiscardHandler),
		AllowedAddresses: []depositdata.Address{mustAddress(t, testAddress)}}
	for name, event := range map[string]string{
		"other address":        `{"request_id":"w1","count":1,"chain":"hoodi","withdrawal_address":"` + otherAddress + `"}`,
		"other address, lower": `{"request_id":"w2","count":1,"chain":"hoodi","withdrawal_address":"` + strings.ToLower(otherAddress) + `","allow_lowercase_address":true}`,
		"no address (BLS)":     `{"request_id":"w3","count":1,"chain":"hoodi"}`,
	} {
		_, err := h.Handle(t.Context(), []byte(event))
		var inv *handler.InvalidRequest
		if !errors.As(err, &inv) || !errors.Is(err, custody.ErrRequest) {
			t.Errorf("%s: got %v, want an InvalidRequest", name, err)
			continue
		}
		if !strings.Contains(err.Error(), "withdrawal") {
			t.Errorf("%s: %v does not say why", name, err)
		}
	}
	// The same address in lower case is the same address: allowed.
	resp, err := h.Handle(t.Context(), []byte(`{"request_id":"w4","count":1,"chain":"hoodi","secret_format":"raw","withdrawal_address":"`+
		strings.ToLower(testAddress)+`","allow_lowercase_address":true}`))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.Store.GetSlot(t.Context(), "w4", 0)
	if err != nil || rec.Pubkey != resp.Validators[0].Pubkey {
		t.Fatalf("stored record: %v", err)
	}
	wc := rec.WithdrawalCredentials
	if !strings.HasSuffix(strings.ToLower(wc), strings.ToLower(testAddress[2:])) || !strings.HasPrefix(wc, "01") {
		t.Fatalf("withdrawal credentials %s do not pay %s", wc, testAddress)
	}
	// With no list at all, every request is refused.
	h.AllowedAddresses = nil
	if _, err := h.Handle(t.Context(), []byte(`{"request_id":"w5","count":1,"chain":"hoodi","withdrawal_address":"`+testAddress+`"}`)); !errors.Is(err, custody.ErrRequest) {
		t.Fatalf("empty list: %v", err)
	}
	h.AllowBLS = true
	if _, err := h.Handle(t.Context(), []byte(`{"request_id":"w6","count":1,"chain":"hoodi","secret_format":"raw","bls_withdrawal":true}`)); err != nil {
		t.Fatalf("bls allowed: %v", err)
	}
}
