package handler_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/adapters/lambda/handler"
	"github.com/ethkeygen/ethkeygen/depositdata"
)

// FuzzValidate: any event is accepted or refused with a one-line
// InvalidRequest; it never panics, and an accepted one is within limits.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{
		`{"request_id":"r","count":1,"chain":"hoodi"}`,
		`{"request_id":"r","count":3,"chain":"hoodi","withdrawal_address":"0x0f51bb10119727a7e5eA3538074fb341F56B09Ad","compounding":true,"amount_gwei":64000000000}`,
		`{"request_id":"r","count":1,"chain":"hoodi","fork_version":"0x10000910"}`,
		`{"request_id":"r","count":1,"chain":"mainnet","secret_format":"raw","kdf":"pbkdf2","keys_per_mnemonic":2}`,
		`{"count":-1}`, `null`, `[]`, `{"request_id":"r","count":1e3}`,
	} {
		f.Add([]byte(s))
	}
	allowed := mustAddress(f, testAddress)
	h := &handler.Handler{AllowedChains: []string{"hoodi", "sepolia"}, MaxCount: 10, AllowedAddresses: []depositdata.Address{allowed}, AllowBLS: true}
	f.Fuzz(func(t *testing.T, event []byte) {
		req, err := h.Validate(event)
		if err != nil {
			var ir *handler.InvalidRequest
			if !errors.As(err, &ir) || strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error %T %q", err, err)
			}
			return
		}
		if req.ID == "" || req.Count < 1 || req.Count > 10 || (req.Network.Name != "hoodi" && req.Network.Name != "sepolia") ||
			(req.Withdrawal.Address != nil && *req.Withdrawal.Address != allowed) {
			t.Fatalf("accepted %+v", req)
		}
	})
}
