package attest_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/attest"
)

// awsRootSHA256 is the SHA-256 fingerprint of the AWS Nitro Enclaves root G1
// as AWS publishes it ("Verifying the root of trust", Nitro Enclaves User
// Guide).
const awsRootSHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"

// realDocuments are the five real attestation documents of testdata/nitro
// (see its SOURCE), with what each must show.
var realDocuments = []struct {
	file       string
	longFields bool // 1024-byte public_key, user_data, nonce
	zeroPCRs   bool // debug mode
}{
	{"eternis_2024-07-31_a.cbor", false, false},
	{"eternis_2024-07-31_b.cbor", false, false},
	{"blocky_nitrite_2024-09-07.cbor", true, false},
	{"blocky_nitrite_2024-09-07_debug.cbor", true, true},
	{"public_go_client_2026-02-02.cbor", false, false},
}

func awsRoots(t *testing.T) *x509.CertPool {
	t.Helper()
	der, err := os.ReadFile(filepath.Join("testdata", "nitro", "aws_nitro_root_g1.der"))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(der); hex.EncodeToString(sum[:]) != awsRootSHA256 {
		t.Fatalf("root fingerprint %x, AWS publishes %s", sum, awsRootSHA256)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if root.Subject.CommonName != "aws.nitro-enclaves" {
		t.Fatalf("root subject %v", root.Subject)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return pool
}

func readDoc(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "nitro", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRealDocuments: every real document verifies against the AWS root at
// its own timestamp (and not long after it, when its leaf has expired), with
// the fields real hardware emits.
func TestRealDocuments(t *testing.T) {
	roots := awsRoots(t)
	for _, c := range realDocuments {
		t.Run(c.file, func(t *testing.T) {
			b := readDoc(t, c.file)
			_, d, err := attest.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			at := time.UnixMilli(int64(d.Timestamp))
			got, err := attest.Verify(b, roots, at)
			if err != nil {
				t.Fatalf("at its timestamp %v: %v", at, err)
			}
			if got.ModuleID == "" || len(got.PCRs) < 3 || len(got.ImageSha384()) != 96 {
				t.Errorf("module %q, %d PCRs, PCR0 %q", got.ModuleID, len(got.PCRs), got.ImageSha384())
			}
			if c.longFields && (len(got.PublicKey) != 1024 || len(got.UserData) != 1024 || len(got.Nonce) != 1024) {
				t.Errorf("public_key %d, user_data %d, nonce %d bytes; want 1024 each", len(got.PublicKey), len(got.UserData), len(got.Nonce))
			}
			if zero := got.ImageSha384() == hex.EncodeToString(make([]byte, 48)); zero != c.zeroPCRs {
				t.Errorf("PCR0 %s: all zero %v, want %v", got.ImageSha384(), zero, c.zeroPCRs)
			}
			if _, err := attest.Verify(b, roots, at.Add(30*24*time.Hour)); !errors.Is(err, attest.ErrSignature) {
				t.Errorf("a month later (leaf expired): %v", err)
			}
		})
	}
}

// TestRealDocumentsTampered: flipping any one byte of the signed payload or
// of the signature of a real document makes it fail (a parse error or a
// signature error, never a verified document).
func TestRealDocumentsTampered(t *testing.T) {
	roots := awsRoots(t)
	for _, c := range realDocuments {
		b := readDoc(t, c.file)
		s, d, err := attest.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		at := time.UnixMilli(int64(d.Timestamp))
		// Positions to flip: every 97th byte of the document, plus the last
		// (inside the signature).
		for i := 0; i < len(b); i += 97 {
			if i < 4 { // the array header and protected header: reshaping, not forging
				continue
			}
			bad := append([]byte(nil), b...)
			bad[i] ^= 0x01
			if got, err := attest.Verify(bad, roots, at); err == nil {
				t.Fatalf("%s: byte %d flipped, still verifies (module %s)", c.file, i, got.ModuleID)
			}
		}
		bad := append([]byte(nil), b...)
		bad[len(bad)-1] ^= 0x80
		if _, err := attest.Verify(bad, roots, at); !errors.Is(err, attest.ErrSignature) {
			t.Errorf("%s: signature flipped: %v", c.file, err)
		}
		_ = s
		// Another root (the right chain to an untrusted root) fails.
		if _, err := attest.Verify(b, x509.NewCertPool(), at); !errors.Is(err, attest.ErrSignature) {
			t.Errorf("%s: empty root pool: %v", c.file, err)
		}
	}
}
