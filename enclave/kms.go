package enclave

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/ethkeygen/ethkeygen/envelope"
)

// DialFunc opens a connection; inside the enclave it reaches the parent's
// vsock-proxy (which forwards to the KMS endpoint only).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// NitroOpener returns a Config.NewOpener for production: a KMS client with
// the forwarded credentials whose every TCP connection goes through dial
// (TLS to kms.<region>.amazonaws.com is still verified end to end, so the
// parent sees only ciphertext), wrapped by envelope.NewNitroKMSOpener with
// attester (attest.NSM{} in the enclave).
func NitroOpener(dial DialFunc, attester envelope.Attester) func(ctx context.Context, region string, creds Credentials) (envelope.Opener, error) {
	return func(ctx context.Context, region string, creds Credentials) (envelope.Opener, error) {
		if region == "" || creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
			return nil, errors.New("enclave: a region and credentials are required")
		}
		cfg := aws.Config{
			Region:      region,
			Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)),
			HTTPClient: &http.Client{
				Timeout: 30 * time.Second,
				Transport: &http.Transport{
					DialContext:         dial,
					ForceAttemptHTTP2:   true,
					TLSHandshakeTimeout: 10 * time.Second,
					MaxIdleConns:        4,
				},
			},
		}
		return envelope.NewNitroKMSOpener(kms.NewFromConfig(cfg), attester), nil
	}
}
