//go:build !ethkeygen_fuzzonly

package custody

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/dynamostore"
)

// outage is an HTTP transport that goes down after `after` requests (when
// armed) and comes back when disarmed: a service going away mid-run.
type outage struct {
	base  http.RoundTripper
	after atomic.Int64 // requests left before the outage; <0 means no outage
	down  atomic.Bool
}

func newOutage() *outage {
	o := &outage{base: http.DefaultTransport}
	o.after.Store(-1)
	return o
}

func (o *outage) RoundTrip(r *http.Request) (*http.Response, error) {
	if o.down.Load() {
		return nil, errors.New("connection refused (injected outage)")
	}
	if o.after.Load() >= 0 && o.after.Add(-1) < 0 {
		o.down.Store(true)
		return nil, errors.New("connection refused (injected outage)")
	}
	return o.base.RoundTrip(r)
}

func (o *outage) arm(after int64) { o.down.Store(false); o.after.Store(after) }
func (o *outage) heal()           { o.after.Store(-1); o.down.Store(false) }

// TestAWSServicesGoingAway: KMS (local-kms) or DynamoDB (DynamoDB Local)
// goes away in the middle of a 20-validator run. The run fails cleanly,
// nothing half-written is returned, every stored record opens, and the same
// request completes after the service returns, with no duplicate.
func TestAWSServicesGoingAway(t *testing.T) {
	kmsCfg := testenv.AWSConfig(t, testenv.KMSEndpoint(t))
	ddbCfg := testenv.AWSConfig(t, testenv.DynamoDBEndpoint(t))
	key := testenv.NewKMSKey(t, kmsCfg)
	for _, which := range []string{"kms", "dynamodb"} {
		t.Run(which, func(t *testing.T) {
			down := newOutage()
			kc, dc := kmsCfg.Copy(), ddbCfg.Copy()
			client := &http.Client{Transport: down, Timeout: 10 * time.Second}
			if which == "kms" {
				kc.HTTPClient = client
			} else {
				dc.HTTPClient = client
			}
			kc.RetryMaxAttempts, dc.RetryMaxAttempts = 2, 2
			table := fmt.Sprintf("outage-%s-%d", which, time.Now().UnixNano())
			if err := dynamostore.CreateTable(context.Background(), dynamodb.NewFromConfig(ddbCfg), table); err != nil {
				t.Fatal(err)
			}
			st, err := dynamostore.New(dynamodb.NewFromConfig(dc), table)
			if err != nil {
				t.Fatal(err)
			}
			signer, verifier := testKeys(t)
			g, err := NewGenerator(st, envelope.NewKMSSealer(kms.NewFromConfig(kc), key), signer)
			if err != nil {
				t.Fatal(err)
			}
			req := hoodiRequest("outage-"+which, 20)
			req.Format = FormatRaw
			down.arm(12) // a dozen requests in: the service goes away
			res, err := g.Generate(context.Background(), req, nil)
			if err == nil || res != nil {
				t.Fatalf("run through an outage reported success: %v", err)
			}
			down.heal()
			opener := NewOpener(st, envelope.NewKMSOpener(kms.NewFromConfig(kmsCfg)), verifier)
			stored := 0
			for rec, err := range st.Query(context.Background(), store.Filter{RequestID: req.ID}) {
				if err != nil {
					t.Fatal(err)
				}
				s, err := opener.OpenRecord(context.Background(), rec)
				if err != nil {
					t.Fatalf("stored record does not open: %v", err)
				}
				s.Destroy()
				stored++
			}
			if stored >= 20 {
				t.Fatalf("the outage did not interrupt the run (%d stored)", stored)
			}
			res, err = g.Generate(context.Background(), req, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Created != 20-stored {
				t.Fatalf("resume created %d, want %d", res.Created, 20-stored)
			}
			seen := map[string]bool{}
			for _, v := range res.Validators {
				if seen[v.Pubkey] {
					t.Fatal("duplicate")
				}
				seen[v.Pubkey] = true
				s, _, err := opener.Open(context.Background(), v.Pubkey)
				if err != nil {
					t.Fatal(err)
				}
				s.Destroy()
			}
			if len(seen) != 20 {
				t.Fatalf("%d validators", len(seen))
			}
		})
	}
}
