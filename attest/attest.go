// Package attest handles AWS Nitro Enclaves attestation documents: it asks
// the Nitro Security Module for one ([NSM], the production
// envelope.Attester) and parses and verifies them ([Verify]), as KMS does
// before it honours a Decrypt Recipient.
//
// An attestation document is a COSE_Sign1 structure (RFC 9052) in CBOR:
//
//	[ protected: bstr .cbor {1: -35},   ; alg ES384
//	  unprotected: {},
//	  payload: bstr .cbor Document,
//	  signature: bstr (96 bytes, r || s over P-384) ]
//
// signed by the key of Document.Certificate, which chains through
// Document.CABundle to the AWS Nitro Enclaves root.
//
// # Security
//
// The ephemeral public key put into a document is public. The package never
// logs and handles no secret.
package attest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Errors. Test for them with errors.Is.
var (
	// ErrFormat reports a document that does not parse.
	ErrFormat = errors.New("attest: malformed attestation document")
	// ErrSignature reports a document whose signature or certificate
	// chain does not verify.
	ErrSignature = errors.New("attest: attestation document does not verify")
	// ErrNSM reports a failure of the Nitro Security Module.
	ErrNSM = errors.New("attest: nitro security module failed")
)

// MaxDocumentSize bounds what Parse and Verify accept.
const MaxDocumentSize = 32 << 10

// Document is the payload of an attestation document.
type Document struct {
	ModuleID    string          `cbor:"module_id"`
	Digest      string          `cbor:"digest"`    // "SHA384"
	Timestamp   uint64          `cbor:"timestamp"` // ms since the Unix epoch
	PCRs        map[uint][]byte `cbor:"pcrs"`
	Certificate []byte          `cbor:"certificate"` // DER
	CABundle    [][]byte        `cbor:"cabundle"`    // DER, root first
	PublicKey   []byte          `cbor:"public_key"`
	UserData    []byte          `cbor:"user_data"`
	Nonce       []byte          `cbor:"nonce"`
}

// ImageSha384 is PCR0 in lowercase hex: the measurement KMS compares with the
// kms:RecipientAttestation:ImageSha384 condition key.
func (d *Document) ImageSha384() string { return hex.EncodeToString(d.PCRs[0]) }

// PCR returns PCR i in lowercase hex ("" if absent), as compared with the
// kms:RecipientAttestation:PCR<i> condition keys.
func (d *Document) PCR(i uint) string { return hex.EncodeToString(d.PCRs[i]) }

// Sign1 is the COSE_Sign1 array.
type Sign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected map[any]any
	Payload     []byte
	Signature   []byte
}

// coseAlgES384 is the COSE algorithm identifier of ECDSA with SHA-384.
const coseAlgES384 = -35

// MaxFieldSize is the longest public_key, user_data and nonce: the NSM
// accepts up to 1024 bytes for each, and real documents carry that much.
const MaxFieldSize = 1024

var decMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:       cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels: 8,
		IndefLength:     cbor.IndefLengthForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// payloadDecMode decodes the payload: current NSM firmware encodes its map
// with indefinite length (0xbf ... 0xff), older firmware with a definite
// one; both are accepted. Duplicate keys are still refused, and the
// signature covers the payload's bytes as sent.
var payloadDecMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:       cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels: 8,
		IndefLength:     cbor.IndefLengthAllowed,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// ProtectedES384 is the protected header of a document: {1: -35}.
var ProtectedES384 = []byte{0xa1, 0x01, 0x38, 0x22}

// SigStructure is the byte string signed for a COSE_Sign1 (RFC 9052 §4.4):
// ["Signature1", protected, h”, payload].
func SigStructure(protected, payload []byte) ([]byte, error) {
	return cbor.Marshal([]any{"Signature1", protected, []byte{}, payload})
}

// Parse decodes a document without verifying it.
func Parse(doc []byte) (*Sign1, *Document, error) {
	if len(doc) == 0 || len(doc) > MaxDocumentSize {
		return nil, nil, fmt.Errorf("%w: size %d", ErrFormat, len(doc))
	}
	var s Sign1
	// A CBOR tag 18 (COSE_Sign1) is allowed around the array.
	var tagged cbor.RawTag
	body := doc
	if err := decMode.Unmarshal(doc, &tagged); err == nil {
		if tagged.Number != 18 {
			return nil, nil, fmt.Errorf("%w: CBOR tag %d", ErrFormat, tagged.Number)
		}
		body = tagged.Content
	}
	if err := decMode.Unmarshal(body, &s); err != nil {
		return nil, nil, fmt.Errorf("%w: COSE_Sign1: %v", ErrFormat, err)
	}
	var hdr map[int]any
	if err := decMode.Unmarshal(s.Protected, &hdr); err != nil {
		return nil, nil, fmt.Errorf("%w: protected header: %v", ErrFormat, err)
	}
	if alg, ok := hdr[1].(int64); !ok || alg != coseAlgES384 {
		return nil, nil, fmt.Errorf("%w: algorithm is not ES384", ErrFormat)
	}
	var d Document
	if err := payloadDecMode.Unmarshal(s.Payload, &d); err != nil {
		return nil, nil, fmt.Errorf("%w: payload: %v", ErrFormat, err)
	}
	switch {
	case d.ModuleID == "":
		return nil, nil, fmt.Errorf("%w: no module_id", ErrFormat)
	case d.Digest != "SHA384":
		return nil, nil, fmt.Errorf("%w: digest %q", ErrFormat, d.Digest)
	case d.Timestamp == 0:
		return nil, nil, fmt.Errorf("%w: no timestamp", ErrFormat)
	case len(d.PCRs) == 0 || len(d.PCRs) > 32:
		return nil, nil, fmt.Errorf("%w: %d PCRs", ErrFormat, len(d.PCRs))
	case len(d.Certificate) == 0 || len(d.CABundle) == 0:
		return nil, nil, fmt.Errorf("%w: no certificate", ErrFormat)
	case len(d.PublicKey) > MaxFieldSize || len(d.UserData) > MaxFieldSize || len(d.Nonce) > MaxFieldSize:
		return nil, nil, fmt.Errorf("%w: field too long", ErrFormat)
	}
	for i, v := range d.PCRs {
		if i > 31 || len(v) != sha512.Size384 {
			return nil, nil, fmt.Errorf("%w: PCR %d", ErrFormat, i)
		}
	}
	return &s, &d, nil
}

// Verify parses doc, checks its certificate chain against roots at time now
// and its COSE signature, and returns the payload.
func Verify(doc []byte, roots *x509.CertPool, now time.Time) (*Document, error) {
	s, d, err := Parse(doc)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(d.Certificate)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate: %v", ErrFormat, err)
	}
	inter := x509.NewCertPool()
	for _, der := range d.CABundle[1:] { // the first is the root: trust comes from roots
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: cabundle: %v", ErrFormat, err)
		}
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("%w: certificate chain: %v", ErrSignature, err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		return nil, fmt.Errorf("%w: certificate key is not P-384", ErrSignature)
	}
	if len(s.Signature) != 96 {
		return nil, fmt.Errorf("%w: signature length %d", ErrSignature, len(s.Signature))
	}
	tbs, err := SigStructure(s.Protected, s.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	h := sha512.Sum384(tbs)
	r := new(big.Int).SetBytes(s.Signature[:48])
	sv := new(big.Int).SetBytes(s.Signature[48:])
	if !ecdsa.Verify(pub, h[:], r, sv) {
		return nil, fmt.Errorf("%w: bad signature", ErrSignature)
	}
	return d, nil
}

// Attester is what envelope.NewNitroKMSOpener needs.
type Attester interface {
	Attest(ctx context.Context, publicKeyDER []byte) ([]byte, error)
}
