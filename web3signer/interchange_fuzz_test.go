package web3signer_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ethkeygen/ethkeygen/web3signer"
)

// FuzzParseInterchange: the parser never panics; it fails only with
// ErrInterchange or ErrGenesisRoot; what it accepts re-encodes to a
// document it accepts again unchanged, and BuildInterchange merging it
// for each of its keys succeeds.
func FuzzParseInterchange(f *testing.F) {
	files, _ := filepath.Glob("testdata/interchange/*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		var v struct {
			Steps []struct {
				Interchange json.RawMessage `json:"interchange"`
			} `json:"steps"`
		}
		if json.Unmarshal(b, &v) == nil {
			for _, s := range v.Steps {
				f.Add([]byte(s.Interchange))
			}
		}
	}
	f.Add([]byte(previous))
	f.Add([]byte(doc(hoodiRoot, `{"pubkey":"`+pkA+`"}`)))
	zero := [32]byte{}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, r := range [][32]byte{zero, root(t, hoodiRoot)} {
			ic, err := web3signer.ParseInterchange(b, r)
			if err != nil {
				if !errors.Is(err, web3signer.ErrInterchange) && !errors.Is(err, web3signer.ErrGenesisRoot) {
					t.Fatalf("error %v wraps neither sentinel", err)
				}
				continue
			}
			again, err := json.Marshal(ic)
			if err != nil {
				t.Fatal(err)
			}
			ic2, err := web3signer.ParseInterchange(again, r)
			if err != nil || !reflect.DeepEqual(ic, ic2) {
				t.Fatalf("re-encoded document differs or is refused: %v", err)
			}
			seen := map[string]bool{}
			var keys []web3signer.KeyHistory
			for _, d := range ic.Data {
				if !seen[d.Pubkey] {
					seen[d.Pubkey] = true
					keys = append(keys, web3signer.KeyHistory{Pubkey: d.Pubkey, Previous: b})
				}
			}
			if _, err := web3signer.BuildInterchange(r, keys); err != nil {
				t.Fatalf("merging an accepted interchange failed: %v", err)
			}
		}
	})
}
