package ops_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/protolambda/ztyp/tree"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/internal/opscheck"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/ops"
)

type chainJSON struct {
	GenesisForkVersion    string `json:"genesis_fork_version"`
	CapellaForkVersion    string `json:"capella_fork_version"`
	GenesisValidatorsRoot string `json:"genesis_validators_root"`
}

type exitVector struct {
	Network        string    `json:"network"`
	Chain          chainJSON `json:"chain"`
	Mnemonic       string    `json:"mnemonic"`
	Passphrase     string    `json:"passphrase"`
	KeyIndex       uint32    `json:"key_index"`
	ValidatorIndex uint64    `json:"validator_index"`
	Epoch          uint64    `json:"epoch"`
	SigningKeyPath string    `json:"signing_key_path"`
	SigningPubkey  string    `json:"signing_pubkey"`
	Domain         string    `json:"domain"`
	MessageRoot    string    `json:"message_root"`
	SigningRoot    string    `json:"signing_root"`
	Signature      string    `json:"signature"`
	BeaconAPIJSON  string    `json:"beacon_api_json"`
	EthstakerFile  string    `json:"ethstaker_file"`
}

type blsChangeVector struct {
	Network            string    `json:"network"`
	Chain              chainJSON `json:"chain"`
	Mnemonic           string    `json:"mnemonic"`
	Passphrase         string    `json:"passphrase"`
	ToExecutionAddress string    `json:"to_execution_address"`
	Domain             string    `json:"domain"`
	Entries            []struct {
		KeyIndex                 uint32 `json:"key_index"`
		WithdrawalKeyPath        string `json:"withdrawal_key_path"`
		FromBLSPubkey            string `json:"from_bls_pubkey"`
		BLSWithdrawalCredentials string `json:"bls_withdrawal_credentials"`
		ValidatorIndex           uint64 `json:"validator_index"`
		MessageRoot              string `json:"message_root"`
		SigningRoot              string `json:"signing_root"`
		Signature                string `json:"signature"`
	} `json:"entries"`
	BeaconAPIJSON string `json:"beacon_api_json"`
	EthstakerFile string `json:"ethstaker_file"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func seedOf(t *testing.T, mnemonic, passphrase string) *keygen.Bytes {
	t.Helper()
	m, err := keygen.ParseMnemonic(mnemonic)
	if err != nil {
		t.Fatal(err)
	}
	return m.Seed(passphrase)
}

func derive(t *testing.T, seed *keygen.Bytes, path string) *keygen.SecretKey {
	t.Helper()
	k, err := keygen.DeriveKey(seed, path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func h(b []byte) string { return "0x" + hex.EncodeToString(b) }

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// networkOf is the named network; the vector's chain constants must be
// that network's (they are also tested against the sourced table in
// depositdata).
func networkOf(t *testing.T, name string, c chainJSON) depositdata.Network {
	t.Helper()
	n, err := depositdata.NetworkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if h(n.ForkVersion[:]) != c.GenesisForkVersion || h(n.CapellaForkVersion[:]) != c.CapellaForkVersion || h(n.GenesisValidatorsRoot[:]) != c.GenesisValidatorsRoot {
		t.Fatalf("vector's chain %+v is not our %s", c, name)
	}
	return n
}

// produced collects the messages the tests of this package make, for the
// independent check (TestIndependentCheck).
var produced []opscheck.Item

// TestConsensusSpecsVector signs the BLS change of consensus-specs'
// test_valid_signature_from_staking_deposit_cli from the mnemonic and
// compares the signature byte for byte.
func TestConsensusSpecsVector(t *testing.T) {
	var v struct {
		Mnemonic           string `json:"mnemonic"`
		KeyIndex           uint32 `json:"key_index"`
		Network            string `json:"network"`
		ValidatorIndex     uint64 `json:"validator_index"`
		FromBLSPubkey      string `json:"from_bls_pubkey"`
		ToExecutionAddress string `json:"to_execution_address"`
		Signature          string `json:"signature"`
		GVR                string `json:"genesis_validators_root"`
	}
	readJSON(t, "testdata/consensus_specs_bls_to_execution_change.json", &v)
	n, err := depositdata.NetworkByName(v.Network)
	if err != nil {
		t.Fatal(err)
	}
	if h(n.GenesisValidatorsRoot[:]) != v.GVR {
		t.Fatalf("genesis validators root %x, vector %s", n.GenesisValidatorsRoot, v.GVR)
	}
	wk := derive(t, seedOf(t, v.Mnemonic, ""), keygen.WithdrawalPath(v.KeyIndex))
	if h(wk.PublicKey()) != v.FromBLSPubkey {
		t.Fatalf("withdrawal pubkey %x, vector %s", wk.PublicKey(), v.FromBLSPubkey)
	}
	to, err := depositdata.ParseAddress(v.ToExecutionAddress, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ops.SignBLSChange(wk, v.ValidatorIndex, depositdata.BLSCredentials(wk.PublicKey()), to, n)
	if err != nil {
		t.Fatal(err)
	}
	if got := h(c.Signature[:]); got != v.Signature {
		t.Fatalf("signature\n got %s\nwant %s", got, v.Signature)
	}
	produced = append(produced, opscheck.BLSChange(t, c, n))
}

func TestOracleExits(t *testing.T) {
	for _, f := range []string{"oracle_sister_mainnet_exit.json", "oracle_sister_hoodi_exit.json"} {
		t.Run(f, func(t *testing.T) {
			var v exitVector
			readJSON(t, "testdata/"+f, &v)
			n := networkOf(t, v.Network, v.Chain)
			if v.SigningKeyPath != keygen.SigningPath(v.KeyIndex) {
				t.Fatalf("path %s", v.SigningKeyPath)
			}
			key := derive(t, seedOf(t, v.Mnemonic, v.Passphrase), v.SigningKeyPath)
			if h(key.PublicKey()) != v.SigningPubkey {
				t.Fatalf("pubkey %x, vector %s", key.PublicKey(), v.SigningPubkey)
			}
			dom, err := ops.ExitDomain(n)
			if err != nil {
				t.Fatal(err)
			}
			if h(dom[:]) != v.Domain {
				t.Errorf("domain %x, vector %s", dom, v.Domain)
			}
			e, err := ops.SignExit(key, v.ValidatorIndex, v.Epoch, n)
			if err != nil {
				t.Fatal(err)
			}
			if r := e.Message.HashTreeRoot(tree.GetHashFn()); h(r[:]) != v.MessageRoot {
				t.Errorf("message root %x, vector %s", r, v.MessageRoot)
			}
			if r, _ := ops.ExitSigningRoot(&e.Message, n); h(r[:]) != v.SigningRoot {
				t.Errorf("signing root %x, vector %s", r, v.SigningRoot)
			}
			if h(e.Signature[:]) != v.Signature {
				t.Errorf("signature %x, vector %s", e.Signature, v.Signature)
			}
			if b, _ := ops.MarshalExit(e); string(b) != v.BeaconAPIJSON {
				t.Errorf("beacon API JSON\n got %s\nwant %s", b, v.BeaconAPIJSON)
			}
			if b, _ := ops.MarshalExitFile(e); string(b) != v.EthstakerFile {
				t.Errorf("ethstaker file\n got %s\nwant %s", b, v.EthstakerFile)
			}
			for _, form := range []string{v.BeaconAPIJSON, v.EthstakerFile} {
				p, err := ops.ParseExit([]byte(form))
				if err != nil {
					t.Fatal(err)
				}
				if *p != *e {
					t.Errorf("parsed %+v, want %+v", p, e)
				}
				if err := ops.VerifyExit(p, key.PublicKey(), n); err != nil {
					t.Error(err)
				}
			}
			if got := ops.ExitFileName(v.ValidatorIndex, 1700000000); got != strings.Replace("signed_exit_transaction-1-<unix ts>.json", "<unix ts>", "1700000000", 1) {
				t.Errorf("file name %s", got)
			}
			produced = append(produced, opscheck.Exit(t, e, key.PublicKey(), n))
		})
	}
}

func TestOracleBLSChanges(t *testing.T) {
	for _, f := range []string{"oracle_sister_mainnet_bls_change.json", "oracle_sister_hoodi_bls_change.json"} {
		t.Run(f, func(t *testing.T) {
			var v blsChangeVector
			readJSON(t, "testdata/"+f, &v)
			n := networkOf(t, v.Network, v.Chain)
			dom, err := ops.BLSChangeDomain(n)
			if err != nil {
				t.Fatal(err)
			}
			if h(dom[:]) != v.Domain {
				t.Errorf("domain %x, vector %s", dom, v.Domain)
			}
			to, err := depositdata.ParseAddress(v.ToExecutionAddress, false)
			if err != nil {
				t.Fatal(err)
			}
			seed := seedOf(t, v.Mnemonic, v.Passphrase)
			var changes []*ops.SignedBLSToExecutionChange
			for _, en := range v.Entries {
				if en.WithdrawalKeyPath != keygen.WithdrawalPath(en.KeyIndex) {
					t.Fatalf("path %s", en.WithdrawalKeyPath)
				}
				wk := derive(t, seed, en.WithdrawalKeyPath)
				creds := [32]byte(unhex(t, en.BLSWithdrawalCredentials))
				c, err := ops.SignBLSChange(wk, en.ValidatorIndex, creds, to, n)
				if err != nil {
					t.Fatal(err)
				}
				m := &c.BLSToExecutionChange
				if h(m.FromBLSPubKey[:]) != en.FromBLSPubkey {
					t.Errorf("from_bls_pubkey %x, vector %s", m.FromBLSPubKey, en.FromBLSPubkey)
				}
				if r := m.HashTreeRoot(tree.GetHashFn()); h(r[:]) != en.MessageRoot {
					t.Errorf("message root %x, vector %s", r, en.MessageRoot)
				}
				if r, _ := ops.BLSChangeSigningRoot(m, n); h(r[:]) != en.SigningRoot {
					t.Errorf("signing root %x, vector %s", r, en.SigningRoot)
				}
				if h(c.Signature[:]) != en.Signature {
					t.Errorf("signature %x, vector %s", c.Signature, en.Signature)
				}
				changes = append(changes, c)
				produced = append(produced, opscheck.BLSChange(t, c, n))
			}
			if b, _ := ops.MarshalBLSChanges(changes); string(b) != v.BeaconAPIJSON {
				t.Errorf("beacon API JSON\n got %s\nwant %s", b, v.BeaconAPIJSON)
			}
			// deposit_cli_version is the writing tool's own version.
			if b, _ := ops.MarshalBLSChangeFile(changes, n, "1.2.2"); string(b) != v.EthstakerFile {
				t.Errorf("ethstaker file\n got %s\nwant %s", b, v.EthstakerFile)
			}
			for _, form := range []string{v.BeaconAPIJSON, v.EthstakerFile} {
				got, err := ops.VerifyBLSChangeFile([]byte(form), n)
				if err != nil {
					t.Fatal(err)
				}
				for i := range got {
					if *got[i] != *changes[i] {
						t.Errorf("entry %d parsed %+v", i, got[i])
					}
				}
			}
			if ops.BLSChangeFileName(1700000000) != "bls_to_execution_change-1700000000.json" {
				t.Error(ops.BLSChangeFileName(1700000000))
			}
		})
	}
}

// TestWrongDomainFails: our own verification refuses an exit signed under
// the genesis fork version (the pre-EIP-7044 rule) and messages verified
// on another network.
func TestWrongDomainFails(t *testing.T) {
	seed := seedOf(t, "sister protect peanut hill ready work profit fit wish want small inflict flip member tail between sick setup bright duck morning sell paper worry", "")
	key := derive(t, seed, keygen.SigningPath(0))
	genesisRule := depositdata.Mainnet
	genesisRule.CapellaForkVersion = genesisRule.ForkVersion
	old, err := ops.SignExit(key, 7, 0, genesisRule)
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.VerifyExit(old, key.PublicKey(), depositdata.Mainnet); !errors.Is(err, ops.ErrSignature) {
		t.Errorf("genesis-fork exit verified on mainnet: %v", err)
	}
	e, err := ops.SignExit(key, 7, 0, depositdata.Mainnet)
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.VerifyExit(e, key.PublicKey(), depositdata.Hoodi); !errors.Is(err, ops.ErrSignature) {
		t.Errorf("mainnet exit verified on hoodi: %v", err)
	}
	other := derive(t, seed, keygen.SigningPath(1))
	if err := ops.VerifyExit(e, other.PublicKey(), depositdata.Mainnet); !errors.Is(err, ops.ErrSignature) {
		t.Errorf("exit verified with another key: %v", err)
	}
	wk := derive(t, seed, keygen.WithdrawalPath(0))
	c, err := ops.SignBLSChange(wk, 7, depositdata.BLSCredentials(wk.PublicKey()), depositdata.Address{1}, depositdata.Mainnet)
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.VerifyBLSChange(c, depositdata.Sepolia); !errors.Is(err, ops.ErrSignature) {
		t.Errorf("mainnet BLS change verified on sepolia: %v", err)
	}
	tampered := *c
	tampered.BLSToExecutionChange.ToExecutionAddress[0] ^= 1
	if err := ops.VerifyBLSChange(&tampered, depositdata.Mainnet); !errors.Is(err, ops.ErrSignature) {
		t.Errorf("changed address verified: %v", err)
	}
	produced = append(produced, opscheck.Exit(t, e, key.PublicKey(), depositdata.Mainnet), opscheck.BLSChange(t, c, depositdata.Mainnet))
}

func TestBadInput(t *testing.T) {
	seed := seedOf(t, "sister protect peanut hill ready work profit fit wish want small inflict flip member tail between sick setup bright duck morning sell paper worry", "")
	key := derive(t, seed, keygen.SigningPath(0))
	wk := derive(t, seed, keygen.WithdrawalPath(0))
	creds := depositdata.BLSCredentials(wk.PublicKey())
	addr := depositdata.Address{0x34}
	devnet, err := depositdata.CustomNetwork("devnet", "0x10000038")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		err  error
		run  func() error
	}{
		{"BLS change of 0x01 credentials", ops.ErrCredentials, func() error {
			_, err := ops.SignBLSChange(wk, 1, depositdata.ExecutionCredentials(addr, false), addr, depositdata.Mainnet)
			return err
		}},
		{"BLS change of 0x02 credentials", ops.ErrCredentials, func() error {
			_, err := ops.SignBLSChange(wk, 1, depositdata.ExecutionCredentials(addr, true), addr, depositdata.Mainnet)
			return err
		}},
		{"credentials of another withdrawal key", ops.ErrCredentials, func() error {
			other := derive(t, seed, keygen.WithdrawalPath(1))
			_, err := ops.SignBLSChange(other, 1, creds, addr, depositdata.Mainnet)
			return err
		}},
		{"exit on a devnet without roots", depositdata.ErrNoChainRoots, func() error {
			_, err := ops.SignExit(key, 1, 0, devnet)
			return err
		}},
		{"BLS change on a devnet without roots", depositdata.ErrNoChainRoots, func() error {
			_, err := ops.SignBLSChange(wk, 1, creds, addr, devnet)
			return err
		}},
		{"absurd epoch", ops.ErrRange, func() error {
			_, err := ops.SignExit(key, 1, ops.MaxEpoch+1, depositdata.Mainnet)
			return err
		}},
		{"far-future epoch", ops.ErrRange, func() error {
			_, err := ops.SignExit(key, 1, 1<<64-1, depositdata.Mainnet)
			return err
		}},
		{"validator index past the registry", ops.ErrRange, func() error {
			_, err := ops.SignExit(key, ops.MaxValidatorIndex+1, 0, depositdata.Mainnet)
			return err
		}},
		{"top-up below 1 ETH", depositdata.ErrAmount, func() error {
			_, err := ops.TopUp(key, creds, depositdata.GweiPerETH-1, depositdata.Mainnet)
			return err
		}},
		{"0x01 top-up above 32 ETH", depositdata.ErrAmount, func() error {
			_, err := ops.TopUp(key, depositdata.ExecutionCredentials(addr, false), 33*depositdata.GweiPerETH, depositdata.Mainnet)
			return err
		}},
		{"0x02 top-up above 2048 ETH", depositdata.ErrAmount, func() error {
			_, err := ops.TopUp(key, depositdata.ExecutionCredentials(addr, true), 2049*depositdata.GweiPerETH, depositdata.Mainnet)
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.run(); !errors.Is(err, c.err) {
				t.Fatalf("got %v, want %v", err, c.err)
			}
		})
	}
}

// TestDevnetChainRoots: a devnet with its roots given signs and verifies.
func TestDevnetChainRoots(t *testing.T) {
	seed := seedOf(t, "sister protect peanut hill ready work profit fit wish want small inflict flip member tail between sick setup bright duck morning sell paper worry", "")
	key := derive(t, seed, keygen.SigningPath(0))
	dev, err := depositdata.CustomNetwork("devnet", "0x10000038")
	if err != nil {
		t.Fatal(err)
	}
	// lodestar dev's root for 8 interop validators (shared recipes); any
	// nonzero root does.
	dev, err = dev.WithChainRoots("0x40000038", "0x270d43e74ce340de4bca2b1936beca0f4f5408d9e78aec4850920baf659d5b69")
	if err != nil {
		t.Fatal(err)
	}
	e, err := ops.SignExit(key, 3, 12, dev)
	if err != nil {
		t.Fatal(err)
	}
	produced = append(produced, opscheck.Exit(t, e, key.PublicKey(), dev))
}

func TestTopUp(t *testing.T) {
	seed := seedOf(t, "sister protect peanut hill ready work profit fit wish want small inflict flip member tail between sick setup bright duck morning sell paper worry", "")
	key := derive(t, seed, keygen.SigningPath(0))
	wk := derive(t, seed, keygen.WithdrawalPath(0))
	addr := depositdata.Address{0x34}
	for _, c := range []struct {
		creds  [32]byte
		amount uint64
	}{
		{depositdata.BLSCredentials(wk.PublicKey()), depositdata.GweiPerETH},
		{depositdata.ExecutionCredentials(addr, false), 32 * depositdata.GweiPerETH},
		{depositdata.ExecutionCredentials(addr, true), 2048 * depositdata.GweiPerETH},
		{depositdata.ExecutionCredentials(addr, true), depositdata.GweiPerETH},
	} {
		d, err := ops.TopUp(key, c.creds, c.amount, depositdata.Hoodi)
		if err != nil {
			t.Fatal(err)
		}
		file, _ := depositdata.MarshalFile([]*depositdata.Deposit{d})
		if _, errs := depositdata.VerifyFile(file, &depositdata.Hoodi); errs != nil {
			t.Fatal(errs)
		}
	}
}

// TestIndependentCheck runs every exit and BLS change the tests above
// produced (and the vectors' own signatures) through the Node checker
// (internal/opscheck): each must verify under its domain and fail under
// the wrong one (an exit under the genesis fork version). The checker must
// also reproduce the oracle's domains and signing roots, so a checker that
// refuses everything cannot pass.
func TestIndependentCheck(t *testing.T) {
	// Make every message again here, so that the check does not depend on
	// which tests -run selected.
	produced = nil
	for _, f := range []func(*testing.T){TestConsensusSpecsVector, TestOracleExits, TestOracleBLSChanges, TestWrongDomainFails, TestDevnetChainRoots} {
		f(t)
	}
	if len(produced) != 10 {
		t.Fatalf("%d messages produced, want 10", len(produced))
	}
	var v exitVector
	readJSON(t, "testdata/oracle_sister_hoodi_exit.json", &v)
	vecItem := opscheck.Raw(t, "exit", []byte(v.BeaconAPIJSON), networkOf(t, v.Network, v.Chain), v.SigningPubkey)
	res := opscheck.Check(t, []opscheck.Item{vecItem})
	if !res[0].OK || res[0].Domain != v.Domain || res[0].SigningRoot != v.SigningRoot {
		t.Fatalf("checker on the oracle exit: %+v (want domain %s, signing root %s)", res[0], v.Domain, v.SigningRoot)
	}
	opscheck.RequireValid(t, produced)
}
