package envelope_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/ethkeygen/ethkeygen/envelope"
)

var update = flag.Bool("update", false, "regenerate the pinned sealed blob in testdata/envelope and the FuzzOpen seed corpus")

const (
	goldenDir          = "../testdata/envelope"
	testIdentityFile   = goldenDir + "/test-only-identity.txt"
	goldenVectorFile   = goldenDir + "/sealed-v1-age-x25519.json"
	fuzzCorpusDir      = "testdata/fuzz/FuzzOpen"
	testIdentityHeader = "# TEST-ONLY age identity for ethkeygen envelope test vectors.\n" +
		"# It is public in the repository: NEVER use it to protect real secrets.\n"
)

type goldenVector struct {
	Comment      string            `json:"comment"`
	Recipient    string            `json:"recipient"`
	Context      map[string]string `json:"context"`
	PlaintextHex string            `json:"plaintext_hex"`
	SealedHex    string            `json:"sealed_hex"`
}

// loadTestIdentity reads the committed TEST-ONLY identity. It deliberately
// bypasses LoadOrCreateIdentity, which would refuse a file checked out with
// mode 0644.
func loadTestIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	f, err := os.Open(testIdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil || len(ids) != 1 {
		t.Fatalf("parse %s: %v", testIdentityFile, err)
	}
	return ids[0].(*age.X25519Identity)
}

func readGolden(t testing.TB) (goldenVector, []byte, []byte) {
	t.Helper()
	data, err := os.ReadFile(goldenVectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var v goldenVector
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	pt, err1 := hex.DecodeString(v.PlaintextHex)
	sealed, err2 := hex.DecodeString(v.SealedHex)
	if err1 != nil || err2 != nil {
		t.Fatalf("bad hex in %s", goldenVectorFile)
	}
	return v, pt, sealed
}

// TestPinnedSealedBlob opens a blob sealed by an earlier version of this
// package. If it fails, the wire format changed: that needs a new version
// byte, not a regenerated vector.
func TestPinnedSealedBlob(t *testing.T) {
	if *update {
		regenerateGolden(t)
	}
	id := loadTestIdentity(t)
	v, pt, sealed := readGolden(t)
	if v.Recipient != id.Recipient().String() {
		t.Fatalf("vector recipient %s does not match the test identity", v.Recipient)
	}
	l := parseLayout(t, sealed)
	if l.provider != 2 || l.keyID != v.Recipient {
		t.Fatalf("pinned blob header: provider %d key ID %q", l.provider, l.keyID)
	}
	ctx := context.Background()
	got, err := envelope.NewLocalOpener(id).Open(ctx, sealed, v.Context)
	if err != nil {
		t.Fatalf("opening the pinned blob: %v", err)
	}
	if !bytes.Equal(got, pt) {
		t.Fatalf("pinned blob opened to %x, want %x", got, pt)
	}
	other := envelope.Context{"pubkey": "00", "purpose": v.Context["purpose"]}
	if _, err := envelope.NewLocalOpener(id).Open(ctx, sealed, other); err != envelope.ErrAuth {
		t.Fatalf("pinned blob with another context: %v, want ErrAuth", err)
	}
}

func regenerateGolden(t *testing.T) {
	if _, err := os.Stat(testIdentityFile); os.IsNotExist(err) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		content := testIdentityHeader + fmt.Sprintf("# public key: %s\n%s\n", id.Recipient(), id)
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(testIdentityFile, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	id := loadTestIdentity(t)
	ec := envelope.Context{
		"pubkey":  testPubkey,
		"purpose": envelope.PurposeValidatorSecret,
		"format":  envelope.FormatVersion,
	}
	// A stand-in for a 32-byte BLS secret key; not a real validator key.
	pt := []byte("TEST-ONLY validator secret 32 B!")
	ctx := context.Background()
	sealed, err := envelope.NewLocalSealer(id.Recipient()).Seal(ctx, pt, ec)
	if err != nil {
		t.Fatal(err)
	}
	v := goldenVector{
		Comment:      "Sealed format v1, provider age-x25519, sealed to test-only-identity.txt. TEST-ONLY. Regenerate with: go test ./envelope -run TestPinnedSealedBlob -update",
		Recipient:    id.Recipient().String(),
		Context:      ec,
		PlaintextHex: hex.EncodeToString(pt),
		SealedHex:    hex.EncodeToString(sealed),
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goldenVectorFile, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}

	// Seed corpus for FuzzOpen: the pinned blob, a short secret, and
	// malformed variants near the parser's edges.
	short, err := envelope.NewLocalSealer(id.Recipient()).Seal(ctx, []byte("s"), ec)
	if err != nil {
		t.Fatal(err)
	}
	l := parseLayout(t, short)
	seeds := map[string][]byte{
		"pinned":          sealed,
		"short":           short,
		"truncated-nonce": short[:l.nonceOff+5],
		"header-only":     short[:8],
		"trailing":        append(bytes.Clone(short), 0),
		"wrapped-len-max": append(bytes.Clone(short[:l.wrappedOff-2]), 0xff, 0xff),
	}
	if err := os.MkdirAll(fuzzCorpusDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(fuzzCorpusDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
