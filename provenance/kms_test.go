package provenance_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ethkeygen/ethkeygen/provenance"
)

// brokenKMS answers GetPublicKey truthfully for its key and Sign with
// whatever sign returns: a stand-in for a misbehaving endpoint.
type brokenKMS struct {
	arn  string
	key  *ecdsa.PrivateKey
	sign func(digest []byte) *kms.SignOutput
}

func (b *brokenKMS) GetPublicKey(_ context.Context, in *kms.GetPublicKeyInput, _ ...func(*kms.Options)) (*kms.GetPublicKeyOutput, error) {
	der, err := x509.MarshalPKIXPublicKey(&b.key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &kms.GetPublicKeyOutput{
		KeyId: aws.String(b.arn), PublicKey: der, KeySpec: types.KeySpecEccNistP256,
		KeyUsage: types.KeyUsageTypeSignVerify, SigningAlgorithms: []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha256},
	}, nil
}

func (b *brokenKMS) Sign(_ context.Context, in *kms.SignInput, _ ...func(*kms.Options)) (*kms.SignOutput, error) {
	return b.sign(in.Message), nil
}

// TestKMSSignerChecksTheAnswer: the KMS signer sends a SHA-256 digest
// (MessageType DIGEST) and refuses to return a signature that does not
// verify, or one KMS says another key made.
func TestKMSSignerChecksTheAnswer(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const arn = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000001"
	msg := []byte("fields")
	good := func(d []byte) *kms.SignOutput {
		if want := sha256.Sum256(msg); string(d) != string(want[:]) {
			t.Errorf("KMS was sent %x, want the SHA-256 digest of the message", d)
		}
		sig, _ := ecdsa.SignASN1(rand.Reader, key, d)
		return &kms.SignOutput{KeyId: aws.String(arn), Signature: sig}
	}
	for name, tc := range map[string]struct {
		sign  func([]byte) *kms.SignOutput
		words string
	}{
		"good": {good, ""},
		"garbage": {func([]byte) *kms.SignOutput {
			return &kms.SignOutput{KeyId: aws.String(arn), Signature: []byte{0x30, 0}}
		}, "does not verify"},
		"another key": {func(d []byte) *kms.SignOutput { o := good(d); o.KeyId = aws.String(arn + "2"); return o }, "answered for key"},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := provenance.NewKMSSigner(t.Context(), &brokenKMS{arn: arn, key: key, sign: tc.sign}, "alias/x")
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Sign(t.Context(), msg)
			if tc.words == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("%v, want %q", err, tc.words)
			}
		})
	}
}

// TestP256VerifierRefusesOtherKeys: a pinned public key must be P-256.
func TestP256VerifierRefusesOtherKeys(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for name, pub := range map[string]any{"P-384": &p384.PublicKey, "Ed25519": edPub} {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := provenance.NewP256Verifier("k", der); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := provenance.NewP256Verifier("k", []byte("junk")); err == nil {
		t.Error("junk accepted")
	}
}
