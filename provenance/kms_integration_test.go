package provenance_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/provenance"
)

// localKMS returns a client for the local-kms of make test and a fresh
// ECC_NIST_P256 signing key's ARN.
func localKMS(t *testing.T) (*kms.Client, func() string) {
	t.Helper()
	client := kms.NewFromConfig(testenv.AWSConfig(t, testenv.KMSEndpoint(t)))
	newKey := func() string {
		out, err := client.CreateKey(t.Context(), &kms.CreateKeyInput{
			Description: aws.String("ethkeygen provenance test " + t.Name()),
			KeySpec:     types.KeySpecEccNistP256,
			KeyUsage:    types.KeyUsageTypeSignVerify,
		})
		if err != nil {
			t.Fatalf("CreateKey: %v", err)
		}
		return aws.ToString(out.KeyMetadata.Arn)
	}
	return client, newKey
}

// countingKMS counts the KMS requests a verifier makes.
type countingKMS struct {
	provenance.KMSPublicKeyAPI
	n atomic.Int32
}

func (c *countingKMS) GetPublicKey(ctx context.Context, in *kms.GetPublicKeyInput, o ...func(*kms.Options)) (*kms.GetPublicKeyOutput, error) {
	c.n.Add(1)
	return c.KMSPublicKeyAPI.GetPublicKey(ctx, in, o...)
}

// TestKMSSignVerify, against the real local-kms: a KMS signature verifies
// with our Verifier, with Go's crypto/ecdsa and the DER public key from
// GetPublicKey (independent of our verify code), and with KMS's own Verify;
// a flipped bit of the signature or of the message, and a signature by
// another KMS key, are refused (by us as ErrForged and by KMS too); KeyID
// is the key ARN, also when the signer is made from an alias; the verifier
// calls KMS once, not per record.
func TestKMSSignVerify(t *testing.T) {
	client, newKey := localKMS(t)
	arn, otherARN := newKey(), newKey()
	alias := "alias/ethkeygen-provenance-" + strings.ReplaceAll(arn[strings.LastIndex(arn, "/")+1:], "-", "")
	if _, err := client.CreateAlias(t.Context(), &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(arn)}); err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}
	ctx := t.Context()
	signer, err := provenance.NewKMSSigner(ctx, client, alias)
	if err != nil {
		t.Fatal(err)
	}
	if signer.KeyID() != arn {
		t.Fatalf("signer KeyID %q, want the key ARN %q", signer.KeyID(), arn)
	}
	counting := &countingKMS{KMSPublicKeyAPI: client}
	verifier, err := provenance.NewKMSVerifier(ctx, counting, arn)
	if err != nil {
		t.Fatal(err)
	}
	if verifier.KeyID() != arn {
		t.Fatalf("verifier KeyID %q, want %q", verifier.KeyID(), arn)
	}
	other, err := provenance.NewKMSSigner(ctx, client, otherARN)
	if err != nil {
		t.Fatal(err)
	}

	msg := []byte("pubkey|request|slot|network|withdrawal|amount|root")
	sig, err := signer.Sign(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("crypto/ecdsa with the DER public key", func(t *testing.T) {
		out, err := client.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		pub, err := x509.ParsePKIXPublicKey(out.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256(msg)
		if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
			t.Fatal("crypto/ecdsa refuses the KMS signature")
		}
		bad := sha256.Sum256(flip(msg, 3))
		if ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), bad[:], sig) {
			t.Fatal("crypto/ecdsa accepts the signature for another message")
		}
	})
	t.Run("KMS Verify agrees", func(t *testing.T) {
		digest := sha256.Sum256(msg)
		verify := func(sig []byte) (bool, error) {
			out, err := client.Verify(ctx, &kms.VerifyInput{
				KeyId: aws.String(arn), Message: digest[:], MessageType: types.MessageTypeDigest,
				Signature: sig, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256,
			})
			if err != nil {
				var apiErr smithy.APIError
				if errors.As(err, &apiErr) && apiErr.ErrorCode() == "KMSInvalidSignatureException" {
					return false, nil
				}
				return false, err
			}
			return out.SignatureValid, nil
		}
		if ok, err := verify(sig); err != nil || !ok {
			t.Fatalf("KMS Verify of our signature: %v, %v", ok, err)
		}
		osig, err := other.Sign(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := verify(osig); err != nil || ok {
			t.Fatalf("KMS Verify of another key's signature: %v, %v", ok, err)
		}
	})
	t.Run("ours accepts", func(t *testing.T) {
		if err := verifier.Verify(msg, sig); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("flipped signature bits", func(t *testing.T) {
		for bit := range len(sig) * 8 {
			if err := verifier.Verify(msg, flip(sig, bit)); !errors.Is(err, provenance.ErrForged) {
				t.Fatalf("bit %d: %v, want ErrForged", bit, err)
			}
		}
	})
	t.Run("flipped message bit", func(t *testing.T) {
		if err := verifier.Verify(flip(msg, 0), sig); !errors.Is(err, provenance.ErrForged) {
			t.Fatalf("%v, want ErrForged", err)
		}
	})
	t.Run("another key's signature", func(t *testing.T) {
		osig, err := other.Sign(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		if err := verifier.Verify(msg, osig); !errors.Is(err, provenance.ErrForged) {
			t.Fatalf("%v, want ErrForged", err)
		}
	})
	t.Run("one KMS call for many verifications", func(t *testing.T) {
		for range 50 {
			if err := verifier.Verify(msg, sig); err != nil {
				t.Fatal(err)
			}
		}
		if n := counting.n.Load(); n != 1 {
			t.Fatalf("%d GetPublicKey calls, want 1", n)
		}
	})
}

// TestKMSWrongKey: keys that cannot make these authenticators are refused
// when the signer or verifier is made, naming the key.
func TestKMSWrongKey(t *testing.T) {
	client, _ := localKMS(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		spec  types.KeySpec
		usage types.KeyUsageType
		words string
	}{
		{"symmetric", types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt, ""},
		{"P-384", types.KeySpecEccNistP384, types.KeyUsageTypeSignVerify, "ECC_NIST_P256"},
		{"RSA", types.KeySpecRsa2048, types.KeyUsageTypeSignVerify, "ECC_NIST_P256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := client.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: tc.spec, KeyUsage: tc.usage})
			if err != nil {
				t.Fatal(err)
			}
			arn := aws.ToString(out.KeyMetadata.Arn)
			if _, err := provenance.NewKMSSigner(ctx, client, arn); err == nil || !strings.Contains(err.Error(), arn) || !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("signer: %v", err)
			}
			if _, err := provenance.NewKMSVerifier(ctx, client, arn); err == nil || !strings.Contains(err.Error(), arn) {
				t.Fatalf("verifier: %v", err)
			}
		})
	}
}

// TestDeferredKMSSigner: the deferred signer calls KMS only at its first
// Sign, signs as NewKMSSigner does (the verifier accepts), and refuses an
// alias (its KeyID must be the ARN) and an ARN of another key's kind.
func TestDeferredKMSSigner(t *testing.T) {
	client, newKey := localKMS(t)
	arn := newKey()
	counting := &countingSignKMS{KMSSignAPI: client}
	s, err := provenance.NewDeferredKMSSigner(counting, arn)
	if err != nil {
		t.Fatal(err)
	}
	if counting.calls != 0 || s.KeyID() != arn {
		t.Fatalf("made with %d KMS calls, KeyID %q", counting.calls, s.KeyID())
	}
	msg := []byte("record")
	sig, err := s.Sign(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := provenance.NewKMSVerifier(t.Context(), client, arn)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(msg, sig); err != nil {
		t.Fatalf("deferred signature: %v", err)
	}
	if _, err := provenance.NewDeferredKMSSigner(client, "alias/x"); err == nil {
		t.Fatal("an alias was accepted as the deferred signer's key ARN")
	}
	bad, _ := provenance.NewDeferredKMSSigner(client, strings.Replace(arn, arn[strings.LastIndex(arn, "/")+1:], "00000000-0000-0000-0000-000000000000", 1))
	if _, err := bad.Sign(t.Context(), msg); err == nil {
		t.Fatal("a missing key signed")
	}
}

type countingSignKMS struct {
	provenance.KMSSignAPI
	calls int
}

func (c *countingSignKMS) GetPublicKey(ctx context.Context, in *kms.GetPublicKeyInput, o ...func(*kms.Options)) (*kms.GetPublicKeyOutput, error) {
	c.calls++
	return c.KMSSignAPI.GetPublicKey(ctx, in, o...)
}

func (c *countingSignKMS) Sign(ctx context.Context, in *kms.SignInput, o ...func(*kms.Options)) (*kms.SignOutput, error) {
	c.calls++
	return c.KMSSignAPI.Sign(ctx, in, o...)
}
