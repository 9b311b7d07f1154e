package testenv_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		"lodestar":       testenv.LodestarPath,
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

// TestLodestar: the lodestar CLI runs (with its Node 20 shim) and the dev
// chain's Keymanager API asks for its token.
func TestLodestar(t *testing.T) {
	out := testenv.Lodestar(t, time.Minute, "--version")
	if !strings.Contains(out, "v1.5.1") {
		t.Fatalf("lodestar --version: %s", out)
	}
	km := testenv.KeymanagerAPI(t)
	resp, err := http.Get(km.URL + "/eth/v1/keystores")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /eth/v1/keystores without a token: %s, want 401", resp.Status)
	}
	if fi, err := os.Stat(km.TokenFile); err != nil || fi.Size() == 0 {
		t.Fatalf("token file %s: %v", km.TokenFile, err)
	}
}
