package keymanager_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

// FuzzParseResponses: the answer parsers never panic, fail only with
// ErrMalformed, return exactly n results when they succeed, and never
// return a status outside the API's set or a message over one line.
func FuzzParseResponses(f *testing.F) {
	for _, s := range []string{
		`{"data":[{"status":"imported","message":""}]}`,
		`{"data":[{"status":"duplicate"},{"status":"error","message":"bad\npassword"}]}`,
		`{"data":[{"status":"deleted","message":""}],"slashing_protection":"{\"metadata\":{},\"data\":[]}"}`,
		`{"data":[{"validating_pubkey":"0x` + pk1 + `","derivation_path":"","readonly":false}]}`,
		`{"data":null}`, `{"data":[{}]}`, `[]`, `{"code":500,"message":"x"}`, "",
	} {
		f.Add([]byte(s), 1)
	}
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > 64 {
			return
		}
		oneLine := func(s string) {
			if strings.ContainsAny(s, "\n\r") {
				t.Fatalf("message over several lines: %q", s)
			}
		}
		if res, err := keymanager.ParseImportResponse(b, n); err != nil {
			if !errors.Is(err, keymanager.ErrMalformed) {
				t.Fatalf("import: %v", err)
			}
			oneLine(err.Error())
		} else {
			if len(res) != n {
				t.Fatalf("import: %d results for %d", len(res), n)
			}
			for _, r := range res {
				switch r.Status {
				case keymanager.Imported, keymanager.Duplicate, keymanager.Failed:
				default:
					t.Fatalf("import status %q", r.Status)
				}
				oneLine(r.Message)
			}
		}
		if res, ic, err := keymanager.ParseDeleteResponse(b, n); err != nil {
			if !errors.Is(err, keymanager.ErrMalformed) {
				t.Fatalf("delete: %v", err)
			}
			oneLine(err.Error())
		} else {
			if len(res) != n || !json.Valid(ic) {
				t.Fatalf("delete: %d results for %d, interchange %q", len(res), n, ic)
			}
			for _, r := range res {
				switch r.Status {
				case keymanager.Deleted, keymanager.NotActive, keymanager.NotFound, keymanager.DeleteFailed:
				default:
					t.Fatalf("delete status %q", r.Status)
				}
				oneLine(r.Message)
			}
		}
		if keys, err := keymanager.ParseListResponse(b); err != nil {
			if !errors.Is(err, keymanager.ErrMalformed) {
				t.Fatalf("list: %v", err)
			}
			oneLine(err.Error())
		} else {
			for _, k := range keys {
				if len(k.Pubkey) != 96 || strings.ToLower(k.Pubkey) != k.Pubkey {
					t.Fatalf("list pubkey %q", k.Pubkey)
				}
				oneLine(k.DerivationPath)
			}
		}
	})
}
