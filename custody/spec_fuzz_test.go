package custody

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/depositdata"
)

// FuzzParseSpec: the wire form of a request (the Lambda event, a fan-out
// batch). No input makes ParseSpec or Spec.Request panic; every refusal is
// one line and a known sentinel; an accepted Spec re-encodes and parses to
// itself; a resolved Request is within the pipeline's limits.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		`{"request_id":"r1","count":3,"chain":"hoodi","withdrawal_address":"0x0f51bb10119727a7e5eA3538074fb341F56B09Ad","compounding":true,"amount_gwei":64000000000}`,
		`{"request_id":"r2","count":1,"chain":"mainnet","secret_format":"raw","kdf":"pbkdf2","keys_per_mnemonic":2}`,
		`{"request_id":"r3","count":1,"chain":"devnet","fork_version":"0x10000910"}`,
		`{"request_id":"r4","count":1,"chain":"hoodi","withdrawal_address":"0x0f51bb10119727a7e5ea3538074fb341f56b09ad","allow_lowercase_address":true}`,
		`{"request_id":"r","count":1,"chain":"hoodi","extra":1}`,
		`{"request_id":"r","count":1,"chain":"hoodi"} {}`,
		`{"request_id":"r","count":-1,"chain":"hoodi","amount_gwei":18446744073709551615}`,
		`{"request_id":"r","count":1e9,"chain":"HOODI"}`,
		`null`, `[]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSpec(b)
		if err != nil {
			if !errors.Is(err, ErrRequest) {
				t.Fatalf("ParseSpec error %q is not ErrRequest", err)
			}
			oneLineError(t, err)
			return
		}
		re, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := ParseSpec(re)
		if err != nil || s2 != s {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", s, re, s2, err)
		}
		r, err := s.Request()
		if err != nil {
			oneLineError(t, err)
			for _, sentinel := range []error{ErrRequest, depositdata.ErrNetwork, depositdata.ErrAddress,
				depositdata.ErrAddressChecksum, depositdata.ErrAddressLowercase, depositdata.ErrAmount} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("Request error %q is no known sentinel", err)
		}
		switch {
		case r.ID == "" || len(r.ID) > 200:
			t.Fatalf("request id %q accepted", r.ID)
		case r.Count < 1 || r.Count > MaxCount:
			t.Fatalf("count %d accepted", r.Count)
		case r.Format != FormatKeystore && r.Format != FormatRaw:
			t.Fatalf("format %q accepted", r.Format)
		case r.KeysPerMnemonic < 1 || r.KeysPerMnemonic > MaxKeysPerMnemonic:
			t.Fatalf("keys per mnemonic %d accepted", r.KeysPerMnemonic)
		case r.Network.Name == "":
			t.Fatal("no network")
		case r.Withdrawal.Compounding && r.Withdrawal.Address == nil:
			t.Fatal("compounding without an address")
		case r.Amount < depositdata.MinAmount:
			t.Fatalf("amount %d accepted", r.Amount)
		}
	})
}

func oneLineError(t *testing.T, err error) {
	t.Helper()
	if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\r\n") {
		t.Fatalf("error %q is not one line", msg)
	}
}
