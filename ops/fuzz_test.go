package ops_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/ethkeygen/ethkeygen/ops"
)

func seedVectors(f *testing.F, _ string, files ...string) {
	for _, name := range files {
		var v map[string]any
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		if err := json.Unmarshal(b, &v); err != nil {
			f.Fatal(err)
		}
		for _, k := range []string{"beacon_api_json", "ethstaker_file"} {
			if s, ok := v[k].(string); ok {
				f.Add([]byte(s))
			}
		}
	}
}

// FuzzParseExit: the exit parser never panics, and what it accepts it
// writes back in a form it reads as the same exit.
func FuzzParseExit(f *testing.F) {
	seedVectors(f, "exit", "oracle_sister_mainnet_exit.json", "oracle_sister_hoodi_exit.json")
	f.Add([]byte(`{"message":{"epoch":"01","validator_index":"1"},"signature":"0x"}`))
	f.Add([]byte(`{"message":{"epoch":"1","validator_index":"1","x":1},"signature":"0x00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ops.ParseExit(b)
		if err != nil {
			return
		}
		for _, marshal := range []func(*ops.SignedVoluntaryExit) ([]byte, error){ops.MarshalExit, ops.MarshalExitFile} {
			out, err := marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ops.ParseExit(out)
			if err != nil || *again != *e {
				t.Fatalf("round trip of %s: %v", out, err)
			}
		}
	})
}

// FuzzParseBLSChanges: the BLS change parser (beacon API form and
// ethstaker-deposit-cli's file) never panics, and round-trips what it
// accepts.
func FuzzParseBLSChanges(f *testing.F) {
	seedVectors(f, "bls", "oracle_sister_mainnet_bls_change.json", "oracle_sister_hoodi_bls_change.json")
	f.Add([]byte(`[{"message":{"validator_index":"1","from_bls_pubkey":"0x","to_execution_address":"0x"},"signature":"0x","metadata":null}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := ops.ParseBLSChanges(b)
		if err != nil {
			return
		}
		cs := make([]*ops.SignedBLSToExecutionChange, len(entries))
		for i, e := range entries {
			cs[i] = e.Change
		}
		out, err := ops.MarshalBLSChanges(cs)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ops.ParseBLSChanges(out)
		if err != nil || len(again) != len(cs) {
			t.Fatalf("round trip of %s: %v", out, err)
		}
		for i := range again {
			if *again[i].Change != *cs[i] {
				t.Fatalf("entry %d changed in a round trip", i)
			}
		}
		if bytes.Contains(out, []byte("metadata")) {
			t.Fatal("beacon API form has metadata")
		}
	})
}
