package keygen_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/keygen"
	"golang.org/x/text/unicode/norm"
)

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestBIP39TrezorVectors runs the trezor/python-mnemonic vectors (passphrase
// "TREZOR") in every language go-bip39 ships.
func TestBIP39TrezorVectors(t *testing.T) {
	var file struct {
		Passphrase string                `json:"passphrase"`
		Vectors    map[string][][]string `json:"vectors"`
	}
	readJSON(t, "../testdata/vectors/bip39_trezor.json", &file)
	ran := 0
	for lang, vectors := range file.Vectors {
		for i, v := range vectors {
			t.Run(fmt.Sprintf("%s/%d", lang, i), func(t *testing.T) {
				entropy, _ := hex.DecodeString(v[0])
				m, err := keygen.MnemonicFromEntropy(entropy, keygen.Language(lang))
				if err != nil {
					t.Fatal(err)
				}
				if got, want := m.UnsafeString(), strings.Join(strings.Fields(norm.NFKD.String(v[1])), " "); got != want {
					t.Fatalf("mnemonic from entropy:\n got %s\nwant %s", got, want)
				}
				p, err := keygen.ParseMnemonic(v[1])
				if err != nil {
					t.Fatal(err)
				}
				if lang != "chinese_simplified" && lang != "chinese_traditional" && p.Language() != keygen.Language(lang) {
					t.Fatalf("detected %s", p.Language())
				}
				if got := hex.EncodeToString(p.Seed(file.Passphrase).UnsafeBytes()); got != v[2] {
					t.Fatalf("seed:\n got %s\nwant %s", got, v[2])
				}
				// Issue 13 item 12: the words cut to their first four letters
				// (after NFKC, as ethstaker-deposit-cli cuts them) give the
				// same seed, in the languages whose lists BIP-39 makes
				// unique in four letters.
				if abbreviable[lang] {
					var short []string
					for _, w := range strings.Fields(norm.NFKC.String(v[1])) {
						if r := []rune(w); len(r) > 4 {
							w = string(r[:4])
						}
						short = append(short, w)
					}
					a, err := keygen.ParseMnemonic(strings.Join(short, " "))
					if err != nil {
						t.Fatalf("abbreviated: %v", err)
					}
					if got := hex.EncodeToString(a.Seed(file.Passphrase).UnsafeBytes()); got != v[2] || a.Language() != keygen.Language(lang) {
						t.Fatalf("abbreviated (%s): seed\n got %s\nwant %s", a.Language(), got, v[2])
					}
				}
				ran++
			})
		}
	}
	if ran < 150 || len(file.Vectors["portuguese"]) != 24 {
		t.Fatalf("only %d vectors ran", ran)
	}
}

// abbreviable: the lists BIP-39 guarantees unique in their first four
// letters (bip-0039-wordlists.md).
var abbreviable = map[string]bool{"english": true, "spanish": true, "french": true, "italian": true, "czech": true, "portuguese": true}

// TestEIP2333Vectors checks master and child keys of the ERC-2333 test cases.
func TestEIP2333Vectors(t *testing.T) {
	var file struct {
		Cases []struct {
			Name       string `json:"name"`
			Seed       string `json:"seed"`
			MasterSK   string `json:"master_SK"`
			ChildIndex uint32 `json:"child_index"`
			ChildSK    string `json:"child_SK"`
			Mnemonic   string `json:"mnemonic"`
			Passphrase string `json:"passphrase"`
		} `json:"test_cases"`
	}
	readJSON(t, "../testdata/vectors/eip2333.json", &file)
	if len(file.Cases) < 4 {
		t.Fatalf("%d cases", len(file.Cases))
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			seedBytes, _ := hex.DecodeString(c.Seed)
			if c.Mnemonic != "" {
				m, err := keygen.ParseMnemonic(c.Mnemonic)
				if err != nil {
					t.Fatal(err)
				}
				if got := m.Seed(c.Passphrase).UnsafeBytes(); !bytes.Equal(got, seedBytes) {
					t.Fatalf("seed from mnemonic %x", got)
				}
			}
			seed := keygen.NewBytes(seedBytes)
			for path, want := range map[string]string{"m": c.MasterSK, fmt.Sprintf("m/%d", c.ChildIndex): c.ChildSK} {
				k, err := keygen.DeriveKey(seed, path)
				if err != nil {
					t.Fatal(err)
				}
				if got := new(big.Int).SetBytes(k.UnsafeBytes()).String(); got != want {
					t.Fatalf("%s: got %s want %s", path, got, want)
				}
			}
		})
	}
}

func TestDeriveValidatorMatchesPaths(t *testing.T) {
	m, err := keygen.ParseMnemonic("test test test test test test test test test test test waste")
	if err != nil {
		t.Fatal(err)
	}
	seed := m.Seed("")
	for _, i := range []uint32{0, 1, 1024} {
		v, err := keygen.DeriveValidator(seed, i)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := keygen.DeriveKey(seed, keygen.SigningPath(i))
		w, _ := keygen.DeriveKey(seed, keygen.WithdrawalPath(i))
		if !bytes.Equal(v.Signing.UnsafeBytes(), s.UnsafeBytes()) || !bytes.Equal(v.WithdrawalPubkey, w.PublicKey()) {
			t.Fatalf("validator %d differs from its EIP-2334 paths", i)
		}
	}
	if keygen.SigningPath(7) != "m/12381/3600/7/0/0" || keygen.WithdrawalPath(7) != "m/12381/3600/7/0" {
		t.Fatal("EIP-2334 paths")
	}
}

func TestNewMnemonic(t *testing.T) {
	a, err := keygen.NewMnemonic(rand.Reader, keygen.English)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := keygen.NewMnemonic(rand.Reader, keygen.English)
	if a.Words() != 24 || a.UnsafeString() == b.UnsafeString() {
		t.Fatal("want two different 24-word mnemonics")
	}
	p, err := keygen.ParseMnemonic(a.UnsafeString())
	if err != nil || p.UnsafeString() != a.UnsafeString() {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := keygen.NewMnemonic(bytes.NewReader(make([]byte, 5)), keygen.English); err == nil {
		t.Fatal("short entropy source accepted")
	}
	if _, err := keygen.NewMnemonic(rand.Reader, "klingon"); !errors.Is(err, keygen.ErrLanguage) {
		t.Fatal(err)
	}
}

func TestParseMnemonicErrors(t *testing.T) {
	good := "test test test test test test test test test test test waste"
	cases := []struct {
		name, in string
		want     error
		mention  string
	}{
		{"unknown word", strings.Replace(good, "waste", "wxstex", 1), keygen.ErrMnemonicWord, "word 12"},
		{"bad checksum", strings.Replace(good, "waste", "test", 1), keygen.ErrMnemonicChecksum, "checksum"},
		{"too short", "test test test", keygen.ErrMnemonicLength, "got 3"},
		{"empty", "", keygen.ErrMnemonicLength, "got 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := keygen.ParseMnemonic(c.in)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.mention) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "wxstex") {
				t.Fatalf("got %v", err)
			}
		})
	}
	// As in ethstaker-deposit-cli, only the first four letters of a word
	// count: "wastex" reads as "waste".
	if m, err := keygen.ParseMnemonic(strings.Replace(good, "waste", "wastex", 1)); err != nil || m.UnsafeString() != good {
		t.Fatalf("abbreviation: %v", err)
	}
	// Case, extra whitespace and CRLF do not matter.
	if _, err := keygen.ParseMnemonic("  TEST test\ttest test test test test test test test test waste\r\n"); err != nil {
		t.Fatal(err)
	}
}

func TestSecretsRedact(t *testing.T) {
	m, _ := keygen.ParseMnemonic("test test test test test test test test test test test waste")
	seed := m.Seed("")
	v, _ := keygen.DeriveValidator(seed, 0)
	skHex := hex.EncodeToString(v.Signing.UnsafeBytes())
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	for _, s := range []any{m, seed, v.Signing, v} {
		j, _ := json.Marshal(s)
		logger.Info("x", "secret", s)
		out := fmt.Sprintf("%v %+v %#v %s %q %x", s, s, s, s, s, s) + string(j) + logs.String()
		for _, leak := range []string{"test test", skHex, hex.EncodeToString(seed.UnsafeBytes())[:16]} {
			if strings.Contains(out, leak) {
				t.Fatalf("%T leaked in %q", s, out)
			}
		}
		if !strings.Contains(out, keygen.Redacted) {
			t.Fatalf("%T did not print the redaction marker", s)
		}
	}
	m.Destroy()
	if m.UnsafeString() != "" {
		t.Fatal("Destroy left the phrase")
	}
}
