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
