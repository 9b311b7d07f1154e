package testenv_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ethkeygen/ethkeygen/internal/testenv"
)

// TestAWSConfig needs no server: it pins the shape of the local config.
func TestAWSConfig(t *testing.T) {
	cfg := testenv.AWSConfig(t, "http://127.0.0.1:1")
	if cfg.Region != testenv.Region {
		t.Errorf("Region = %q, want %q", cfg.Region, testenv.Region)
	}
	if got := aws.ToString(cfg.BaseEndpoint); got != "http://127.0.0.1:1" {
		t.Errorf("BaseEndpoint = %q", got)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatalf("Credentials.Retrieve: %v", err)
	}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		t.Error("static credentials are empty")
	}
}

func TestDynamoDBListTables(t *testing.T) {
	cfg := testenv.AWSConfig(t, testenv.DynamoDBEndpoint(t))
	if _, err := dynamodb.NewFromConfig(cfg).ListTables(t.Context(), &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("ListTables: %v", err)
	}
}

// TestKMSEncryptionContext checks that local-kms binds a data key to its
// encryption context: Decrypt succeeds with the same context and fails with
// a different or missing one, as AWS KMS does. Fakes and the envelope
// package's tests rely on this behaviour.
func TestKMSEncryptionContext(t *testing.T) {
	cfg := testenv.AWSConfig(t, testenv.KMSEndpoint(t))
	keyARN := testenv.NewKMSKey(t, cfg)
	client := kms.NewFromConfig(cfg)
	ctx := t.Context()

	encCtx := map[string]string{"pubkey": "0xabc", "purpose": "eth-validator-secret", "format": "1"}
	dk, err := client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(keyARN),
		KeySpec:           kmstypes.DataKeySpecAes256,
		EncryptionContext: encCtx,
	})
	if err != nil {
		t.Fatalf("GenerateDataKey: %v", err)
	}
	if len(dk.Plaintext) != 32 || len(dk.CiphertextBlob) == 0 {
		t.Fatalf("GenerateDataKey: plaintext %d bytes, blob %d bytes", len(dk.Plaintext), len(dk.CiphertextBlob))
	}

	t.Run("same context", func(t *testing.T) {
		out, err := client.Decrypt(ctx, &kms.DecryptInput{
			CiphertextBlob:    dk.CiphertextBlob,
			KeyId:             aws.String(keyARN),
			EncryptionContext: encCtx,
		})
		if err != nil {
			t.Fatalf("Decrypt: %v", err)
		}
		if !bytes.Equal(out.Plaintext, dk.Plaintext) {
			t.Fatal("Decrypt returned a different data key")
		}
		if aws.ToString(out.KeyId) != keyARN {
			t.Errorf("Decrypt KeyId = %q, want %q", aws.ToString(out.KeyId), keyARN)
		}
	})

	for name, other := range map[string]map[string]string{
		"different context": {"pubkey": "0xdef", "purpose": "eth-validator-secret", "format": "1"},
		"extra entry":       {"pubkey": "0xabc", "purpose": "eth-validator-secret", "format": "1", "x": "y"},
		"no context":        nil,
	} {
		t.Run(name, func(t *testing.T) {
			out, err := client.Decrypt(ctx, &kms.DecryptInput{
				CiphertextBlob:    dk.CiphertextBlob,
				KeyId:             aws.String(keyARN),
				EncryptionContext: other,
			})
			if err == nil {
				t.Fatalf("Decrypt with %v succeeded (%d bytes): local-kms does not enforce the encryption context", other, len(out.Plaintext))
			}
			var invalid *kmstypes.InvalidCiphertextException
			if !errors.As(err, &invalid) {
				t.Errorf("Decrypt error = %v, want InvalidCiphertextException", err)
			}
		})
	}
}

// TestNodeModules: the independent checker's packages are installed where
// ETHKEYGEN_NODE_MODULES points.
func TestNodeModules(t *testing.T) {
	nm := testenv.NodeModules(t)
	for _, pkg := range []string{"@chainsafe/ssz", "@noble/curves"} {
		if _, err := os.Stat(filepath.Join(nm, pkg, "package.json")); err != nil {
			t.Errorf("%s: %v", pkg, err)
		}
	}
}

func TestToolPaths(t *testing.T) {
	for name, get := range map[string]func(testing.TB) string{
		"aws-lambda-rie": testenv.RIEPath,
		"cfn-lint":       testenv.CFNLintPath,
	} {
		t.Run(name, func(t *testing.T) {
			path := get(t)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if fi.IsDir() || fi.Mode()&0o111 == 0 {
				t.Fatalf("%s at %s is not an executable file", name, path)
			}
		})
	}
}
