package dynamostore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/internal/testenv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/dynamostore"
	"github.com/ethkeygen/ethkeygen/store/storetest"
)

// endpoint is DynamoDB Local's address, which make test exports.
func endpoint(t *testing.T) string {
	t.Helper()
	return testenv.DynamoDBEndpoint(t) // skips only outside make test; fails there if unset
}

// newClient returns a client for endpoint with static credentials, so that
// no credential chain (and no IMDS lookup) is involved.
func newClient(endpoint string, maxAttempts int) *dynamodb.Client {
	cfg := aws.Config{
		Region:           "eu-west-1",
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		RetryMaxAttempts: maxAttempts,
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	})
}

// newTable creates a table with a random name and deletes it after the test.
func newTable(t *testing.T, client *dynamodb.Client) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	table := "ethkeygen-test-" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := dynamostore.CreateTable(ctx, client, table); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	t.Cleanup(func() {
		client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	return table
}

func newStore(t *testing.T, opts ...dynamostore.Option) (*dynamostore.Store, *dynamodb.Client, string) {
	t.Helper()
	client := newClient(endpoint(t), 0)
	table := newTable(t, client)
	s, err := dynamostore.New(client, table, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, client, table
}

func TestConformance(t *testing.T) {
	endpoint(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _, _ := newStore(t, dynamostore.WithPageSize(2))
		return s
	})
}

func TestConformanceDefaultPageSize(t *testing.T) {
	endpoint(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _, _ := newStore(t)
		return s
	})
}

// TestMaxBatch checks that a full batch (100 items) is accepted by DynamoDB.
func TestMaxBatch(t *testing.T) {
	s, _, _ := newStore(t, dynamostore.WithPageSize(7))
	req := storetest.RequestID(t)
	recs := make([]*store.Record, dynamostore.MaxBatch+1)
	for i := range recs {
		recs[i] = storetest.NewRecord(t, req, i)
	}
	if err := s.Put(t.Context(), recs...); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Put(%d records) = %v, want ErrInvalid", len(recs), err)
	}
	if err := s.Put(t.Context(), recs[:dynamostore.MaxBatch]...); err != nil {
		t.Fatalf("Put(%d records) = %v", dynamostore.MaxBatch, err)
	}
	n := 0
	for r, err := range s.Query(t.Context(), store.Filter{RequestID: req}) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Slot != n {
			t.Fatalf("slot %d at position %d", r.Slot, n)
		}
		n++
	}
	if n != dynamostore.MaxBatch {
		t.Fatalf("Query yielded %d records, want %d", n, dynamostore.MaxBatch)
	}
}

// TestItems pins the item layout the deployment template and any other
// reader of the table rely on.
func TestItems(t *testing.T) {
	s, client, table := newStore(t)
	r := storetest.NewRecord(t, "req#with#hashes", 4)
	if err := s.Put(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	get := func(pk string) map[string]types.AttributeValue {
		out, err := client.GetItem(t.Context(), &dynamodb.GetItemInput{
			TableName: aws.String(table),
			Key:       map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return out.Item
	}
	rec := get("V#" + r.Pubkey)
	for _, name := range []string{"pubkey", "request_id", "slot", "network", "withdrawal_credentials", "deposit_data",
		"sealed", "sealed_mnemonic", "status", "created_at", "created_pubkey", "prov_version", "prov_build_hash",
		"origin", "auth", "auth_key_id", "v"} {
		if rec[name] == nil {
			t.Errorf("record item lacks %s", name)
		}
	}
	if v, ok := rec["created_pubkey"].(*types.AttributeValueMemberS); !ok || v.Value != store.FormatTime(r.CreatedAt)+"#"+r.Pubkey {
		t.Errorf("created_pubkey = %v", rec["created_pubkey"])
	}
	claim := get("S#req#with#hashes#4")
	if v, ok := claim["pubkey"].(*types.AttributeValueMemberS); !ok || v.Value != r.Pubkey {
		t.Errorf("slot claim = %v", claim)
	}
	if _, ok := claim["request_id"]; ok {
		t.Error("slot claim carries request_id: it would appear in the by_request index")
	}
	if _, err := s.CreateRequest(t.Context(), store.Request{ID: "req#with#hashes", Fingerprint: "f", Count: 5, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if item := get("R#req#with#hashes"); item["fingerprint"] == nil || item["status"] != nil || item["request_id"] != nil {
		t.Errorf("request item = %v", item)
	}
}

func TestCreateTableExists(t *testing.T) {
	client := newClient(endpoint(t), 0)
	table := newTable(t, client)
	err := dynamostore.CreateTable(t.Context(), client, table)
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateTable(existing) = %v, want ErrExists", err)
	}
}

func TestMissingTable(t *testing.T) {
	client := newClient(endpoint(t), 1)
	s, err := dynamostore.New(client, "ethkeygen-test-no-such-table")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(t.Context(), storetest.Pubkey(t)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Get on a missing table = %v, want ErrUnavailable", err)
	}
}

// TestUnreachable needs nothing running: port 1 refuses connections.
func TestUnreachable(t *testing.T) {
	client := newClient("http://127.0.0.1:1", 2)
	s, err := dynamostore.New(client, "table")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	rec := storetest.NewRecord(t, "r", 0)
	ops := map[string]func() error{
		"Put": func() error { return s.Put(ctx, rec) },
		"Get": func() error { _, err := s.Get(ctx, rec.Pubkey); return err },
		"CreateRequest": func() error {
			_, err := s.CreateRequest(ctx, store.Request{ID: "r", Fingerprint: "f", CreatedAt: time.Now()})
			return err
		},
		"SetStatus": func() error { return s.SetStatus(ctx, rec.Pubkey, store.StatusGenerated, store.StatusExported) },
		"Query": func() error {
			for _, err := range s.Query(ctx, store.Filter{RequestID: "r"}) {
				return err
			}
			return nil
		},
		"Scan": func() error {
			for _, err := range s.Query(ctx, store.Filter{}) {
				return err
			}
			return nil
		},
	}
	for name, op := range ops {
		start := time.Now()
		err := op()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s = %v, want ErrUnavailable", name, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s took %v", name, d)
		}
	}
}

func TestOptions(t *testing.T) {
	client := newClient("http://127.0.0.1:1", 1)
	for name, tc := range map[string]struct {
		client dynamostore.API
		table  string
		opts   []dynamostore.Option
	}{
		"nil client": {nil, "t", nil},
		"no table":   {client, "", nil},
		"page 0":     {client, "t", []dynamostore.Option{dynamostore.WithPageSize(0)}},
		"page clash": {client, "t", []dynamostore.Option{dynamostore.WithPageSize(2), dynamostore.WithPageSize(3)}},
	} {
		if _, err := dynamostore.New(tc.client, tc.table, tc.opts...); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: New = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := dynamostore.New(client, "t", dynamostore.WithPageSize(2), dynamostore.WithPageSize(2)); err != nil {
		t.Errorf("repeated equal option: %v", err)
	}
}

func TestCreateTableInput(t *testing.T) {
	in := dynamostore.CreateTableInput("t")
	var names []string
	for _, g := range in.GlobalSecondaryIndexes {
		names = append(names, *g.IndexName)
	}
	if got := strings.Join(names, ","); got != "by_request,by_status" {
		t.Errorf("indexes = %s", got)
	}
	if in.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("billing mode = %s", in.BillingMode)
	}
}

// counting wraps the client and counts Query and Scan requests.
type counting struct {
	*dynamodb.Client
	queries, scans atomic.Int32
}

func (c *counting) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.queries.Add(1)
	return c.Client.Query(ctx, in, o...)
}

func (c *counting) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	c.scans.Add(1)
	return c.Client.Scan(ctx, in, o...)
}

// TestPages checks that WithPageSize(2) really reads 7 records in several
// requests, following LastEvaluatedKey.
func TestPages(t *testing.T) {
	client := newClient(endpoint(t), 0)
	table := newTable(t, client)
	c := &counting{Client: client}
	s, err := dynamostore.New(c, table, dynamostore.WithPageSize(2))
	if err != nil {
		t.Fatal(err)
	}
	req := storetest.RequestID(t)
	var recs []*store.Record
	for i := 0; i < 7; i++ {
		recs = append(recs, storetest.NewRecord(t, req, i))
	}
	if err := s.Put(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
	for _, f := range []store.Filter{{RequestID: req}, {Status: store.StatusGenerated}, {}} {
		c.queries.Store(0)
		c.scans.Store(0)
		n := 0
		for _, err := range s.Query(t.Context(), f) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 7 {
			t.Errorf("Query(%+v) yielded %d records, want 7", f, n)
		}
		if got := c.queries.Load() + c.scans.Load(); got < 4 {
			t.Errorf("Query(%+v) made %d requests, want at least 4 pages of 2", f, got)
		}
	}
}
