package provenance

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// KMSPublicKeyAPI is the part of the AWS KMS client a KMS Verifier uses,
// once, when it is made (kms:GetPublicKey).
type KMSPublicKeyAPI interface {
	GetPublicKey(ctx context.Context, in *kms.GetPublicKeyInput, optFns ...func(*kms.Options)) (*kms.GetPublicKeyOutput, error)
}

// KMSSignAPI is the part of the AWS KMS client a KMS Signer uses: Sign for
// every authenticator, and GetPublicKey once when the Signer is made, to
// learn the key ARN, check the key's spec and check each signature before
// returning it (kms:GetPublicKey discloses only the public key).
type KMSSignAPI interface {
	KMSPublicKeyAPI
	Sign(ctx context.Context, in *kms.SignInput, optFns ...func(*kms.Options)) (*kms.SignOutput, error)
}

var (
	_ KMSSignAPI      = (*kms.Client)(nil)
	_ KMSPublicKeyAPI = (*kms.Client)(nil)
)

// maxECDSASigLen bounds an ASN.1 DER ECDSA P-256 signature (at most 72
// bytes); anything longer is refused before parsing.
const maxECDSASigLen = 80

// NewKMSSigner returns a Signer that signs with the KMS asymmetric key
// keyID (a key ID, key ARN, alias name or alias ARN), which must be an
// ECC_NIST_P256 SIGN_VERIFY key allowing ECDSA_SHA_256. It calls
// GetPublicKey once; its KeyID is the key ARN KMS reports, even for an
// alias.
//
// Sign hashes the message with SHA-256 locally and sends only the 32-byte
// digest (MessageType DIGEST): the request is the same size for any
// message, KMS's 4096-byte limit on RAW messages never applies, and the
// signer hashes with the same code as the verifier. Each signature is
// verified against the public key before it is returned.
func NewKMSSigner(ctx context.Context, client KMSSignAPI, keyID string) (Signer, error) {
	if client == nil {
		return nil, errors.New("provenance: NewKMSSigner needs a KMS client")
	}
	v, err := newKMSVerifier(ctx, client, keyID)
	if err != nil {
		return nil, err
	}
	return &kmsSigner{client: client, v: v}, nil
}

// NewKMSVerifier returns a Verifier for the KMS asymmetric key keyID. It
// fetches the public key once with GetPublicKey; Verify then runs locally
// (crypto/ecdsa over SHA-256 of the message, ASN.1 DER signatures) and
// never calls KMS. Its KeyID is the key ARN.
func NewKMSVerifier(ctx context.Context, client KMSPublicKeyAPI, keyID string) (Verifier, error) {
	if client == nil {
		return nil, errors.New("provenance: NewKMSVerifier needs a KMS client")
	}
	return newKMSVerifier(ctx, client, keyID)
}

// NewP256Verifier returns a Verifier for a P-256 public key given as a DER
// SubjectPublicKeyInfo (what KMS GetPublicKey returns), named keyID: for a
// verifier that holds a pinned copy of the public key and no KMS access.
func NewP256Verifier(keyID string, spkiDER []byte) (Verifier, error) {
	if keyID == "" {
		return nil, errors.New("provenance: NewP256Verifier needs a key id")
	}
	pub, err := x509.ParsePKIXPublicKey(spkiDER)
	if err != nil {
		return nil, fmt.Errorf("provenance: public key of %s: %w", keyID, err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("provenance: public key of %s is not an ECDSA P-256 key", keyID)
	}
	return &ecdsaVerifier{pub: ec, id: keyID}, nil
}

func newKMSVerifier(ctx context.Context, client KMSPublicKeyAPI, keyID string) (*ecdsaVerifier, error) {
	if keyID == "" {
		return nil, errors.New("provenance: no KMS signing key given")
	}
	out, err := client.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		return nil, fmt.Errorf("provenance: kms GetPublicKey %s: %w", keyID, err)
	}
	arn := aws.ToString(out.KeyId)
	if arn == "" {
		return nil, fmt.Errorf("provenance: kms GetPublicKey %s returned no key ARN", keyID)
	}
	if out.KeySpec != types.KeySpecEccNistP256 {
		return nil, fmt.Errorf("provenance: KMS key %s has key spec %s; want %s", arn, out.KeySpec, types.KeySpecEccNistP256)
	}
	if out.KeyUsage != types.KeyUsageTypeSignVerify {
		return nil, fmt.Errorf("provenance: KMS key %s has key usage %s; want %s", arn, out.KeyUsage, types.KeyUsageTypeSignVerify)
	}
	if !slices.Contains(out.SigningAlgorithms, types.SigningAlgorithmSpecEcdsaSha256) {
		return nil, fmt.Errorf("provenance: KMS key %s does not allow %s", arn, types.SigningAlgorithmSpecEcdsaSha256)
	}
	v, err := NewP256Verifier(arn, out.PublicKey)
	if err != nil {
		return nil, err
	}
	return v.(*ecdsaVerifier), nil
}

type ecdsaVerifier struct {
	pub *ecdsa.PublicKey
	id  string
}

func (v *ecdsaVerifier) Verify(msg, sig []byte) error {
	if len(sig) == 0 || len(sig) > maxECDSASigLen {
		return fmt.Errorf("%w: an ECDSA P-256 signature is 8 to 72 bytes, not %d", ErrForged, len(sig))
	}
	digest := sha256.Sum256(msg)
	if !ecdsa.VerifyASN1(v.pub, digest[:], sig) {
		return fmt.Errorf("%w (key %s)", ErrForged, v.id)
	}
	return nil
}

func (v *ecdsaVerifier) KeyID() string { return v.id }

type kmsSigner struct {
	client KMSSignAPI
	v      *ecdsaVerifier
}

func (s *kmsSigner) KeyID() string { return s.v.id }

func (s *kmsSigner) Sign(ctx context.Context, msg []byte) ([]byte, error) {
	digest := sha256.Sum256(msg)
	out, err := s.client.Sign(ctx, &kms.SignInput{
		KeyId:            aws.String(s.v.id),
		Message:          digest[:],
		MessageType:      types.MessageTypeDigest,
		SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256,
	})
	if err != nil {
		return nil, fmt.Errorf("provenance: kms Sign with %s: %w", s.v.id, err)
	}
	if id := aws.ToString(out.KeyId); id != "" && id != s.v.id {
		return nil, fmt.Errorf("provenance: kms Sign answered for key %s, not %s", id, s.v.id)
	}
	// A signature that would not verify later is refused now, before a
	// record carrying it is written.
	if err := s.v.Verify(msg, out.Signature); err != nil {
		return nil, fmt.Errorf("provenance: kms Sign with %s returned a signature that does not verify", s.v.id)
	}
	return bytes.Clone(out.Signature), nil
}

// NewDeferredKMSSigner is NewKMSSigner for a process that must start
// without calling KMS (a Lambda function's cold start): keyARN must be the
// key's full ARN, which is its KeyID; the first Sign fetches the public key
// (NewKMSSigner) and refuses a key whose ARN differs.
func NewDeferredKMSSigner(client KMSSignAPI, keyARN string) (Signer, error) {
	if client == nil {
		return nil, errors.New("provenance: NewDeferredKMSSigner needs a KMS client")
	}
	if !strings.HasPrefix(keyARN, "arn:") || !strings.Contains(keyARN, ":key/") {
		return nil, fmt.Errorf("provenance: %q is not a KMS key ARN", keyARN)
	}
	return &deferredSigner{client: client, arn: keyARN}, nil
}

type deferredSigner struct {
	client KMSSignAPI
	arn    string
	mu     sync.Mutex
	s      Signer // set once a GetPublicKey succeeded; a failure is retried
}

func (d *deferredSigner) KeyID() string { return d.arn }

func (d *deferredSigner) Sign(ctx context.Context, msg []byte) ([]byte, error) {
	d.mu.Lock()
	s := d.s
	if s == nil {
		var err error
		if s, err = NewKMSSigner(ctx, d.client, d.arn); err != nil {
			d.mu.Unlock()
			return nil, err
		}
		if s.KeyID() != d.arn {
			d.mu.Unlock()
			return nil, fmt.Errorf("provenance: KMS reports key %s for %s", s.KeyID(), d.arn)
		}
		d.s = s
	}
	d.mu.Unlock()
	return s.Sign(ctx, msg)
}
