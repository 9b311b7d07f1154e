package attest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/attest"
	"github.com/ethkeygen/ethkeygen/attest/attesttest"
)

// FuzzParse: any attestation document (it reaches the enclave side from KMS
// or a test double, and Verify is what KMS's checks are modelled on). Parse
// and Verify never panic; a refusal is ErrFormat or ErrSignature and one
// line; whatever parses has only PCRs 0..31 of 48 bytes and bounded fields;
// nothing verifies against the roots of an NSM that did not sign it.
func FuzzParse(f *testing.F) {
	nsm := attesttest.New(attesttest.Image())
	doc, err := nsm.Attest(context.Background(), []byte("fuzz public key"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(doc)
	tagged := append([]byte{0xd2}, doc...) // tag 18, COSE_Sign1
	f.Add(tagged)
	f.Add(append([]byte{0xd1}, doc...)) // tag 17: refused
	d := nsm.Document(nil)
	d.PCRs[40] = make([]byte, 48)
	if b, err := nsm.Sign(d); err == nil {
		f.Add(b)
	}
	f.Add([]byte{0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x40, 0x40}) // short array
	f.Add([]byte{0x9f, 0xff})                                           // indefinite length
	other := attesttest.New(attesttest.Image())
	now := time.Now()
	f.Fuzz(func(t *testing.T, b []byte) {
		s, d, err := attest.Parse(b)
		if err != nil {
			if s != nil || d != nil {
				t.Fatal("a document and an error")
			}
			checkAttestError(t, err)
		} else {
			for i, v := range d.PCRs {
				if i > 31 || len(v) != 48 {
					t.Fatalf("PCR %d of %d bytes accepted", i, len(v))
				}
			}
			if d.ModuleID == "" || d.Digest != "SHA384" || d.Timestamp == 0 || len(d.Certificate) == 0 || len(d.CABundle) == 0 {
				t.Fatalf("incomplete document accepted: %+v", d)
			}
			if len(d.PublicKey) > 1024 || len(d.UserData) > 512 || len(d.Nonce) > 512 {
				t.Fatal("oversized field accepted")
			}
		}
		vd, verr := attest.Verify(b, other.Roots(), now)
		if verr == nil {
			t.Fatalf("a document verified against roots that never signed it: %+v", vd)
		}
		checkAttestError(t, verr)
		if err != nil && !errors.Is(verr, attest.ErrFormat) {
			t.Fatalf("Parse refused (%v) but Verify said %v", err, verr)
		}
	})
}

func checkAttestError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, attest.ErrFormat) && !errors.Is(err, attest.ErrSignature) {
		t.Fatalf("error %q is no sentinel", err)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Fatalf("error %q is not one line", err)
	}
}
