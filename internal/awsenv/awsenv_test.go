package awsenv

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestEndpointOverrides: every variable the AWS SDK for Go v2 and net/http
// read to redirect or intercept traffic is found, in any case, present even
// empty; nothing else is, and the error names the variables, not their
// values.
func TestEndpointOverrides(t *testing.T) {
	env := []string{
		"AWS_REGION=eu-west-1", "AWS_ACCESS_KEY_ID=x", "PATH=/bin", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024",
		"AWS_ENDPOINT_URL_KMS=http://evil.example", "aws_endpoint_url_dynamodb=http://evil.example", "AWS_ENDPOINT_URL=",
		"AWS_CA_BUNDLE=/tmp/ca.pem", "https_proxy=http://p", "HTTP_PROXY=http://p", "All_Proxy=socks5://p", "no_proxy=*",
		"ETHKEYGEN_TABLE=t", "MY_HTTP_PROXY_NOTE=x",
	}
	got := EndpointOverrides(env)
	want := []string{"AWS_CA_BUNDLE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "All_Proxy", "HTTP_PROXY",
		"aws_endpoint_url_dynamodb", "https_proxy", "no_proxy"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	err := RefuseEndpointOverrides(env)
	if !errors.Is(err, ErrEndpointOverride) || strings.Contains(err.Error(), "evil") || !strings.Contains(err.Error(), "AWS_ENDPOINT_URL_KMS") {
		t.Fatalf("%v", err)
	}
	if err := RefuseEndpointOverrides(env[:4]); err != nil {
		t.Fatalf("clean environment refused: %v", err)
	}
}
