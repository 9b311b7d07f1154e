package dynamostore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/storetest"
)

// scripted is an API whose TransactWriteItems and UpdateItem return the
// scripted errors in turn (nil once they run out). Other methods fail.
type scripted struct {
	API
	mu    sync.Mutex
	errs  []error
	calls int
}

func (f *scripted) next() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.errs) == 0 {
		return nil
	}
	err := f.errs[0]
	if len(f.errs) > 1 {
		f.errs = f.errs[1:]
	}
	return err
}

func (f *scripted) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if len(in.TransactItems) > 100 {
		return nil, &smithy.GenericAPIError{Code: "ValidationException", Message: "too many items"}
	}
	for _, it := range in.TransactItems {
		if it.Put == nil || aws.ToString(it.Put.ConditionExpression) != "attribute_not_exists(#pk)" || it.Put.ExpressionAttributeNames["#pk"] != "pk" {
			return nil, errors.New("fake: unconditional put")
		}
	}
	return &dynamodb.TransactWriteItemsOutput{}, f.next()
}

func (f *scripted) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return &dynamodb.UpdateItemOutput{}, f.next()
}

func canceled(codes ...string) error {
	e := &types.TransactionCanceledException{Message: aws.String("Transaction cancelled")}
	for _, c := range codes {
		r := types.CancellationReason{Code: aws.String(c)}
		if c == "ConditionalCheckFailed" {
			r.Item = map[string]types.AttributeValue{"pubkey": &types.AttributeValueMemberS{Value: "holder"}}
		}
		e.CancellationReasons = append(e.CancellationReasons, r)
	}
	return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "TransactWriteItems", Err: e}
}

func TestPutErrorMapping(t *testing.T) {
	recs := []*store.Record{storetest.NewRecord(t, "req", 0), storetest.NewRecord(t, "req", 1)}
	for _, tc := range []struct {
		name      string
		errs      []error
		want      error // nil: success
		calls     int
		errSubstr string
	}{
		{"ok", nil, nil, 1, ""},
		{"pubkey exists", []error{canceled("None", "None", "ConditionalCheckFailed", "None")}, store.ErrExists, 1, "pubkey " + recs[1].Pubkey},
		{"slot taken", []error{canceled("None", "ConditionalCheckFailed", "None", "None")}, store.ErrExists, 1, `request "req" slot 0 (held by pubkey holder)`},
		{"conflict then ok", []error{canceled("TransactionConflict", "None", "None", "None"), canceled("None", "None", "None", "TransactionConflict"), nil}, nil, 3, ""},
		{"conflict then exists", []error{canceled("TransactionConflict", "None", "None", "None"), canceled("None", "ConditionalCheckFailed", "None", "None")}, store.ErrExists, 2, "slot 0"},
		{"conflict forever", []error{canceled("None", "TransactionConflict", "None", "None")}, store.ErrUnavailable, conflictAttempts, "after 8 attempts"},
		{"throttled forever", []error{canceled("ThrottlingError", "None", "None", "None")}, store.ErrUnavailable, conflictAttempts, ""},
		{"throttled", []error{&smithy.OperationError{ServiceID: "DynamoDB", OperationName: "TransactWriteItems",
			Err: &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}}}, store.ErrUnavailable, 1, "slow down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &scripted{errs: tc.errs}
			s, err := New(f, "t")
			if err != nil {
				t.Fatal(err)
			}
			err = s.Put(t.Context(), recs...)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Put = %v, want nil", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("Put = %v, want %v", err, tc.want)
			case tc.errSubstr != "" && !strings.Contains(err.Error(), tc.errSubstr):
				t.Errorf("Put = %q, want it to contain %q", err, tc.errSubstr)
			}
			if f.calls != tc.calls {
				t.Errorf("%d calls, want %d", f.calls, tc.calls)
			}
		})
	}

	// A ValidationException is a bug, not unavailability.
	f := &scripted{errs: []error{&smithy.OperationError{Err: &smithy.GenericAPIError{Code: "ValidationException", Message: "bad"}}}}
	s, _ := New(f, "t")
	if err := s.Put(t.Context(), recs...); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Put(ValidationException) = %v, want a non-ErrUnavailable error", err)
	}

	// Cancellation during the conflict backoff ends Put.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f = &scripted{errs: []error{canceled("TransactionConflict", "None", "None", "None")}}
	s, _ = New(f, "t")
	if err := s.Put(ctx, recs...); !errors.Is(err, context.Canceled) {
		t.Errorf("Put(cancelled) = %v, want context.Canceled", err)
	}
}

func TestSetStatusMapping(t *testing.T) {
	pk := storetest.Pubkey(t)
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"missing", &types.ConditionalCheckFailedException{}, store.ErrNotFound},
		{"conflict", &types.ConditionalCheckFailedException{Item: map[string]types.AttributeValue{
			"status": &types.AttributeValueMemberS{Value: "exported"}}}, store.ErrConflict},
	} {
		f := &scripted{errs: []error{&smithy.OperationError{Err: tc.err}}}
		s, _ := New(f, "t")
		if err := s.SetStatus(t.Context(), pk, store.StatusGenerated, store.StatusExported); !errors.Is(err, tc.want) {
			t.Errorf("%s: SetStatus = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// getter is an API whose GetItem answers from items (keyed by pk) or fails
// with err. Other methods fail.
type getter struct {
	API
	items map[string]map[string]types.AttributeValue
	err   error
	keys  []string
}

func (g *getter) GetItem(ctx context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	pk := in.Key["pk"].(*types.AttributeValueMemberS).Value
	g.keys = append(g.keys, pk)
	if !aws.ToBool(in.ConsistentRead) {
		return nil, errors.New("fake: GetItem without ConsistentRead")
	}
	if g.err != nil {
		return nil, g.err
	}
	return &dynamodb.GetItemOutput{Item: g.items[pk]}, nil
}

func TestGetSlotMapping(t *testing.T) {
	r := storetest.NewRecord(t, "req#x", 3)
	other := storetest.NewRecord(t, "req#x", 4)
	claim := func(pk string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "S#req#x#3"}, "pubkey": &types.AttributeValueMemberS{Value: pk}}
	}
	for _, tc := range []struct {
		name      string
		items     map[string]map[string]types.AttributeValue
		err       error
		want      error // sentinel; nil with wantErr: an error without a sentinel
		wantErr   bool
		errSubstr string
	}{
		{name: "ok", items: map[string]map[string]types.AttributeValue{
			"S#req#x#3": claim(r.Pubkey), "V#" + r.Pubkey: encodeRecord(r)}},
		{name: "no claim", want: store.ErrNotFound, wantErr: true, errSubstr: `request "req#x" slot 3`},
		{name: "unavailable", err: &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "GetItem",
			Err: &types.ResourceNotFoundException{Message: aws.String("no table")}}, want: store.ErrUnavailable, wantErr: true},
		{name: "claim without record", items: map[string]map[string]types.AttributeValue{
			"S#req#x#3": claim(r.Pubkey)}, wantErr: true, errSubstr: "has no record"},
		{name: "claim of another slot's record", items: map[string]map[string]types.AttributeValue{
			"S#req#x#3": claim(other.Pubkey), "V#" + other.Pubkey: encodeRecord(other)}, wantErr: true, errSubstr: "slot 4"},
		{name: "bad claim", items: map[string]map[string]types.AttributeValue{
			"S#req#x#3": claim("0xABC")}, wantErr: true, errSubstr: "attribute pubkey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := New(&getter{items: tc.items, err: tc.err}, "t")
			got, err := s.GetSlot(t.Context(), "req#x", 3)
			switch {
			case !tc.wantErr && err != nil:
				t.Fatalf("GetSlot = %v", err)
			case !tc.wantErr:
				if got.Pubkey != r.Pubkey || got.RequestID != r.RequestID || got.Slot != r.Slot {
					t.Errorf("GetSlot = %+v, want %s", got, r.Pubkey)
				}
				return
			case err == nil:
				t.Fatalf("GetSlot = %+v, want an error", got)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("GetSlot = %v, want %v", err, tc.want)
			case tc.want == nil && (errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable)):
				t.Fatalf("GetSlot = %v, want an error without a sentinel", err)
			case tc.errSubstr != "" && !strings.Contains(err.Error(), tc.errSubstr):
				t.Errorf("GetSlot = %q, want it to contain %q", err, tc.errSubstr)
			}
		})
	}
	// Invalid arguments are refused before any I/O.
	g := &getter{}
	s, _ := New(g, "t")
	for _, tc := range []struct {
		req  string
		slot int
	}{{"", 0}, {"r", -1}} {
		if _, err := s.GetSlot(t.Context(), tc.req, tc.slot); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("GetSlot(%q, %d) = %v, want ErrInvalid", tc.req, tc.slot, err)
		}
	}
	if len(g.keys) != 0 {
		t.Errorf("invalid GetSlot calls did I/O: %v", g.keys)
	}
}
