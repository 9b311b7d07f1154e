package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/ops"
)

// blsCurveOrder is r, the order of BLS12-381's G1 and G2.
var blsCurveOrder, _ = new(big.Int).SetString("52435875175126190479447740508185965837690552500527637822603658699938581184513", 10)

// interopKey is the secret key of interop validator i, as every client's
// dev mode makes it (eth2.0-pm interop "mocked start"):
// int.from_bytes(sha256(uint_to_bytes32_le(i)), "little") mod r.
func interopKey(t *testing.T, i uint64) *keygen.SecretKey {
	t.Helper()
	var le [32]byte
	binary.LittleEndian.PutUint64(le[:], i)
	h := sha256.Sum256(le[:])
	slices.Reverse(h[:]) // little-endian integer: reverse to big-endian
	n := new(big.Int).Mod(new(big.Int).SetBytes(h[:]), blsCurveOrder)
	b := make([]byte, 32)
	n.FillBytes(b)
	k, err := keygen.SecretKeyFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func beaconGet(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestSealedExitLodestarBeacon signs an exit from a sealed record and
// hands it to a real beacon node, lodestar dev (started by make test with
// Capella from genesis and no minimum service time, so that it judges an
// exit at once): `exit --beacon-node` looks the validator's index up by
// pubkey, `--submit` posts the exit, and Lodestar verifies its signature
// and puts it in its pool. The same exit signed under the genesis fork's
// domain is refused by Lodestar: the node really checks the signature.
// The key is one of lodestar dev's interop validators, brought under
// custody with `import` (its pubkey, derived here from the interop rule,
// must be the one the beacon state holds).
func TestSealedExitLodestarBeacon(t *testing.T) {
	km := testenv.KeymanagerAPI(t)
	var spec struct {
		Data map[string]any `json:"data"`
	}
	beaconGet(t, km.BeaconURL+"/eth/v1/config/spec", &spec)
	if spec.Data["CAPELLA_FORK_EPOCH"] != "0" || spec.Data["SHARD_COMMITTEE_PERIOD"] != "0" {
		t.Fatalf("lodestar dev must run with --params.CAPELLA_FORK_EPOCH 0 --params.SHARD_COMMITTEE_PERIOD 0 (scripts/test.sh): spec has %v, %v",
			spec.Data["CAPELLA_FORK_EPOCH"], spec.Data["SHARD_COMMITTEE_PERIOD"])
	}
	capella, genesisFork := spec.Data["CAPELLA_FORK_VERSION"].(string), spec.Data["GENESIS_FORK_VERSION"].(string)
	root := devRoot(t, km)

	// The highest interop validator still active with no exit in the pool
	// (an earlier run against the same chain may have exited one).
	pending := map[uint64]bool{}
	var before struct {
		Data []json.RawMessage `json:"data"`
	}
	beaconGet(t, km.BeaconURL+"/eth/v1/beacon/pool/voluntary_exits", &before)
	for _, raw := range before.Data {
		if e, err := ops.ParseExit(raw); err == nil {
			pending[uint64(e.Message.ValidatorIndex)] = true
		}
	}
	var free []uint64 // active, no exit pending, highest first
	for i := 7; i >= 0; i-- {
		var v struct {
			Data struct {
				Status    string `json:"status"`
				Validator struct {
					Pubkey string `json:"pubkey"`
				} `json:"validator"`
			} `json:"data"`
		}
		beaconGet(t, fmt.Sprintf("%s/eth/v1/beacon/states/head/validators/%d", km.BeaconURL, i), &v)
		if want := "0x" + hex.EncodeToString(interopKey(t, uint64(i)).PublicKey()); v.Data.Validator.Pubkey != want {
			t.Fatalf("interop validator %d: the beacon state holds %s, the interop rule gives %s", i, v.Data.Validator.Pubkey, want)
		}
		if v.Data.Status == "active_ongoing" && !pending[uint64(i)] {
			free = append(free, uint64(i))
		}
	}
	if len(free) == 0 {
		t.Fatal("lodestar dev has no interop validator active with no exit pending (restart it)")
	}
	index := free[0]
	key := interopKey(t, index)
	pk := hex.EncodeToString(key.PublicKey())

	dir := t.TempDir()
	t.Setenv("ETHKEYGEN_HOME", filepath.Join(dir, "home"))
	db := filepath.Join(dir, "ethkeygen.db")
	password := "interop-" + randomSuffix(t)
	ks, err := keystore.Encrypt(rand.Reader, key.UnsafeBytes(), keystore.NormalizePassword(password), keystore.WithHandoffKDF(), keystore.WithPubkey(key.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	ksJSON, err := json.Marshal(ks)
	if err != nil {
		t.Fatal(err)
	}
	ksFile := writeFile(t, dir, "keystore.json", string(ksJSON))
	pwFile := writeFile(t, dir, "password.txt", password)
	r := runCLI(t, "import", "--keystore", ksFile, "--keystore-password-file", pwFile, "--chain", "lsdev", "--fork-version", genesisFork,
		"--status", "deposited", "--signer", "lodestar-dev", "--db", db)
	if r.code != 0 {
		t.Fatalf("import: exit %d: %s", r.code, r.stderr)
	}

	// First the exit under the genesis fork's domain (what a pre-EIP-7044
	// signer for an old fork would make): Lodestar refuses it, so it judges
	// the signature of what is submitted below.
	n, err := depositdata.CustomNetwork("lsdev", genesisFork)
	if err != nil {
		t.Fatal(err)
	}
	if n, err = n.WithChainRoots(genesisFork, root); err != nil {
		t.Fatal(err)
	}
	wrong, err := ops.SignExit(key, index, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	body, err := ops.MarshalExit(wrong)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(km.BeaconURL+"/eth/v1/beacon/pool/voluntary_exits", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Lodestar v1.5.1 answers a refused exit with 500 and the reason.
	if resp.StatusCode == http.StatusOK || !bytes.Contains(msg, []byte("INVALID_SIGNATURE")) {
		t.Fatalf("an exit under the genesis domain: Lodestar answered %s: %s; want a refusal for its signature", resp.Status, msg)
	}

	out := filepath.Join(dir, "exits")
	r = runCLI(t, "exit", "--pubkey", pk, "--beacon-node", km.BeaconURL, "--submit", "--epoch", "0", "--out", out,
		"--genesis-fork-version", genesisFork, "--capella-fork-version", capella, "--genesis-validators-root", root, "--db", db, "--json")
	if r.code != 0 {
		t.Fatalf("exit --submit: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	files, _ := filepath.Glob(filepath.Join(out, fmt.Sprintf("signed_exit_transaction-%d-*.json", index)))
	if len(files) != 1 {
		t.Fatalf("exit files for index %d: %v (stdout %s)", index, files, r.stdout)
	}
	written, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	exit, err := ops.ParseExit(written)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(exit.Message.ValidatorIndex) != index {
		t.Fatalf("the exit is for index %d, the beacon node has %d", exit.Message.ValidatorIndex, index)
	}
	// Lodestar verified it (it refuses a bad signature, below) and holds it
	// in its pool, or has put it in a block already.
	var pool struct {
		Data []json.RawMessage `json:"data"`
	}
	beaconGet(t, km.BeaconURL+"/eth/v1/beacon/pool/voluntary_exits", &pool)
	found := false
	for _, raw := range pool.Data {
		e, err := ops.ParseExit(raw)
		found = found || (err == nil && e.Message.ValidatorIndex == exit.Message.ValidatorIndex && e.Signature == exit.Signature)
	}
	if !found {
		var v struct {
			Data struct {
				Status string `json:"status"`
			} `json:"data"`
		}
		beaconGet(t, fmt.Sprintf("%s/eth/v1/beacon/states/head/validators/%d", km.BeaconURL, index), &v)
		if v.Data.Status != "active_exiting" {
			t.Fatalf("Lodestar's exit pool (%d exits) lacks the exit of validator %d, and it is %s", len(pool.Data), index, v.Data.Status)
		}
	}
	if st := listKeys(t, db)[pk].Status; st != "exit-signed" {
		t.Fatalf("the record is %q after exit, want exit-signed", st)
	}

}
