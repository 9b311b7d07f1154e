package dynamostore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/dynamostore"
	"github.com/ethkeygen/ethkeygen/store/storetest"
)

// newLedgerTable creates a ledger table with a random name and deletes it
// after the test.
func newLedgerTable(t *testing.T, client *dynamodb.Client) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	table := "ethkeygen-test-" + hex.EncodeToString(b) + "-ledger"
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := dynamostore.CreateLedgerTable(ctx, client, table); err != nil {
		t.Fatalf("CreateLedgerTable: %v", err)
	}
	t.Cleanup(func() {
		client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	return table
}

func newLedger(t *testing.T, opts ...dynamostore.Option) (*dynamostore.Ledger, *dynamodb.Client, string) {
	t.Helper()
	client := newClient(endpoint(t), 0)
	table := newLedgerTable(t, client)
	l, err := dynamostore.NewLedger(client, table, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, client, table
}

func TestLedgerConformance(t *testing.T) {
	endpoint(t)
	storetest.RunLedger(t, func(t *testing.T) store.Ledger {
		l, _, _ := newLedger(t, dynamostore.WithPageSize(2))
		return l
	})
}

func TestLedgerCreateTableInput(t *testing.T) {
	in := dynamostore.LedgerCreateTableInput("t-ledger")
	if aws.ToString(in.TableName) != "t-ledger" || in.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("table %s, billing %s", aws.ToString(in.TableName), in.BillingMode)
	}
	if len(in.GlobalSecondaryIndexes) != 0 || len(in.LocalSecondaryIndexes) != 0 {
		t.Error("the ledger table has an index")
	}
	if len(in.KeySchema) != 1 || aws.ToString(in.KeySchema[0].AttributeName) != "pk" || in.KeySchema[0].KeyType != types.KeyTypeHash {
		t.Errorf("key schema = %+v, want pk HASH only", in.KeySchema)
	}
	if len(in.AttributeDefinitions) != 1 || in.AttributeDefinitions[0].AttributeType != types.ScalarAttributeTypeS {
		t.Errorf("attribute definitions = %+v, want pk S only", in.AttributeDefinitions)
	}
	client := newClient(endpoint(t), 0)
	table := newLedgerTable(t, client)
	if err := dynamostore.CreateLedgerTable(t.Context(), client, table); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateLedgerTable(existing) = %v, want ErrExists", err)
	}
	if err := dynamostore.CreateLedgerTable(t.Context(), client, ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("CreateLedgerTable(\"\") = %v, want ErrInvalid", err)
	}
}

// TestLedgerItems pins the item layout of the ledger table.
func TestLedgerItems(t *testing.T) {
	l, client, table := newLedger(t)
	get := func(pk string) map[string]types.AttributeValue {
		t.Helper()
		out, err := client.GetItem(t.Context(), &dynamodb.GetItemInput{
			TableName: aws.String(table), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return out.Item
	}
	cands := storetest.Pubkeys(t, dynamostore.ChunkPubkeys+3)
	e := storetest.NewExport(t, cands)
	if _, err := l.CreateExport(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	claimed, err := l.ClaimForExport(t.Context(), e.ID, cands[:2], time.Now(), "bob")
	if err != nil || len(claimed) != 2 {
		t.Fatalf("ClaimForExport = %v, %v", claimed, err)
	}
	if err := l.SealExport(t.Context(), e.ID, cands[:2], 2); err != nil {
		t.Fatal(err)
	}
	h := get("export#" + e.ID)
	for _, name := range []string{"kind", "id", "created_at", "network", "withdrawal_credentials", "claims", "sealed", "by",
		"candidate_count", "candidate_chunks", "candidates_sha256", "member_count", "member_chunks", "members_sha256", "v"} {
		if h[name] == nil {
			t.Errorf("export header lacks %s", name)
		}
	}
	if v, ok := h["claims"].(*types.AttributeValueMemberN); !ok || v.Value != "2" {
		t.Errorf("claims = %v, want N 2", h["claims"])
	}
	if v, ok := h["sealed"].(*types.AttributeValueMemberBOOL); !ok || !v.Value {
		t.Errorf("sealed = %v, want BOOL true", h["sealed"])
	}
	if v, ok := h["candidate_chunks"].(*types.AttributeValueMemberN); !ok || v.Value != "2" {
		t.Errorf("candidate_chunks = %v, want 2", h["candidate_chunks"])
	}
	digest := h["candidates_sha256"].(*types.AttributeValueMemberS).Value
	for c, want := range [][]string{cands[:dynamostore.ChunkPubkeys], cands[dynamostore.ChunkPubkeys:]} {
		item := get("export#" + e.ID + "#c#" + digest + "#" + []string{"0", "1"}[c])
		b, ok := item["pubkeys"].(*types.AttributeValueMemberB)
		if !ok || len(b.Value) != 48*len(want) {
			t.Fatalf("candidate chunk %d: pubkeys = %T, want %d bytes", c, item["pubkeys"], 48*len(want))
		}
		if got := hex.EncodeToString(b.Value[:48]); got != want[0] {
			t.Errorf("candidate chunk %d starts with %s, want %s", c, got, want[0])
		}
		if k, _ := item["kind"].(*types.AttributeValueMemberS); k == nil || k.Value != "candidates" {
			t.Errorf("candidate chunk kind = %v", item["kind"])
		}
	}
	mdigest := h["members_sha256"].(*types.AttributeValueMemberS).Value
	if m := get("export#" + e.ID + "#m#" + mdigest + "#0"); m["pubkeys"] == nil {
		t.Error("member chunk 0 missing")
	}
	k := get("key#" + cands[0])
	for name, want := range map[string]string{"kind": "key", "pubkey": cands[0], "export_id": e.ID, "state": "exported", "by": "bob"} {
		if v, ok := k[name].(*types.AttributeValueMemberS); !ok || v.Value != want {
			t.Errorf("key item %s = %v, want %q", name, k[name], want)
		}
	}
	if v, ok := k["version"].(*types.AttributeValueMemberN); !ok || v.Value != "1" {
		t.Errorf("key item version = %v", k["version"])
	}
	if _, err := l.Pin(t.Context(), "recipient", "age1x"); err != nil {
		t.Fatal(err)
	}
	if p := get("pin#recipient"); p["value"] == nil || p["kind"] == nil {
		t.Errorf("pin item = %v", p)
	}
	// An export of generated deposits has no top_up_gwei (absent: 0); a
	// top-up export has it as N, and no withdrawal_credentials when it
	// states none.
	if h["top_up_gwei"] != nil {
		t.Errorf("export header has top_up_gwei %v", h["top_up_gwei"])
	}
	tu := storetest.NewExport(t, cands[:2])
	tu.TopUpGwei, tu.WithdrawalCredentials = 2_000_000_000, ""
	if _, err := l.CreateExport(t.Context(), tu); err != nil {
		t.Fatal(err)
	}
	th := get("export#" + tu.ID)
	if v, ok := th["top_up_gwei"].(*types.AttributeValueMemberN); !ok || v.Value != "2000000000" {
		t.Errorf("top-up header top_up_gwei = %v, want N 2000000000", th["top_up_gwei"])
	}
	if th["withdrawal_credentials"] != nil {
		t.Errorf("top-up header withdrawal_credentials = %v, want none", th["withdrawal_credentials"])
	}
}

// TestLedgerDamage: a chunk changed behind the ledger's back is detected.
func TestLedgerDamage(t *testing.T) {
	l, client, table := newLedger(t)
	cands := storetest.Pubkeys(t, 3)
	e := storetest.NewExport(t, cands)
	if _, err := l.CreateExport(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	out, err := client.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "export#" + e.ID}},
	})
	if err != nil {
		t.Fatal(err)
	}
	digest := out.Item["candidates_sha256"].(*types.AttributeValueMemberS).Value
	other, _ := hex.DecodeString(storetest.Pubkey(t) + cands[1] + cands[2])
	if _, err := client.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
		"pk":        &types.AttributeValueMemberS{Value: "export#" + e.ID + "#c#" + digest + "#0"},
		"kind":      &types.AttributeValueMemberS{Value: "candidates"},
		"export_id": &types.AttributeValueMemberS{Value: e.ID},
		"n":         &types.AttributeValueMemberN{Value: "0"},
		"pubkeys":   &types.AttributeValueMemberB{Value: other},
		"v":         &types.AttributeValueMemberN{Value: "1"},
	}}); err != nil {
		t.Fatal(err)
	}
	got, err := l.GetExport(t.Context(), e.ID)
	if err == nil {
		t.Fatalf("GetExport of a tampered export = %+v, want an error", got)
	}
	for _, s := range []error{store.ErrNotFound, store.ErrUnavailable, store.ErrInvalid} {
		if errors.Is(err, s) {
			t.Errorf("damage reported as %v: %v", s, err)
		}
	}
}

// TestLedgerSurvivesRecordsReplaced writes the ledger, deletes the records
// table and creates it again (as a restore would), and checks that the
// ledger's state is all still there.
func TestLedgerSurvivesRecordsReplaced(t *testing.T) {
	recs, client, recTable := newStore(t)
	l, err := dynamostore.NewLedger(client, newLedgerTable(t, client))
	if err != nil {
		t.Fatal(err)
	}
	r := storetest.NewRecord(t, "r", 0)
	if err := recs.Put(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	e := storetest.NewExport(t, []string{r.Pubkey, storetest.Pubkey(t)})
	if _, err := l.CreateExport(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ClaimForExport(t.Context(), e.ID, e.Candidates, time.Now(), "x"); err != nil {
		t.Fatal(err)
	}
	if err := l.SealExport(t.Context(), e.ID, e.Candidates, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Pin(t.Context(), "recipient", "age1abc"); err != nil {
		t.Fatal(err)
	}
	before, err := l.GetExport(t.Context(), e.ID)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := l.GetKey(t.Context(), r.Pubkey)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := client.DeleteTable(t.Context(), &dynamodb.DeleteTableInput{TableName: aws.String(recTable)}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, client, recTable)
	if err := dynamostore.CreateTable(t.Context(), client, recTable); err != nil {
		t.Fatal(err)
	}
	if _, err := recs.Get(t.Context(), r.Pubkey); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("new records table: Get = %v, want ErrNotFound", err)
	}
	if err := recs.Put(t.Context(), r); err != nil { // the record restored
		t.Fatal(err)
	}

	got, err := l.GetExport(t.Context(), e.ID)
	if err != nil || !reflect.DeepEqual(got, before) {
		t.Errorf("GetExport after the records table was replaced = %+v, %v, want %+v", got, err, before)
	}
	if got, err := l.GetKey(t.Context(), r.Pubkey); err != nil || !reflect.DeepEqual(got, ks) {
		t.Errorf("GetKey = %+v, %v, want %+v", got, err, ks)
	}
	if v, err := l.Pin(t.Context(), "recipient", "age1attacker"); err != nil || v != "age1abc" {
		t.Errorf("Pin = %q, %v, want age1abc", v, err)
	}
	other := storetest.NewExport(t, []string{r.Pubkey})
	if _, err := l.CreateExport(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	if c, err := l.ClaimForExport(t.Context(), other.ID, []string{r.Pubkey}, time.Now(), "x"); err != nil || len(c) != 0 {
		t.Errorf("claim of a restored record's key by another export = %v, %v, want none", c, err)
	}
}

func waitGone(t *testing.T, client *dynamodb.Client, table string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		_, err := client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("table %s not deleted", table)
}

func TestLedgerMissingTable(t *testing.T) {
	client := newClient(endpoint(t), 1)
	l, err := dynamostore.NewLedger(client, "ethkeygen-test-no-such-ledger")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.GetKey(t.Context(), storetest.Pubkey(t)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetKey on a missing table = %v, want ErrUnavailable", err)
	}
}

// TestLedgerUnreachable needs nothing running: port 1 refuses connections.
func TestLedgerUnreachable(t *testing.T) {
	client := newClient("http://127.0.0.1:1", 2)
	l, err := dynamostore.NewLedger(client, "table-ledger")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	pk := storetest.Pubkey(t)
	e := storetest.NewExport(t, []string{pk})
	ops := map[string]func() error{
		"CreateExport": func() error { _, err := l.CreateExport(ctx, e); return err },
		"GetExport":    func() error { _, err := l.GetExport(ctx, e.ID); return err },
		"Exports": func() error {
			for _, err := range l.Exports(ctx) {
				return err
			}
			return nil
		},
		"ClaimForExport": func() error { _, err := l.ClaimForExport(ctx, e.ID, []string{pk}, time.Now(), "x"); return err },
		"SealExport":     func() error { return l.SealExport(ctx, e.ID, nil, 0) },
		"GetKey":         func() error { _, err := l.GetKey(ctx, pk); return err },
		"PutKey": func() error {
			return l.PutKey(ctx, &store.KeyState{Pubkey: pk, State: store.StatusRetired, Version: 1, UpdatedAt: time.Now()})
		},
		"Keys": func() error {
			for _, err := range l.Keys(ctx) {
				return err
			}
			return nil
		},
		"Pin": func() error { _, err := l.Pin(ctx, "n", "v"); return err },
	}
	for name, op := range ops {
		start := time.Now()
		if err := op(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s = %v, want ErrUnavailable", name, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s took %v", name, d)
		}
	}
}

func TestLedgerOptions(t *testing.T) {
	client := newClient("http://127.0.0.1:1", 1)
	if _, err := dynamostore.NewLedger(nil, "t"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("NewLedger(nil client) = %v, want ErrInvalid", err)
	}
	if _, err := dynamostore.NewLedger(client, ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("NewLedger(no table) = %v, want ErrInvalid", err)
	}
	if _, err := dynamostore.NewLedger(client, "t", dynamostore.WithPageSize(0)); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("NewLedger(page 0) = %v, want ErrInvalid", err)
	}
	// Too many candidates for 99 chunks: refused before any I/O.
	l, err := dynamostore.NewLedger(client, "t")
	if err != nil {
		t.Fatal(err)
	}
	big := make([]string, dynamostore.MaxExportPubkeys+1)
	for i := range big {
		big[i] = fmt.Sprintf("%096x", i)
	}
	if _, err := l.CreateExport(t.Context(), storetest.NewExport(t, big)); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("CreateExport(%d candidates) = %v, want ErrInvalid", len(big), err)
	}
}
