package envelopetest

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ethkeygen/ethkeygen/attest"
	"github.com/ethkeygen/ethkeygen/envelope"
)

// RecipientPolicy is the part of a KMS key policy that conditions Decrypt
// on a Nitro Enclaves attestation, as the condition keys
// kms:RecipientAttestation:ImageSha384 and kms:RecipientAttestation:PCR8
// do. Values are hex and compared case-insensitively, like
// StringEqualsIgnoreCase.
type RecipientPolicy struct {
	// Roots are the trusted attestation roots (the AWS Nitro Enclaves root
	// in production; attesttest.NSM.Roots in tests). Required.
	Roots *x509.CertPool
	// ImageSha384 is the required PCR0. Required: an empty value denies
	// every request.
	ImageSha384 string
	// PCR8, if set, is the required PCR8 (the signing certificate of a
	// signed enclave image).
	PCR8 string
	// AllowWithoutRecipient lets Decrypt without a Recipient return the
	// plaintext (a policy that also grants the role plain kms:Decrypt).
	// The default denies it, as a policy whose Decrypt statement carries
	// the RecipientAttestation conditions does.
	AllowWithoutRecipient bool
}

// Fault makes a RecipientKMS return a defective CiphertextForRecipient,
// to test that the enclave side refuses it.
type Fault int

// Faults.
const (
	FaultNone Fault = iota
	// FaultBadPadding encrypts the data key with PKCS#7 padding that is
	// not exact (the padding bytes differ from the pad length).
	FaultBadPadding
	// FaultWrongRecipientKey encrypts the content key for another RSA key
	// than the one in the attestation document.
	FaultWrongRecipientKey
)

// RecipientKMS wraps a KMS fake with Nitro Enclaves Recipient support.
// Decrypt with a Recipient:
//
//   - requires KeyEncryptionAlgorithm RSAES_OAEP_SHA_256 (else
//     ValidationException);
//   - verifies the attestation document with attest.Verify against
//     Policy.Roots: a malformed, unsigned or tampered document fails with
//     ValidationException;
//   - enforces Policy: a PCR0 (ImageSha384) or PCR8 other than the
//     policy's fails with AccessDeniedException;
//   - unwraps the blob with the wrapped fake, so the encryption context,
//     KeyId and key state are checked exactly as for a plain Decrypt;
//   - returns the plaintext only as CiphertextForRecipient: a real CMS
//     EnvelopedData (RSAES-OAEP-SHA256 key transport to the document's
//     public key, AES-256-CBC content), BER-encoded with indefinite lengths
//     and a chunked encryptedContent like KMS's, and Plaintext nil.
type RecipientKMS struct {
	*KMS
	Policy RecipientPolicy

	mu    sync.Mutex
	fault Fault
	docs  int
}

var _ envelope.KMSDecryptAPI = (*RecipientKMS)(nil)

// NewRecipientKMS wraps k with policy.
func NewRecipientKMS(k *KMS, policy RecipientPolicy) *RecipientKMS {
	return &RecipientKMS{KMS: k, Policy: policy}
}

// SetFault makes subsequent Recipient responses defective.
func (r *RecipientKMS) SetFault(f Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fault = f
}

// Attested reports how many attestation documents passed verification and
// policy.
func (r *RecipientKMS) Attested() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.docs
}

// Decrypt implements envelope.KMSDecryptAPI.
func (r *RecipientKMS) Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	if in == nil || in.Recipient == nil {
		if !r.Policy.AllowWithoutRecipient {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return nil, opError(OpDecrypt, AccessDenied())
		}
		return r.KMS.Decrypt(ctx, in, optFns...)
	}
	rec := in.Recipient
	if rec.KeyEncryptionAlgorithm != types.KeyEncryptionMechanismRsaesOaepSha256 {
		return nil, opError(OpDecrypt, validation("KeyEncryptionAlgorithm must be RSAES_OAEP_SHA_256"))
	}
	doc, err := attest.Verify(rec.AttestationDocument, r.Policy.Roots, time.Now())
	if err != nil {
		return nil, opError(OpDecrypt, validation("The attestation document is not valid."))
	}
	if r.Policy.ImageSha384 == "" || !strings.EqualFold(doc.ImageSha384(), r.Policy.ImageSha384) ||
		(r.Policy.PCR8 != "" && !strings.EqualFold(doc.PCR(8), r.Policy.PCR8)) {
		return nil, opError(OpDecrypt, AccessDenied())
	}
	pub, err := x509.ParsePKIXPublicKey(doc.PublicKey)
	if err != nil {
		return nil, opError(OpDecrypt, validation("The attestation document's public key is not valid."))
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok || rsaPub.N.BitLen() < 2048 {
		return nil, opError(OpDecrypt, validation("The attestation document's public key is not an RSA key of at least 2048 bits."))
	}
	plain := *in
	plain.Recipient = nil
	out, err := r.KMS.Decrypt(ctx, &plain, optFns...)
	if err != nil {
		return nil, err
	}
	defer clear(out.Plaintext)
	r.mu.Lock()
	fault := r.fault
	r.docs++
	r.mu.Unlock()
	if fault == FaultWrongRecipientKey {
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		rsaPub = &other.PublicKey
	}
	cms, err := EnvelopedData(rsaPub, out.Plaintext, fault == FaultBadPadding)
	if err != nil {
		return nil, err
	}
	return &kms.DecryptOutput{
		KeyId:                  out.KeyId,
		EncryptionAlgorithm:    out.EncryptionAlgorithm,
		CiphertextForRecipient: cms,
	}, nil
}

var (
	oidEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidRSAESOAEP     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	oidMGF1          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidAES256CBC     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

type algID struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

type oaepParams struct {
	Hash algID `asn1:"explicit,tag:0"`
	MGF  algID `asn1:"explicit,tag:1"`
}

type ktri struct {
	Version      int
	RID          asn1.RawValue
	KeyEncAlg    algID
	EncryptedKey []byte
}

func mustDER(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// EnvelopedData builds a CMS EnvelopedData (RFC 5652) of plaintext for pub
// as KMS does for a Recipient: ContentInfo, EnvelopedData and
// EncryptedContentInfo with indefinite lengths, version 2, one
// KeyTransRecipientInfo (version 2, subjectKeyIdentifier, RSAES-OAEP with
// SHA-256 and MGF1-SHA-256) and AES-256-CBC content split into OCTET STRING
// chunks. With badPadding the last padding byte is altered.
func EnvelopedData(pub *rsa.PublicKey, plaintext []byte, badPadding bool) ([]byte, error) {
	cek := make([]byte, 32)
	rand.Read(cek)
	defer clear(cek)
	iv := make([]byte, aes.BlockSize)
	rand.Read(iv)
	n := aes.BlockSize - len(plaintext)%aes.BlockSize
	padded := append(bytes.Clone(plaintext), bytes.Repeat([]byte{byte(n)}, n)...)
	defer clear(padded)
	if badPadding {
		padded[len(padded)-2] ^= 0x01
		if n == 1 {
			padded[len(padded)-1] = 0 // a zero pad length is never valid
		}
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, padded)
	encKey, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, cek, nil)
	if err != nil {
		return nil, err
	}
	spki := x509.MarshalPKCS1PublicKey(pub)
	ski := sha1.Sum(spki)
	null := asn1.RawValue{FullBytes: []byte{0x05, 0x00}}
	sha256ID := algID{Algorithm: oidSHA256, Parameters: null}
	ri := mustDER(ktri{
		Version: 2,
		RID:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, Bytes: ski[:]},
		KeyEncAlg: algID{Algorithm: oidRSAESOAEP, Parameters: asn1.RawValue{FullBytes: mustDER(oaepParams{
			Hash: sha256ID,
			MGF:  algID{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: mustDER(sha256ID)}},
		})}},
		EncryptedKey: encKey,
	})
	contentAlg := mustDER(algID{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: mustDER(iv)}})

	indef := func(tag byte, parts ...[]byte) []byte {
		b := []byte{tag, 0x80}
		for _, p := range parts {
			b = append(b, p...)
		}
		return append(b, 0, 0)
	}
	var chunks [][]byte
	for rest := ct; len(rest) > 0; {
		k := min(len(rest), 16) // small chunks, so the reassembly is exercised
		chunks = append(chunks, mustDER(rest[:k]))
		rest = rest[k:]
	}
	eci := indef(0x30, mustDER(oidData), contentAlg, indef(0xa0, chunks...))
	set := mustDER(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: ri})
	ed := indef(0x30, mustDER(2), set, eci)
	return indef(0x30, mustDER(oidEnvelopedData), indef(0xa0, ed)), nil
}
