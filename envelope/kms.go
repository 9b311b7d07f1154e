package envelope

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

// KMSGenerateAPI is the part of the AWS KMS client a KMS Sealer uses.
type KMSGenerateAPI interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
}

// KMSDecryptAPI is the part of the AWS KMS client a KMS Opener uses.
type KMSDecryptAPI interface {
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

var (
	_ KMSGenerateAPI = (*kms.Client)(nil)
	_ KMSDecryptAPI  = (*kms.Client)(nil)
)

// NewKMSSealer returns a Sealer that obtains a fresh AES-256 data key for
// every secret from KMS GenerateDataKey under keyID (a key ID, key ARN, alias
// name or alias ARN), with the encryption context as the KMS
// EncryptionContext. The key ARN reported by KMS is recorded in the sealed
// blob. The plaintext data key is cleared as soon as the secret is encrypted.
//
// The principal using the Sealer needs only kms:GenerateDataKey; it cannot
// open what it sealed unless it is also granted kms:Decrypt.
func NewKMSSealer(client KMSGenerateAPI, keyID string) Sealer {
	return &sealer{src: &kmsKeySource{client: client, keyID: keyID}}
}

// NewKMSOpener returns an Opener that unwraps data keys with KMS Decrypt,
// passing the encryption context and pinning KeyId to the key ARN recorded in
// the sealed blob.
func NewKMSOpener(client KMSDecryptAPI) Opener {
	return &opener{u: &kmsUnwrapper{client: client}}
}

type kmsKeySource struct {
	client KMSGenerateAPI
	keyID  string
}

func (*kmsKeySource) provider() byte { return providerKMS }

func (s *kmsKeySource) wrappingKey() string { return s.keyID }

func (s *kmsKeySource) newDataKey(ctx context.Context, ec Context) (*dataKey, error) {
	if s.client == nil || s.keyID == "" {
		return nil, fmt.Errorf("%w: KMS sealer needs a client and a key ID", ErrProvider)
	}
	out, err := s.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             &s.keyID,
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: ec,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: kms GenerateDataKey: %w", ErrProvider, err)
	}
	keyID := s.keyID
	if out.KeyId != nil && *out.KeyId != "" {
		keyID = *out.KeyId // the key ARN, even when s.keyID is an alias
	}
	return &dataKey{keyID: keyID, wrapped: out.CiphertextBlob, plaintext: out.Plaintext}, nil
}

// kmsUnwrapper unwraps with KMS Decrypt and the plaintext in the response.
// A Nitro Enclaves variant would set DecryptInput.Recipient and decrypt
// DecryptOutput.CiphertextForRecipient with the enclave's private key.
type kmsUnwrapper struct {
	client KMSDecryptAPI
}

func (*kmsUnwrapper) provider() byte { return providerKMS }

func (u *kmsUnwrapper) unwrap(ctx context.Context, keyID string, wrapped []byte, ec Context) ([]byte, error) {
	if u.client == nil {
		return nil, fmt.Errorf("%w: KMS opener needs a client", ErrProvider)
	}
	out, err := u.client.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob:    wrapped,
		EncryptionContext: ec,
		KeyId:             &keyID,
	})
	if err != nil {
		if isKMSAuthError(err) {
			return nil, ErrAuth
		}
		return nil, fmt.Errorf("%w: kms Decrypt: %w", ErrProvider, err)
	}
	if out.KeyId != nil && *out.KeyId != keyID {
		clear(out.Plaintext)
		return nil, ErrAuth
	}
	if len(out.Plaintext) != dataKeySize {
		clear(out.Plaintext)
		return nil, ErrAuth
	}
	return out.Plaintext, nil
}

// isKMSAuthError reports whether KMS rejected the ciphertext itself: it was
// tampered with, the encryption context differs, or it belongs to another key.
func isKMSAuthError(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode() {
	case "InvalidCiphertextException", "IncorrectKeyException":
		return true
	}
	return false
}
