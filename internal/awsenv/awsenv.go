// Package awsenv refuses the environment variables that would redirect or
// intercept the AWS SDK's traffic in the deployed adapters (the Lambda
// function, the enclave and its parent). It has no dependencies, so the
// enclave image can use it.
package awsenv

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrEndpointOverride is returned by RefuseEndpointOverrides.
var ErrEndpointOverride = errors.New("awsenv: endpoint override in the environment")

// overridePrefixes and overrideNames are the variables (compared in upper
// case) that redirect or intercept the AWS SDK's traffic: AWS_ENDPOINT_URL
// and AWS_ENDPOINT_URL_<SERVICE> send requests (and so data keys) to another
// server, AWS_CA_BUNDLE makes another server's certificate trusted, and the
// proxy variables route TLS through a third party (Go's net/http reads them
// in any case).
var (
	overridePrefixes = []string{"AWS_ENDPOINT_URL"}
	overrideNames    = []string{"AWS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}
)

// EndpointOverrides returns the names (as spelled in environ, sorted) of the
// variables in environ ("NAME=value" entries, as os.Environ returns) that
// would redirect AWS traffic. A variable counts when it is present, even
// empty.
func EndpointOverrides(environ []string) []string {
	var found []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		up := strings.ToUpper(name)
		if slices.Contains(overrideNames, up) || slices.ContainsFunc(overridePrefixes, func(p string) bool { return strings.HasPrefix(up, p) }) {
			found = append(found, name)
		}
	}
	slices.Sort(found)
	return slices.Compact(found)
}

// RefuseEndpointOverrides returns an error wrapping ErrEndpointOverride that
// names (never the values of) every variable in environ that would redirect
// AWS traffic, or nil. The Lambda function and the enclave's parent call it
// before they build any AWS client: their environment can be changed by
// lambda:UpdateFunctionConfiguration or the host, which code signing does
// not cover. The CLI does not: it keeps endpoint overrides for local
// stand-ins (local-kms, DynamoDB Local).
func RefuseEndpointOverrides(environ []string) error {
	if names := EndpointOverrides(environ); len(names) > 0 {
		return fmt.Errorf("%w: refusing to start with %s set (AWS endpoints, CA bundle and proxies are not configurable here: unset them)",
			ErrEndpointOverride, strings.Join(names, ", "))
	}
	return nil
}
