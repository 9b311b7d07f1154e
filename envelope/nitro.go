package envelope

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// Attester obtains an attestation document from the Nitro Security Module
// that carries publicKeyDER (a DER SubjectPublicKeyInfo) in its public_key
// field. Package attest provides the NSM-backed implementation; tests use a
// fake.
type Attester interface {
	Attest(ctx context.Context, publicKeyDER []byte) ([]byte, error)
}

// NitroRSABits is the size of the ephemeral RSA key generated per unwrap.
const NitroRSABits = 2048

// NewNitroKMSOpener returns an Opener for KMS-sealed blobs that runs inside
// an AWS Nitro Enclave. For every data key it generates an ephemeral
// RSA-2048 key pair, has attester produce an attestation document carrying
// the public key, and calls KMS Decrypt with that document as the Recipient
// (RSAES_OAEP_SHA_256). KMS checks the document against the key policy (for
// example kms:RecipientAttestation:ImageSha384) and returns the data key
// only as CiphertextForRecipient: a CMS EnvelopedData (RFC 5652) that only
// the ephemeral private key opens. The private key never leaves the
// process and is dropped as soon as the data key is recovered.
//
// It opens the same blobs as NewKMSOpener and reports failures the same
// way: exactly ErrAuth for anything that does not authenticate, including
// a malformed or tampered CiphertextForRecipient, a key it was not made for
// and bad padding; ErrProvider (with the AWS error in the chain) when KMS
// refuses, for example AccessDeniedException for an image the key policy
// does not allow.
func NewNitroKMSOpener(client KMSDecryptAPI, attester Attester) Opener {
	return &opener{u: &nitroUnwrapper{client: client, attester: attester}}
}

// nitroUnwrapper unwraps with KMS Decrypt and a Nitro Enclaves Recipient.
type nitroUnwrapper struct {
	client   KMSDecryptAPI
	attester Attester
}

func (*nitroUnwrapper) provider() byte { return providerKMS }

func (u *nitroUnwrapper) unwrap(ctx context.Context, keyID string, wrapped []byte, ec Context) ([]byte, error) {
	if u.client == nil || u.attester == nil {
		return nil, fmt.Errorf("%w: Nitro KMS opener needs a client and an attester", ErrProvider)
	}
	priv, err := rsa.GenerateKey(rand.Reader, NitroRSABits)
	if err != nil {
		return nil, fmt.Errorf("%w: generating the ephemeral key: %w", ErrProvider, err)
	}
	defer discardRSAKey(priv)
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding the ephemeral public key: %w", ErrProvider, err)
	}
	doc, err := u.attester.Attest(ctx, pub)
	if err != nil {
		return nil, fmt.Errorf("%w: attestation: %w", ErrProvider, err)
	}
	out, err := u.client.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob:    wrapped,
		EncryptionContext: ec,
		KeyId:             &keyID,
		Recipient: &types.RecipientInfo{
			AttestationDocument:    doc,
			KeyEncryptionAlgorithm: types.KeyEncryptionMechanismRsaesOaepSha256,
		},
	})
	if err != nil {
		if isKMSAuthError(err) {
			return nil, ErrAuth
		}
		return nil, fmt.Errorf("%w: kms Decrypt: %w", ErrProvider, err)
	}
	if len(out.Plaintext) != 0 {
		// KMS never sends the plaintext with a Recipient; refuse a
		// response that did (a proxy or a misconfigured endpoint).
		clear(out.Plaintext)
		return nil, fmt.Errorf("%w: kms Decrypt returned plaintext despite the Recipient", ErrProvider)
	}
	if out.KeyId != nil && *out.KeyId != keyID {
		return nil, ErrAuth
	}
	key, err := openEnvelopedData(out.CiphertextForRecipient, priv)
	if err != nil {
		return nil, ErrAuth
	}
	if len(key) != dataKeySize {
		clear(key)
		return nil, ErrAuth
	}
	return key, nil
}

// discardRSAKey overwrites what it can of an ephemeral private key. Go's
// crypto/rsa keeps precomputed values it does not expose, and the garbage
// collector may have copied memory, so this is best effort: the key is
// short-lived and unreachable once unwrap returns.
func discardRSAKey(k *rsa.PrivateKey) {
	if k == nil {
		return
	}
	if k.D != nil {
		k.D.SetInt64(0)
	}
	for _, p := range k.Primes {
		p.SetInt64(0)
	}
	if k.Precomputed.Dp != nil {
		k.Precomputed.Dp.SetInt64(0)
	}
	if k.Precomputed.Dq != nil {
		k.Precomputed.Dq.SetInt64(0)
	}
	if k.Precomputed.Qinv != nil {
		k.Precomputed.Qinv.SetInt64(0)
	}
}

// errCMS is the internal cause of every CMS failure; Open reports ErrAuth.
var errCMS = errors.New("envelope: malformed or undecryptable CMS EnvelopedData")
