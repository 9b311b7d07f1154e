package attesttest_test

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/ethkeygen/ethkeygen/attest"
	"github.com/ethkeygen/ethkeygen/attest/attesttest"
)

// TestBothEncodings: the fake NSM emits the payload map with indefinite
// length (0xbf, as current firmware) or definite length (0xa9), both
// verify, both decode to the same document, and 1024-byte public_key,
// user_data and nonce (the NSM maximum) pass.
func TestBothEncodings(t *testing.T) {
	nsm := attesttest.New(attesttest.Image())
	long := func() []byte { b := make([]byte, attest.MaxFieldSize); rand.Read(b); return b }
	d := nsm.Document(long())
	d.UserData, d.Nonce = long(), long()
	var docs []*attest.Document
	for _, c := range []struct {
		enc  attesttest.Encoding
		head byte
	}{{attesttest.Indefinite, 0xbf}, {attesttest.Definite, 0xa9}} {
		nsm.SetEncoding(c.enc)
		b, err := nsm.Sign(d)
		if err != nil {
			t.Fatal(err)
		}
		var s attest.Sign1
		if err := cbor.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		if s.Payload[0] != c.head {
			t.Fatalf("encoding %d: payload starts 0x%02x, want 0x%02x", c.enc, s.Payload[0], c.head)
		}
		got, err := attest.Verify(b, nsm.Roots(), time.Now())
		if err != nil {
			t.Fatalf("encoding %d: %v", c.enc, err)
		}
		docs = append(docs, got)
	}
	if !bytes.Equal(docs[0].UserData, docs[1].UserData) || !bytes.Equal(docs[0].Nonce, d.Nonce) || docs[0].ImageSha384() != nsm.ImageSha384() {
		t.Fatal("the two encodings decode differently")
	}
	// One byte more than the NSM allows is refused.
	d.Nonce = append(d.Nonce, 0)
	b, err := nsm.Sign(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := attest.Parse(b); err == nil {
		t.Fatal("a 1025-byte nonce parsed")
	}
}
