// Package attesttest provides a fake Nitro Security Module that produces
// attestation documents shaped and signed like real ones (COSE_Sign1 over
// the CBOR payload, ES384, a certificate chaining to a root), so that a
// verifier such as attest.Verify, or a KMS stand-in, can check them.
package attesttest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/ethkeygen/ethkeygen/attest"
)

// NSM is a fake Nitro Security Module for one enclave image. It is safe for
// concurrent use.
type NSM struct {
	rootCert *x509.Certificate
	rootDER  []byte
	leafDER  []byte
	leafKey  *ecdsa.PrivateKey
	pcrs     map[uint][]byte

	mu       sync.Mutex
	encoding Encoding
	keys     [][]byte // public keys attested, in order
	fail     error
	calls    int
}

var _ attest.Attester = (*NSM)(nil)

// New returns a fake NSM whose image measurement (PCR0) is image, with
// PCR1, PCR2 and PCR8 derived from it. It creates its own root and
// signing certificate; trust the root with [NSM.Roots].
func New(image [48]byte) *NSM {
	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		panic(err)
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fake aws.nitro-enclaves root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		panic(err)
	}
	rootCert, _ := x509.ParseCertificate(rootDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		panic(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "i-0123456789abcdef0-enc0123456789abcdef"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(3 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, rootCert, &leafKey.PublicKey, rootKey)
	if err != nil {
		panic(err)
	}
	derive := func(label string) []byte {
		h := sha512.Sum384(append([]byte(label), image[:]...))
		return h[:]
	}
	return &NSM{
		rootCert: rootCert, rootDER: rootDER, leafDER: leafDER, leafKey: leafKey,
		pcrs: map[uint][]byte{0: image[:], 1: derive("kernel"), 2: derive("app"), 8: derive("signer")},
	}
}

// Encoding is how the NSM encodes a document's payload map.
type Encoding int

const (
	// Indefinite is current NSM firmware's encoding: the payload map has
	// indefinite length (0xbf, its pairs, 0xff). The default.
	Indefinite Encoding = iota
	// Definite is older firmware's: a map with its length in its head.
	Definite
)

// SetEncoding selects the payload encoding of the documents Attest and Sign
// make from now on.
func (n *NSM) SetEncoding(e Encoding) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.encoding = e
}

// Image returns a random image measurement, for tests.
func Image() [48]byte {
	var m [48]byte
	rand.Read(m[:])
	return m
}

// Roots is a pool holding the fake root, the counterpart of the AWS Nitro
// Enclaves root certificate.
func (n *NSM) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(n.rootCert)
	return p
}

// ImageSha384 is PCR0 in hex, the value for a key policy condition.
func (n *NSM) ImageSha384() string { return hex.EncodeToString(n.pcrs[0]) }

// PCR8 is PCR8 in hex (the signing certificate measurement of a signed EIF).
func (n *NSM) PCR8() string { return hex.EncodeToString(n.pcrs[8]) }

// Fail makes every Attest call fail with err (nil restores success).
func (n *NSM) Fail(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fail = err
}

// Calls reports how many times Attest was called.
func (n *NSM) Calls() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls
}

// PublicKeys returns the public keys attested, in order.
func (n *NSM) PublicKeys() [][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([][]byte(nil), n.keys...)
}

// Attest implements envelope.Attester: a signed document whose public_key
// is publicKeyDER.
func (n *NSM) Attest(ctx context.Context, publicKeyDER []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.calls++
	fail := n.fail
	n.keys = append(n.keys, append([]byte(nil), publicKeyDER...))
	n.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	if len(publicKeyDER) == 0 {
		return nil, errors.New("attesttest: empty public key")
	}
	return n.Sign(attest.Document{
		ModuleID:    "i-0123456789abcdef0-enc0123456789abcdef",
		Digest:      "SHA384",
		Timestamp:   uint64(time.Now().UnixMilli()),
		PCRs:        n.pcrs,
		Certificate: n.leafDER,
		CABundle:    [][]byte{n.rootDER},
		PublicKey:   publicKeyDER,
	})
}

// Document returns a template document for this NSM (for tests that build
// altered documents and sign them with [NSM.Sign]).
func (n *NSM) Document(publicKeyDER []byte) attest.Document {
	pcrs := make(map[uint][]byte, len(n.pcrs))
	for k, v := range n.pcrs {
		pcrs[k] = append([]byte(nil), v...)
	}
	return attest.Document{
		ModuleID: "i-0123456789abcdef0-enc0123456789abcdef", Digest: "SHA384",
		Timestamp: uint64(time.Now().UnixMilli()), PCRs: pcrs,
		Certificate: n.leafDER, CABundle: [][]byte{n.rootDER}, PublicKey: publicKeyDER,
	}
}

// Sign encodes d as a COSE_Sign1 signed with this NSM's key, its payload
// in the NSM's Encoding.
func (n *NSM) Sign(d attest.Document) ([]byte, error) {
	n.mu.Lock()
	enc := n.encoding
	n.mu.Unlock()
	payload, err := EncodePayload(d, enc)
	if err != nil {
		return nil, err
	}
	tbs, err := attest.SigStructure(attest.ProtectedES384, payload)
	if err != nil {
		return nil, err
	}
	h := sha512.Sum384(tbs)
	r, s, err := ecdsa.Sign(rand.Reader, n.leafKey, h[:])
	if err != nil {
		return nil, err
	}
	sig := make([]byte, 96)
	r.FillBytes(sig[:48])
	s.FillBytes(sig[48:])
	return cbor.Marshal(attest.Sign1{
		Protected:   attest.ProtectedES384,
		Unprotected: map[any]any{},
		Payload:     payload,
		Signature:   sig,
	})
}

// EncodePayload encodes d as a real NSM does, in the order real documents
// have (module_id, digest, timestamp, pcrs, certificate, cabundle,
// public_key, user_data, nonce; absent byte strings as null), as a map of
// definite or indefinite length.
func EncodePayload(d attest.Document, e Encoding) ([]byte, error) {
	if e == Definite {
		return cbor.Marshal(d)
	}
	var b bytes.Buffer
	enc := cbor.NewEncoder(&b)
	if err := enc.StartIndefiniteMap(); err != nil {
		return nil, err
	}
	for _, kv := range []struct {
		k string
		v any
	}{
		{"module_id", d.ModuleID}, {"digest", d.Digest}, {"timestamp", d.Timestamp}, {"pcrs", d.PCRs},
		{"certificate", d.Certificate}, {"cabundle", d.CABundle},
		{"public_key", d.PublicKey}, {"user_data", d.UserData}, {"nonce", d.Nonce},
	} {
		if err := enc.Encode(kv.k); err != nil {
			return nil, err
		}
		if err := enc.Encode(kv.v); err != nil {
			return nil, err
		}
	}
	if err := enc.EndIndefinite(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
