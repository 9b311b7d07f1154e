package envelopetest_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/ethkeygen/ethkeygen/envelope/envelopetest"
)

func code(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func TestFakeKMSEnforcesRealBehaviour(t *testing.T) {
	ctx := context.Background()
	k := envelopetest.NewKMS()
	arn := k.CreateKey()
	ec := map[string]string{"pubkey": "aa", "format": "1"}
	gen, err := k.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &arn, KeySpec: types.DataKeySpecAes256, EncryptionContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	if len(gen.Plaintext) != 32 || *gen.KeyId != arn || bytes.Contains(gen.CiphertextBlob, gen.Plaintext) {
		t.Fatalf("bad GenerateDataKey output")
	}

	dec, err := k.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: gen.CiphertextBlob, EncryptionContext: ec})
	if err != nil || !bytes.Equal(dec.Plaintext, gen.Plaintext) || *dec.KeyId != arn {
		t.Fatalf("Decrypt: %v", err)
	}

	for name, tc := range map[string]struct {
		in   *kms.DecryptInput
		code string
	}{
		"other context":  {&kms.DecryptInput{CiphertextBlob: gen.CiphertextBlob, EncryptionContext: map[string]string{"pubkey": "bb", "format": "1"}}, "InvalidCiphertextException"},
		"no context":     {&kms.DecryptInput{CiphertextBlob: gen.CiphertextBlob}, "InvalidCiphertextException"},
		"tampered":       {&kms.DecryptInput{CiphertextBlob: append(bytes.Clone(gen.CiphertextBlob[:len(gen.CiphertextBlob)-1]), gen.CiphertextBlob[len(gen.CiphertextBlob)-1]^1), EncryptionContext: ec}, "InvalidCiphertextException"},
		"unknown key id": {&kms.DecryptInput{CiphertextBlob: gen.CiphertextBlob, EncryptionContext: ec, KeyId: aws.String("alias/none")}, "NotFoundException"},
		"other key id":   {&kms.DecryptInput{CiphertextBlob: gen.CiphertextBlob, EncryptionContext: ec, KeyId: aws.String(k.CreateKey())}, "IncorrectKeyException"},
		"empty blob":     {&kms.DecryptInput{EncryptionContext: ec}, "ValidationException"},
		"with recipient": {&kms.DecryptInput{CiphertextBlob: gen.CiphertextBlob, EncryptionContext: ec, Recipient: &types.RecipientInfo{}}, "ValidationException"},
		"garbage blob":   {&kms.DecryptInput{CiphertextBlob: []byte("garbage"), EncryptionContext: ec}, "InvalidCiphertextException"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := k.Decrypt(ctx, tc.in)
			if code(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
			var opErr *smithy.OperationError
			if !errors.As(err, &opErr) || opErr.Service() != "KMS" {
				t.Fatalf("not wrapped in an OperationError: %v", err)
			}
		})
	}

	if _, err := k.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String("nope"), KeySpec: types.DataKeySpecAes256}); code(err) != "NotFoundException" {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := k.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &arn}); code(err) != "ValidationException" {
		t.Fatalf("no KeySpec: %v", err)
	}
}

func TestFakeKMSInjectedFailures(t *testing.T) {
	ctx := context.Background()
	k := envelopetest.NewKMS()
	arn := k.CreateKey()
	in := &kms.GenerateDataKeyInput{KeyId: &arn, KeySpec: types.DataKeySpecAes256}
	k.Fail(envelopetest.OpGenerateDataKey, 1, envelopetest.AccessDenied())
	k.Fail(envelopetest.OpGenerateDataKey, 2, envelopetest.Throttling())
	want := []string{"AccessDeniedException", "ThrottlingException", "ThrottlingException", ""}
	for i, w := range want {
		_, err := k.GenerateDataKey(ctx, in)
		if code(err) != w || (w == "") != (err == nil) {
			t.Fatalf("call %d: %v, want %q", i, err, w)
		}
	}
	if n := k.Calls(envelopetest.OpGenerateDataKey); n != 4 {
		t.Fatalf("Calls = %d, want 4", n)
	}
	k.Fail(envelopetest.OpDecrypt, -1, envelopetest.AccessDenied())
	for range 3 {
		if _, err := k.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: []byte("x")}); code(err) != "AccessDeniedException" {
			t.Fatalf("persistent failure: %v", err)
		}
	}
	k.ClearFailures()
	if _, err := k.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: []byte("x")}); code(err) != "InvalidCiphertextException" {
		t.Fatalf("after ClearFailures: %v", err)
	}
	if n := len(k.Requests()); n != 8 {
		t.Fatalf("%d requests recorded, want 8", n)
	}
}
