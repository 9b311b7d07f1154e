package testenv

import (
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// Environment variables set by scripts/test.sh.
const (
	EnvDynamoDBEndpoint   = "ETHKEYGEN_DYNAMODB_ENDPOINT"
	EnvKMSEndpoint        = "ETHKEYGEN_KMS_ENDPOINT"
	EnvRIE                = "ETHKEYGEN_RIE"
	EnvCFNLint            = "ETHKEYGEN_CFN_LINT"
	EnvRequireIntegration = "ETHKEYGEN_REQUIRE_INTEGRATION"
	EnvNodeModules        = "ETHKEYGEN_NODE_MODULES"
)

// Region is the region every local test client uses.
const Region = "eu-west-1"

// Dummy credentials accepted by the local emulators.
const (
	accessKeyID     = "AKIDETHKEYGENTEST"
	secretAccessKey = "ethkeygen-test-secret"
)

// Required reports whether integration tests must run
// (ETHKEYGEN_REQUIRE_INTEGRATION=1) rather than skip.
func Required() bool { return os.Getenv(EnvRequireIntegration) == "1" }

func lookup(t testing.TB, name, what string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	if Required() {
		t.Fatalf("%s is not set but %s=1: %s must be provided by make test", name, EnvRequireIntegration, what)
	}
	t.Skipf("%s not set: %s is set by make test", name, what)
	return ""
}

// DynamoDBEndpoint returns the DynamoDB Local endpoint URL, or skips the
// test (fails it under ETHKEYGEN_REQUIRE_INTEGRATION=1) when there is none.
func DynamoDBEndpoint(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvDynamoDBEndpoint, "the DynamoDB Local endpoint")
}

// KMSEndpoint returns the local-kms endpoint URL, or skips the test (fails
// it under ETHKEYGEN_REQUIRE_INTEGRATION=1) when there is none.
func KMSEndpoint(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvKMSEndpoint, "the local-kms endpoint")
}

// RIEPath returns the absolute path of the aws-lambda-rie binary, or skips
// the test (fails it under ETHKEYGEN_REQUIRE_INTEGRATION=1) when there is none.
func RIEPath(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvRIE, "the aws-lambda-rie path")
}

// CFNLintPath returns the path of the cfn-lint executable, or skips the test
// (fails it under ETHKEYGEN_REQUIRE_INTEGRATION=1) when there is none.
// cfn-lint comes from PyPI, which the project's machines cannot reach; make
// test finds the one the machine image ships.
func CFNLintPath(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvCFNLint, "the cfn-lint path")
}

// NodeModules returns the node_modules directory holding the npm packages
// of the independent exit and BLS-change checker (internal/opscheck), or
// skips the test (fails it under ETHKEYGEN_REQUIRE_INTEGRATION=1) when
// there is none.
func NodeModules(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvNodeModules, "the node_modules path of the independent checker")
}

// AWSConfig returns an aws.Config for a local emulator at endpoint: static
// dummy credentials, region eu-west-1 and BaseEndpoint set to endpoint. It
// reads no shared config file and no credential from the environment.
func AWSConfig(t testing.TB, endpoint string) aws.Config {
	t.Helper()
	if endpoint == "" {
		t.Fatal("testenv.AWSConfig: empty endpoint")
	}
	return aws.Config{
		Region:       Region,
		Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(accessKeyID, secretAccessKey, "")),
		BaseEndpoint: aws.String(endpoint),
		// Local servers answer at once; do not spend a test's time on
		// the SDK's default backoff when one is down.
		RetryMaxAttempts: 1,
	}
}

// NewKMSKey creates a symmetric encrypt/decrypt key in the KMS that cfg
// points at and returns its ARN.
func NewKMSKey(t testing.TB, cfg aws.Config) string {
	t.Helper()
	out, err := kms.NewFromConfig(cfg).CreateKey(t.Context(), &kms.CreateKeyInput{
		Description: aws.String("ethkeygen test key for " + t.Name()),
		KeySpec:     types.KeySpecSymmetricDefault,
		KeyUsage:    types.KeyUsageTypeEncryptDecrypt,
	})
	if err != nil {
		t.Fatalf("testenv.NewKMSKey: CreateKey: %v", err)
	}
	if out.KeyMetadata == nil || aws.ToString(out.KeyMetadata.Arn) == "" {
		t.Fatal("testenv.NewKMSKey: CreateKey returned no key ARN")
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// NewKMSSigningKey creates a fresh ECC_NIST_P256 signing key in local-kms
// (the generator's record-signing key) and returns its ARN.
func NewKMSSigningKey(t testing.TB, cfg aws.Config) string {
	t.Helper()
	out, err := kms.NewFromConfig(cfg).CreateKey(t.Context(), &kms.CreateKeyInput{
		Description: aws.String("ethkeygen test signing key for " + t.Name()),
		KeySpec:     types.KeySpecEccNistP256,
		KeyUsage:    types.KeyUsageTypeSignVerify,
	})
	if err != nil {
		t.Fatalf("testenv.NewKMSSigningKey: CreateKey: %v", err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}
