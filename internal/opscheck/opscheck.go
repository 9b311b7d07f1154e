// Package opscheck verifies signed exits and BLS-to-execution changes with
// a second, independent implementation, for tests.
//
// The Go side signs with herumi's BLS (keygen) and computes SSZ roots and
// domains with zrnt. This checker runs verify.mjs under Node with
// @chainsafe/ssz (SSZ) and @noble/curves (BLS12-381), and decrypts
// encrypted exits with @chainsafe/bls-keystore (the library Lido's
// validator ejector decrypts them with): different languages,
// different SSZ code, a different BLS library, and the domain rules (which
// fork version for which message) written again from the specs. A bug in
// our roots, our domain choice or our signing shows up as a refusal here.
// Node rather than zrnt-vs-herumi alone, because our own verification
// already is zrnt: a second zrnt pass would share its SSZ and domain code.
//
// The node_modules directory comes from ETHKEYGEN_NODE_MODULES, which
// scripts/test.sh sets after installing the pinned packages into
// .tools/npm. Without it the test skips, and fails under
// ETHKEYGEN_REQUIRE_INTEGRATION=1 (make test, CI), like every stand-in.
package opscheck

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/ops"
)

//go:embed verify.mjs
var script []byte

// Chain is a network's constants, as the checker reads them.
type Chain struct {
	GenesisForkVersion    string `json:"genesis_fork_version"`
	CapellaForkVersion    string `json:"capella_fork_version"`
	GenesisValidatorsRoot string `json:"genesis_validators_root"`
}

// ChainOf is n's constants.
func ChainOf(n depositdata.Network) Chain {
	return Chain{"0x" + hex.EncodeToString(n.ForkVersion[:]), "0x" + hex.EncodeToString(n.CapellaForkVersion[:]), "0x" + hex.EncodeToString(n.GenesisValidatorsRoot[:])}
}

// Item is one message to check. Message is its beacon API JSON message
// object; Pubkey is the validator's pubkey (exits only). DomainFork
// "genesis" (exit) or "capella" (BLS change) asks for the wrong fork
// version on purpose.
type Item struct {
	Kind       string          `json:"kind"`
	Chain      Chain           `json:"chain"`
	Message    json.RawMessage `json:"message"`
	Signature  string          `json:"signature"`
	Pubkey     string          `json:"pubkey,omitempty"`
	DomainFork string          `json:"domain_fork,omitempty"`
	// Encrypted and Password: an exit file encrypted for Lido's
	// validator ejector (kind "encrypted_exit"), read and decrypted as
	// the ejector does, with the password as its password file holds it.
	Encrypted string `json:"encrypted,omitempty"`
	Password  string `json:"password,omitempty"`
}

// Result is the checker's verdict on one item.
type Result struct {
	OK          bool   `json:"ok"`
	Error       string `json:"error"`
	Domain      string `json:"domain"`
	SigningRoot string `json:"signing_root"`
}

// Exit is the item for a signed exit by pubkey on n.
func Exit(t testing.TB, e *ops.SignedVoluntaryExit, pubkey []byte, n depositdata.Network) Item {
	t.Helper()
	b, err := ops.MarshalExit(e)
	return fromJSON(t, "exit", mustJSON(t, b, err), n, "0x"+hex.EncodeToString(pubkey))
}

// BLSChange is the item for a signed BLS change on n.
func BLSChange(t testing.TB, c *ops.SignedBLSToExecutionChange, n depositdata.Network) Item {
	t.Helper()
	b, err := ops.MarshalBLSChanges([]*ops.SignedBLSToExecutionChange{c})
	b = mustJSON(t, b, err)
	var list []json.RawMessage
	if err := json.Unmarshal(b, &list); err != nil || len(list) != 1 {
		t.Fatalf("opscheck: %v", err)
	}
	return fromJSON(t, "bls_change", list[0], n, "")
}

// Raw is an item from a message's JSON (an exit object or one BLS change
// entry) as a file holds it.
func Raw(t testing.TB, kind string, entry []byte, n depositdata.Network, pubkey string) Item {
	t.Helper()
	return fromJSON(t, kind, entry, n, pubkey)
}

func mustJSON(t testing.TB, b []byte, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fromJSON(t testing.TB, kind string, b []byte, n depositdata.Network, pubkey string) Item {
	t.Helper()
	var j struct {
		Message   json.RawMessage `json:"message"`
		Signature string          `json:"signature"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatalf("opscheck: %v", err)
	}
	return Item{Kind: kind, Chain: ChainOf(n), Message: j.Message, Signature: j.Signature, Pubkey: pubkey}
}

// EncryptedExit is the item for an encrypted exit file by pubkey on n,
// decrypted with password (the password file's bytes, as the ejector
// reads MESSAGES_PASSWORD_FILE).
func EncryptedExit(file []byte, password string, pubkey []byte, n depositdata.Network) Item {
	return Item{Kind: "encrypted_exit", Chain: ChainOf(n), Encrypted: string(file), Password: password, Pubkey: "0x" + hex.EncodeToString(pubkey)}
}

// WrongDomain is it to be checked under the fork version the spec does
// not use for its kind (an exit under the genesis fork version, a BLS
// change under Capella's).
func (it Item) WrongDomain() Item {
	if it.Kind == "exit" || it.Kind == "encrypted_exit" {
		it.DomainFork = "genesis"
	} else {
		it.DomainFork = "capella"
	}
	return it
}

// Check runs the checker on items and returns its verdicts in order.
func Check(t testing.TB, items []Item) []Result {
	t.Helper()
	nm := testenv.NodeModules(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "verify.mjs"), script, 0o600); err != nil {
		t.Fatal(err)
	}
	// Node resolves packages from the script's directory upwards.
	if err := os.Symlink(nm, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	in, err := json.Marshal(items)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "node", filepath.Join(dir, "verify.mjs"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("opscheck: node verify.mjs: %v\n%s", err, stderr.Bytes())
	}
	var res []Result
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(items) {
		t.Fatalf("opscheck: %d results for %d items (%v): %s", len(res), len(items), err, out)
	}
	return res
}

// RequireValid checks that every item verifies under its right domain and
// fails under the wrong one.
func RequireValid(t testing.TB, items []Item) {
	t.Helper()
	all := make([]Item, 0, 2*len(items))
	all = append(all, items...)
	for _, it := range items {
		all = append(all, it.WrongDomain())
	}
	res := Check(t, all)
	for i, it := range items {
		if !res[i].OK {
			t.Errorf("independent check refused %s %d: %s", it.Kind, i, res[i].Error)
		}
		if w := res[len(items)+i]; w.OK {
			t.Errorf("independent check accepted %s %d under the wrong domain (%s)", it.Kind, i, w.Domain)
		}
	}
	if !t.Failed() {
		t.Logf("independent check (Node, @chainsafe/ssz + @noble/curves + @chainsafe/bls-keystore): %d messages valid, each refused under the wrong domain", len(items))
	}
}

// Itoa is a decimal string, for building messages by hand.
func Itoa(v uint64) string { return strconv.FormatUint(v, 10) }
