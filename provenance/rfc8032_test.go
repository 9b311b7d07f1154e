package provenance_test

import (
	"bufio"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethkeygen/ethkeygen/provenance"
)

type rfcVector struct {
	name                string
	seed, pub, msg, sig []byte
}

// rfc8032Vectors reads testdata/rfc8032_ed25519.txt (RFC 8032 section 7.1).
func rfc8032Vectors(t testing.TB) []rfcVector {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "rfc8032_ed25519.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := func(s string) []byte {
		if s == "-" {
			return []byte{}
		}
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatalf("vector hex %q: %v", s, err)
		}
		return b
	}
	var vs []rfcVector
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 5 {
			t.Fatalf("bad vector line %q", line)
		}
		vs = append(vs, rfcVector{fs[0], dec(fs[1]), dec(fs[2]), dec(fs[3]), dec(fs[4])})
	}
	if len(vs) != 3 {
		t.Fatalf("read %d vectors, want 3", len(vs))
	}
	return vs
}

func flip(b []byte, bit int) []byte {
	c := append([]byte(nil), b...)
	c[bit/8] ^= 1 << (bit % 8)
	return c
}

// TestRFC8032: the Ed25519 Signer and Verifier reproduce RFC 8032's
// published public keys and signatures byte for byte, and any flipped bit
// of the signature (or of a non-empty message) is ErrForged.
func TestRFC8032(t *testing.T) {
	for _, v := range rfc8032Vectors(t) {
		t.Run(v.name, func(t *testing.T) {
			s, err := provenance.NewEd25519Signer(ed25519.NewKeyFromSeed(v.seed))
			if err != nil {
				t.Fatal(err)
			}
			if want := "ed25519:" + hex.EncodeToString(v.pub); s.KeyID() != want {
				t.Fatalf("KeyID %s, want %s", s.KeyID(), want)
			}
			sig, err := s.Sign(t.Context(), v.msg)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(sig) != hex.EncodeToString(v.sig) {
				t.Fatalf("signature\n %x\nwant\n %x", sig, v.sig)
			}
			ver, err := provenance.NewEd25519Verifier(v.pub)
			if err != nil {
				t.Fatal(err)
			}
			if ver.KeyID() != s.KeyID() {
				t.Fatalf("verifier KeyID %s, signer %s", ver.KeyID(), s.KeyID())
			}
			if err := ver.Verify(v.msg, v.sig); err != nil {
				t.Fatalf("RFC signature refused: %v", err)
			}
			for bit := range len(v.sig) * 8 {
				if err := ver.Verify(v.msg, flip(v.sig, bit)); !errors.Is(err, provenance.ErrForged) {
					t.Fatalf("signature bit %d flipped: %v, want ErrForged", bit, err)
				}
			}
			for bit := range len(v.msg) * 8 {
				if err := ver.Verify(flip(v.msg, bit), v.sig); !errors.Is(err, provenance.ErrForged) {
					t.Fatalf("message bit %d flipped: %v, want ErrForged", bit, err)
				}
			}
			for _, bad := range [][]byte{nil, v.sig[:63], append(append([]byte{}, v.sig...), 0)} {
				if err := ver.Verify(v.msg, bad); !errors.Is(err, provenance.ErrForged) {
					t.Fatalf("%d-byte signature: %v, want ErrForged", len(bad), err)
				}
			}
		})
	}
}

// TestRFC8032KeyFile: a generator.key written by hand in the documented
// format with RFC 8032 TEST 1's seed loads as that key: KeyID and
// signature are the RFC's, and the generator.pub it writes beside it holds
// the RFC's public key, which LoadLocalVerifier reads back.
func TestRFC8032KeyFile(t *testing.T) {
	v := rfc8032Vectors(t)[0]
	dir := t.TempDir()
	content := "# hand-written from RFC 8032 section 7.1 TEST 1\nETHKEYGEN-GENERATOR-ED25519-SECRET-KEY:" + hex.EncodeToString(v.seed) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "generator.key"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	s, created, err := provenance.LoadOrCreateLocalSigner(dir)
	if err != nil || created {
		t.Fatalf("LoadOrCreateLocalSigner: created=%v err=%v", created, err)
	}
	if want := "ed25519:" + hex.EncodeToString(v.pub); s.KeyID() != want {
		t.Fatalf("KeyID %s, want %s", s.KeyID(), want)
	}
	sig, err := s.Sign(t.Context(), v.msg)
	if err != nil || hex.EncodeToString(sig) != hex.EncodeToString(v.sig) {
		t.Fatalf("Sign = %x, %v; want the RFC signature", sig, err)
	}
	pub, err := os.ReadFile(filepath.Join(dir, "generator.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pub), "\nethkeygen-generator-ed25519:"+hex.EncodeToString(v.pub)+"\n") {
		t.Fatalf("generator.pub does not hold the RFC public key:\n%s", pub)
	}
	ver, err := provenance.LoadLocalVerifier(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ver.Verify(v.msg, v.sig); err != nil {
		t.Fatal(err)
	}
}
