package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

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
	// Lodestar's dev chain (lodestar dev), started by scripts/test.sh.
	EnvKeymanagerURL       = "ETHKEYGEN_KEYMANAGER_URL"        // its Keymanager API
	EnvKeymanagerTokenFile = "ETHKEYGEN_KEYMANAGER_TOKEN_FILE" // that API's bearer token file
	EnvBeaconURL           = "ETHKEYGEN_BEACON_URL"            // its beacon node's REST API
	EnvLodestar            = "ETHKEYGEN_LODESTAR"              // the lodestar CLI (validator import/list/slashing-protection)
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

// Keymanager is the Keymanager API of the validator client that make test
// runs (Lodestar under `lodestar dev`).
type Keymanager struct {
	URL       string // e.g. http://127.0.0.1:19500
	TokenFile string // its bearer token
	BeaconURL string // the beacon node's REST API (GET /eth/v1/beacon/genesis)
}

// KeymanagerAPI returns the running Keymanager API, or skips the test
// (fails it under ETHKEYGEN_REQUIRE_INTEGRATION=1) when there is none.
func KeymanagerAPI(t testing.TB) Keymanager {
	t.Helper()
	return Keymanager{
		URL:       lookup(t, EnvKeymanagerURL, "the Keymanager API URL of lodestar dev"),
		TokenFile: lookup(t, EnvKeymanagerTokenFile, "the Keymanager API token file of lodestar dev"),
		BeaconURL: lookup(t, EnvBeaconURL, "the beacon REST URL of lodestar dev"),
	}
}

// LodestarPath returns the path of the lodestar CLI, or skips the test
// (fails it under ETHKEYGEN_REQUIRE_INTEGRATION=1) when there is none.
func LodestarPath(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvLodestar, "the lodestar CLI path")
}

// Lodestar runs the lodestar CLI with args (at most timeout) and returns
// its combined output; it fails the test if the command fails, with the
// output. Each call runs in a fresh process: a dataDir given in args is
// the caller's.
func Lodestar(t testing.TB, timeout time.Duration, args ...string) string {
	t.Helper()
	out, err := TryLodestar(t, timeout, args...)
	if err != nil {
		t.Fatalf("lodestar %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TryLodestar is Lodestar returning the error instead of failing (for
// tests that expect Lodestar to refuse something).
func TryLodestar(t testing.TB, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	bin := LodestarPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "FORCE_COLOR=0")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("timed out after %v", timeout)
	}
	return string(out), err
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
