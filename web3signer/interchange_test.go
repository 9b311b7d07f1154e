package web3signer_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/web3signer"
)

// Genesis validators roots of the networks, as the consensus specs and
// client configs publish them (not computed here).
const (
	mainnetRoot = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"
	hoodiRoot   = "0x212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f"
)

func root(t testing.TB, s string) [32]byte {
	t.Helper()
	r, err := web3signer.ParseRoot(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestInterchangeVectors runs EIP-3076 test vectors of eth-clients
// (testdata/interchange/SOURCE): each step's interchange parses for the
// test's genesis validators root exactly when the step should succeed.
func TestInterchangeVectors(t *testing.T) {
	files, _ := filepath.Glob("testdata/interchange/*.json")
	if len(files) < 4 {
		t.Fatalf("%d vector files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var v struct {
				Name  string `json:"name"`
				Root  string `json:"genesis_validators_root"`
				Steps []struct {
					ShouldSucceed bool            `json:"should_succeed"`
					Interchange   json.RawMessage `json:"interchange"`
				} `json:"steps"`
			}
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			if v.Name == "" { // the withdrawn minimal format (version 3): a version 5 importer refuses it
				if _, err := web3signer.ParseInterchange(b, root(t, mainnetRoot)); !errors.Is(err, web3signer.ErrInterchange) {
					t.Fatalf("version 3 accepted: %v", err)
				}
				return
			}
			for i, st := range v.Steps {
				got, err := web3signer.ParseInterchange(st.Interchange, root(t, v.Root))
				if (err == nil) != st.ShouldSucceed {
					t.Fatalf("step %d: should_succeed %v, got %v", i, st.ShouldSucceed, err)
				}
				if err != nil {
					continue
				}
				// What we parse is what the vector holds, normalised.
				var raw web3signer.Interchange
				json.Unmarshal(st.Interchange, &raw)
				if !reflect.DeepEqual(got, &raw) {
					t.Fatalf("step %d: parsed %+v, vector %+v", i, got, raw)
				}
			}
		})
	}
	t.Run("wrong root is ErrGenesisRoot", func(t *testing.T) {
		b, _ := os.ReadFile("testdata/interchange/wrong_genesis_validators_root.json")
		var v struct {
			Steps []struct {
				Interchange json.RawMessage `json:"interchange"`
			} `json:"steps"`
		}
		json.Unmarshal(b, &v)
		_, err := web3signer.ParseInterchange(v.Steps[0].Interchange, root(t, "0x"+strings.Repeat("00", 31)+"01"))
		if !errors.Is(err, web3signer.ErrGenesisRoot) {
			t.Fatalf("got %v", err)
		}
	})
}

const pkA = "0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c"
const pkB = "0xb89bebc699769726a318c8e9971bd3171297c61aea4a6578a7a4f94b547dcba5bac16a89108b6b6a1fe3695d1a874a0b"

func doc(rootHex, data string) string {
	return `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + rootHex + `"},"data":[` + data + `]}`
}

// TestInterchangeV5ImporterRules checks the parser against the rules of
// Web3Signer's importer (Consensys/web3signer,
// slashing-protection/src/main/java/tech/pegasys/web3signer/slashingprotection/interchange/
// InterchangeV5Importer.java @ 7d3f859804836f41f7a18c8c76311e9f2b85c4a1, with
// model/Metadata.java @ f34a7253, model/SignedBlock.java @ a38b5173,
// model/SignedAttestation.java @ 477e894f and InterchangeJsonProvider.java
// @ 8580781f): what it refuses we refuse, what it accepts we accept, so
// every interchange we pass on imports there.
func TestInterchangeV5ImporterRules(t *testing.T) {
	r := root(t, hoodiRoot)
	bad := map[string]string{
		// importDataInternal: metadata.getFormatVersion().equals("5")
		"format version 4":      strings.Replace(doc(hoodiRoot, ""), `"5"`, `"4"`, 1),
		"format version number": strings.Replace(doc(hoodiRoot, ""), `"5"`, `5`, 1),
		// Metadata: both fields required
		"no version":  `{"metadata":{"genesis_validators_root":"` + hoodiRoot + `"},"data":[]}`,
		"no root":     `{"metadata":{"interchange_format_version":"5"},"data":[]}`,
		"no metadata": `{"data":[]}`,
		// Bytes32.wrap(root): exactly 32 bytes
		"root of 31 bytes": doc("0x"+strings.Repeat("ab", 31), ""),
		"root not hex":     doc("0x"+strings.Repeat("zz", 32), ""),
		// rootNode.withArray("data")
		"data an object": `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + hoodiRoot + `"},"data":{}}`,
		"no data":        `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + hoodiRoot + `"}}`,
		// importValidator: "Element of 'data' was not an object"; required("pubkey")
		"entry an array": doc(hoodiRoot, `[]`),
		"no pubkey":      doc(hoodiRoot, `{"signed_blocks":[],"signed_attestations":[]}`),
		"short pubkey":   doc(hoodiRoot, `{"pubkey":"0xa99a","signed_blocks":[],"signed_attestations":[]}`),
		// parentNode.withArray("signed_blocks") / ("signed_attestations")
		"blocks null":       doc(hoodiRoot, `{"pubkey":"`+pkA+`","signed_blocks":null,"signed_attestations":[]}`),
		"attestations text": doc(hoodiRoot, `{"pubkey":"`+pkA+`","signed_blocks":[],"signed_attestations":"x"}`),
		// SignedBlock: slot required, UInt64 from a string (StringUInt64Deserializer)
		"block without slot":  doc(hoodiRoot, `{"pubkey":"`+pkA+`","signed_blocks":[{}],"signed_attestations":[]}`),
		"slot a number":       doc(hoodiRoot, `{"pubkey":"`+pkA+`","signed_blocks":[{"slot":1}],"signed_attestations":[]}`),
		"slot negative":       doc(hoodiRoot, `{"pubkey":"`+pkA+`","signed_blocks":[{"slot":"-1"}],"signed_attestations":[]}`),
		"slot over uint64":    doc(hoodiRoot, `{"pubkey":"`+pkA+`","signed_blocks":[{"slot":"18446744073709551616"}],"signed_attestations":[]}`),
		"signing root short":  doc(hoodiRoot, `{"pubkey":"`+pkA+`","signed_blocks":[{"slot":"1","signing_root":"0x01"}],"signed_attestations":[]}`),
		"attestation no tgt":  doc(hoodiRoot, `{"pubkey":"`+pkA+`","signed_blocks":[],"signed_attestations":[{"source_epoch":"1"}]}`),
		"attestation src num": doc(hoodiRoot, `{"pubkey":"`+pkA+`","signed_blocks":[],"signed_attestations":[{"source_epoch":1,"target_epoch":"2"}]}`),
		"not json":            `{"metadata":`,
		"two documents":       doc(hoodiRoot, "") + doc(hoodiRoot, ""),
	}
	for name, d := range bad {
		if _, err := web3signer.ParseInterchange([]byte(d), r); !errors.Is(err, web3signer.ErrInterchange) {
			t.Errorf("%s: got %v, want ErrInterchange", name, err)
		}
	}
	good := map[string]string{
		"empty data": doc(hoodiRoot, ""),
		// withArray creates a missing array: absent means empty
		"arrays absent": doc(hoodiRoot, `{"pubkey":"`+pkA+`"}`),
		// signing_root is optional (@JsonProperty without required)
		"no signing roots":  doc(hoodiRoot, `{"pubkey":"`+pkA+`","signed_blocks":[{"slot":"0"}],"signed_attestations":[{"source_epoch":"0","target_epoch":"0"}]}`),
		"null signing root": doc(hoodiRoot, `{"pubkey":"`+pkA+`","signed_blocks":[{"slot":"1","signing_root":null}],"signed_attestations":[]}`),
		"unknown fields":    `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + hoodiRoot + `","x":1},"data":[{"pubkey":"` + pkA + `","y":[]}],"z":{}}`,
		"uppercase hex":     doc("0x"+strings.ToUpper(hoodiRoot[2:]), ""),
		"max uint64":        doc(hoodiRoot, `{"pubkey":"`+pkA+`","signed_blocks":[{"slot":"18446744073709551615"}]}`),
	}
	for name, d := range good {
		if _, err := web3signer.ParseInterchange([]byte(d), r); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCheckGenesisRoot(t *testing.T) {
	h, m := root(t, hoodiRoot), root(t, mainnetRoot)
	if err := web3signer.CheckGenesisRoot(h, h); err != nil {
		t.Fatal(err)
	}
	err := web3signer.CheckGenesisRoot(h, m)
	if !errors.Is(err, web3signer.ErrGenesisRoot) || !strings.Contains(err.Error(), mainnetRoot) || !strings.Contains(err.Error(), hoodiRoot) {
		t.Fatalf("got %v", err)
	}
	if web3signer.RootString(h) != hoodiRoot {
		t.Fatal(web3signer.RootString(h))
	}
	for _, s := range []string{"", "0x12", hoodiRoot + "00", "0x" + strings.Repeat("g", 64)} {
		if _, err := web3signer.ParseRoot(s); !errors.Is(err, web3signer.ErrInterchange) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// previous is an interchange as a signer's DELETE returns it: history for
// pkA (twice, as EIP-3076 allows) and pkB.
var previous = doc(hoodiRoot,
	`{"pubkey":"`+pkA+`","signed_blocks":[{"slot":"20"},{"slot":"10","signing_root":"0x`+strings.Repeat("01", 32)+`"}],"signed_attestations":[{"source_epoch":"2","target_epoch":"3"}]},`+
		`{"pubkey":"`+pkB+`","signed_blocks":[{"slot":"7"}],"signed_attestations":[]},`+
		`{"pubkey":"0x`+strings.ToUpper(pkA[2:])+`","signed_blocks":[{"slot":"20"}],"signed_attestations":[{"source_epoch":"0","target_epoch":"1"},{"source_epoch":"2","target_epoch":"3"}]}`)

func TestBuildInterchange(t *testing.T) {
	h := root(t, hoodiRoot)
	fresh := "0x" + strings.Repeat("c", 96)
	got, err := web3signer.BuildInterchange(h, []web3signer.KeyHistory{
		{Pubkey: fresh},
		{Pubkey: pkA, Previous: []byte(previous)},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The union of pkA's two entries, each record once, sorted; pkB's
	// history is not passed on with pkA; the fresh key has none.
	want := doc(hoodiRoot,
		`{"pubkey":"`+fresh+`","signed_blocks":[],"signed_attestations":[]},`+
			`{"pubkey":"`+pkA+`","signed_blocks":[{"slot":"10","signing_root":"0x`+strings.Repeat("01", 32)+`"},{"slot":"20"}],`+
			`"signed_attestations":[{"source_epoch":"0","target_epoch":"1"},{"source_epoch":"2","target_epoch":"3"}]}`) + "\n"
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// What we build parses back unchanged.
	back, err := web3signer.ParseInterchange(got, h)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := json.Marshal(back); string(again)+"\n" != string(got) {
		t.Fatalf("round trip changed it:\n%s", again)
	}

	t.Run("previous signer on another network", func(t *testing.T) {
		_, err := web3signer.BuildInterchange(root(t, mainnetRoot), []web3signer.KeyHistory{{Pubkey: pkA, Previous: []byte(previous)}})
		if !errors.Is(err, web3signer.ErrGenesisRoot) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("previous interchange of another key", func(t *testing.T) {
		other := doc(hoodiRoot, `{"pubkey":"`+pkB+`","signed_blocks":[{"slot":"7"}],"signed_attestations":[]}`)
		_, err := web3signer.BuildInterchange(h, []web3signer.KeyHistory{{Pubkey: pkA, Previous: []byte(other)}})
		if !errors.Is(err, web3signer.ErrInterchangeKey) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("malformed previous", func(t *testing.T) {
		_, err := web3signer.BuildInterchange(h, []web3signer.KeyHistory{{Pubkey: pkA, Previous: []byte(`{}`)}})
		if !errors.Is(err, web3signer.ErrInterchange) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("key twice", func(t *testing.T) {
		_, err := web3signer.BuildInterchange(h, []web3signer.KeyHistory{{Pubkey: pkA}, {Pubkey: strings.ToUpper(pkA[2:])}})
		if !errors.Is(err, web3signer.ErrInterchange) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("KeyInterchange", func(t *testing.T) {
		b, err := web3signer.KeyInterchange([]byte(previous), h, pkB)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != doc(hoodiRoot, `{"pubkey":"`+pkB+`","signed_blocks":[{"slot":"7"}],"signed_attestations":[]}`)+"\n" {
			t.Fatalf("got %s", b)
		}
	})
}

// TestLodestarImportsOurInterchanges: every kind of interchange we write
// (empty, for fresh keys; merged with a previous signer's history) is
// imported by `lodestar validator slashing-protection import`, which
// checks it against the network's genesis validators root (mainnet here:
// Lodestar knows it without a beacon node); one for hoodi is refused.
func TestLodestarImportsOurInterchanges(t *testing.T) {
	m := root(t, mainnetRoot)
	fresh, err := web3signer.EmptyInterchange(mainnetRoot, []string{pkB})
	if err != nil {
		t.Fatal(err)
	}
	prevMainnet := strings.ReplaceAll(previous, hoodiRoot, mainnetRoot)
	merged, err := web3signer.BuildInterchange(m, []web3signer.KeyHistory{{Pubkey: pkA, Previous: []byte(prevMainnet)}, {Pubkey: "0x" + strings.Repeat("d", 96)}})
	if err != nil {
		t.Fatal(err)
	}
	onlyB, err := web3signer.KeyInterchange([]byte(prevMainnet), m, pkB)
	if err != nil {
		t.Fatal(err)
	}
	hoodi, _ := web3signer.EmptyInterchange(hoodiRoot, []string{pkA})
	dir := t.TempDir()
	for name, ic := range map[string][]byte{"empty": fresh, "merged": merged, "one key of a delete": onlyB} {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
			if err := os.WriteFile(f, ic, 0o600); err != nil {
				t.Fatal(err)
			}
			out := testenv.Lodestar(t, 2*time.Minute, "validator", "slashing-protection", "import",
				"--network", "mainnet", "--dataDir", filepath.Join(dir, "vc-"+strings.ReplaceAll(name, " ", "_")), "--file", f)
			if !strings.Contains(out, "Import completed successfully") {
				t.Fatalf("unexpected output:\n%s", out)
			}
		})
	}
	t.Run("another network is refused", func(t *testing.T) {
		f := filepath.Join(dir, "hoodi.json")
		os.WriteFile(f, hoodi, 0o600)
		out, err := testenv.TryLodestar(t, 2*time.Minute, "validator", "slashing-protection", "import",
			"--network", "mainnet", "--dataDir", filepath.Join(dir, "vc-hoodi"), "--file", f)
		if err == nil || !strings.Contains(out, "ERR_INTERCHANGE_GENESIS_VALIDATOR_MISMATCH") {
			t.Fatalf("Lodestar did not refuse a hoodi interchange for mainnet (%v):\n%s", err, out)
		}
	})
}
