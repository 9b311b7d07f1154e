package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/ethkeygen/ethkeygen/internal/testenv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ethkeygen/ethkeygen/envelope"
)

// localKMS returns a client for the KMS-compatible server named by
// ETHKEYGEN_KMS_ENDPOINT (for example nsmithuk/local-kms) and a new key on
// it, or skips the test when the variable is unset.
func localKMS(t *testing.T) (*kms.Client, string) {
	t.Helper()
	ep := testenv.KMSEndpoint(t) // skips only outside make test; fails there if unset
	cfg := aws.Config{
		Region:      "eu-west-1",
		Credentials: credentials.NewStaticCredentialsProvider("x", "x", ""),
	}
	client := kms.NewFromConfig(cfg, func(o *kms.Options) { o.BaseEndpoint = aws.String(ep) })
	out, err := client.CreateKey(context.Background(), &kms.CreateKeyInput{
		Description: aws.String("ethkeygen envelope integration test " + t.Name()),
	})
	if err != nil {
		t.Fatalf("CreateKey on %s: %v", ep, err)
	}
	return client, *out.KeyMetadata.Arn
}

func TestKMSIntegration(t *testing.T) {
	ctx := context.Background()
	client, arn := localKMS(t)
	ecA := recordContext(testPubkey)
	ecB := recordContext("b0" + testPubkey[2:])
	sealer := envelope.NewKMSSealer(client, arn)
	opener := envelope.NewKMSOpener(client)

	sealed, err := sealer.Seal(ctx, secretForErrors, ecA)
	if err != nil {
		t.Fatal(err)
	}
	l := parseLayout(t, sealed)
	if l.provider != 1 || l.keyID != arn {
		t.Fatalf("header: provider %d key ID %q", l.provider, l.keyID)
	}

	t.Run("round trip", func(t *testing.T) {
		pt, err := opener.Open(ctx, sealed, ecA)
		if err != nil || !bytes.Equal(pt, secretForErrors) {
			t.Fatalf("Open: %v", err)
		}
	})

	t.Run("alias resolves to key ARN", func(t *testing.T) {
		alias := "alias/ethkeygen-test-" + arn[len(arn)-12:]
		if _, err := client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: &alias, TargetKeyId: &arn}); err != nil {
			t.Fatal(err)
		}
		b, err := envelope.NewKMSSealer(client, alias).Seal(ctx, secretForErrors, ecA)
		if err != nil {
			t.Fatal(err)
		}
		if got := parseLayout(t, b).keyID; got != arn {
			t.Fatalf("key ID %q, want %q", got, arn)
		}
		if _, err := opener.Open(ctx, b, ecA); err != nil {
			t.Fatal(err)
		}
	})

	// Does the server itself enforce the EncryptionContext on Decrypt?
	t.Run("server enforces EncryptionContext", func(t *testing.T) {
		_, err := client.Decrypt(ctx, &kms.DecryptInput{
			CiphertextBlob:    l.wrapped,
			KeyId:             &arn,
			EncryptionContext: map[string]string{"pubkey": "other", "purpose": "eth-validator-secret", "format": "1"},
		})
		var ic *types.InvalidCiphertextException
		if !errors.As(err, &ic) {
			t.Fatalf("raw Decrypt under another context: %v, want InvalidCiphertextException", err)
		}
		_, err = client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: l.wrapped, KeyId: &arn})
		if !errors.As(err, &ic) {
			t.Fatalf("raw Decrypt without context: %v, want InvalidCiphertextException", err)
		}
	})

	t.Run("record B context", func(t *testing.T) {
		if _, err := opener.Open(ctx, sealed, ecB); err != envelope.ErrAuth {
			t.Fatalf("got %v, want ErrAuth", err)
		}
	})

	t.Run("tampered wrapped key", func(t *testing.T) {
		for _, i := range []int{l.wrappedOff, l.wrappedOff + len(l.wrapped)/2, l.nonceOff - 1} {
			b := bytes.Clone(sealed)
			b[i] ^= 1
			if _, err := opener.Open(ctx, b, ecA); err != envelope.ErrAuth {
				t.Errorf("byte %d: %v, want ErrAuth", i, err)
			}
		}
	})

	t.Run("tampered ciphertext", func(t *testing.T) {
		b := bytes.Clone(sealed)
		b[len(b)-1] ^= 1
		if _, err := opener.Open(ctx, b, ecA); err != envelope.ErrAuth {
			t.Fatalf("got %v, want ErrAuth", err)
		}
	})

	t.Run("key ID pinned to another key", func(t *testing.T) {
		out, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		otherARN := *out.KeyMetadata.Arn
		_, rawErr := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: l.wrapped, KeyId: &otherARN, EncryptionContext: map[string]string{
			"pubkey": testPubkey, "purpose": envelope.PurposeValidatorSecret, "format": envelope.FormatVersion,
		}})
		t.Logf("raw Decrypt with another KeyId: code %q", apiCode(rawErr))
		b := bytes.Replace(bytes.Clone(sealed), []byte(arn), []byte(otherARN), 1)
		if _, err := opener.Open(ctx, b, ecA); err != envelope.ErrAuth {
			t.Fatalf("got %v, want ErrAuth", err)
		}
	})

	t.Run("unknown key", func(t *testing.T) {
		_, err := envelope.NewKMSSealer(client, "alias/does-not-exist").Seal(ctx, secretForErrors, ecA)
		if !errors.Is(err, envelope.ErrProvider) || apiCode(err) != "NotFoundException" {
			t.Fatalf("got %v, want ErrProvider wrapping NotFoundException", err)
		}
		checkNoSecret(t, err)
	})
}
