package dynamostore

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/storetest"
)

// claimFake answers TransactWriteItems with the scripted cancellations in
// turn (success once they run out) and records every request. Each script
// entry maps an item index (len(batch) is the header) to a reason code and
// whether the reason carries the old item.
type claimFake struct {
	API
	mu     sync.Mutex
	script []map[int]reason
	calls  []*dynamodb.TransactWriteItemsInput
}

type reason struct {
	code    string
	oldItem bool
}

func (f *claimFake) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	if len(f.script) == 0 {
		return &dynamodb.TransactWriteItemsOutput{}, nil
	}
	step := f.script[0]
	f.script = f.script[1:]
	e := &types.TransactionCanceledException{Message: aws.String("Transaction cancelled")}
	for i := range in.TransactItems {
		r := types.CancellationReason{Code: aws.String("None")}
		if s, ok := step[i]; ok {
			r.Code = aws.String(s.code)
			if s.oldItem {
				r.Item = map[string]types.AttributeValue{AttrPK: &types.AttributeValueMemberS{Value: "x"}}
			}
		}
		e.CancellationReasons = append(e.CancellationReasons, r)
	}
	return nil, e
}

func TestClaimCancellationReasons(t *testing.T) {
	keys := storetest.Pubkeys(t, 4)
	header := len(keys)
	for name, tc := range map[string]struct {
		script  []map[int]reason
		want    []string
		wantErr error
		batches [][]string // the keys of each transaction sent
	}{
		"conflicts then success": {
			script:  []map[int]reason{{header: {"TransactionConflict", false}}, {2: {"TransactionConflict", false}}},
			want:    keys,
			batches: [][]string{keys, keys, keys},
		},
		"claimed elsewhere dropped": {
			script:  []map[int]reason{{1: {"ConditionalCheckFailed", true}, 3: {"ConditionalCheckFailed", true}}},
			want:    []string{keys[0], keys[2]},
			batches: [][]string{keys, {keys[0], keys[2]}},
		},
		"dropped then conflict": {
			script: []map[int]reason{
				{0: {"ConditionalCheckFailed", true}},
				{header - 1: {"TransactionConflict", false}},
			},
			want:    keys[1:],
			batches: [][]string{keys, keys[1:], keys[1:]},
		},
		"all claimed elsewhere": {
			script: []map[int]reason{{0: {"ConditionalCheckFailed", true}, 1: {"ConditionalCheckFailed", true},
				2: {"ConditionalCheckFailed", true}, 3: {"ConditionalCheckFailed", true}}},
			batches: [][]string{keys},
			wantErr: errHeaderRead, // then the header is read (the fake has no GetItem)
		},
		"sealed": {
			script:  []map[int]reason{{header: {"ConditionalCheckFailed", true}, 0: {"ConditionalCheckFailed", true}}},
			wantErr: store.ErrConflict,
			batches: [][]string{keys},
		},
		"missing export": {
			script:  []map[int]reason{{header: {"ConditionalCheckFailed", false}}},
			wantErr: store.ErrNotFound,
			batches: [][]string{keys},
		},
		"other reason": {
			script:  []map[int]reason{{0: {"ValidationError", false}}},
			wantErr: store.ErrUnavailable,
			batches: [][]string{keys},
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := &claimFake{API: headerless{}, script: tc.script}
			l, err := NewLedger(f, "t")
			if err != nil {
				t.Fatal(err)
			}
			got, err := l.ClaimForExport(t.Context(), "exp", keys, time.Now(), "x")
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ClaimForExport = %v, %v, want %v", got, err, tc.wantErr)
				}
			} else if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ClaimForExport = %v, %v, want %v", got, err, tc.want)
			}
			if len(f.calls) != len(tc.batches) {
				t.Fatalf("%d transactions, want %d", len(f.calls), len(tc.batches))
			}
			for i, in := range f.calls {
				var sent []string
				for _, it := range in.TransactItems[:len(in.TransactItems)-1] {
					sent = append(sent, it.Put.Item["pubkey"].(*types.AttributeValueMemberS).Value)
				}
				if !reflect.DeepEqual(sent, tc.batches[i]) {
					t.Errorf("transaction %d claims %d keys, want %d", i, len(sent), len(tc.batches[i]))
				}
				u := in.TransactItems[len(in.TransactItems)-1].Update
				if u == nil || u.ExpressionAttributeValues[":n"].(*types.AttributeValueMemberN).Value != string(rune('0'+len(sent))) {
					t.Errorf("transaction %d: header update %+v does not add %d", i, u, len(sent))
				}
			}
		})
	}
}

var errHeaderRead = errors.New("fake: GetItem")

// headerless fails GetItem with errHeaderRead.
type headerless struct{ API }

func (headerless) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return nil, errHeaderRead
}

// TestClaimBatches: a claim of more than ClaimBatch keys is split into
// transactions of at most 100 items.
func TestClaimBatches(t *testing.T) {
	f := &claimFake{API: headerless{}}
	l, err := NewLedger(f, "t")
	if err != nil {
		t.Fatal(err)
	}
	keys := storetest.Pubkeys(t, 2*ClaimBatch+5)
	got, err := l.ClaimForExport(t.Context(), "exp", keys, time.Now(), "x")
	if err != nil || !reflect.DeepEqual(got, keys) {
		t.Fatalf("ClaimForExport = %d keys, %v", len(got), err)
	}
	if len(f.calls) != 3 {
		t.Fatalf("%d transactions, want 3", len(f.calls))
	}
	for i, in := range f.calls {
		if n := len(in.TransactItems); n > 100 {
			t.Errorf("transaction %d has %d items", i, n)
		}
	}
}
