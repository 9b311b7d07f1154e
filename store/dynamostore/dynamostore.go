package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/ethkeygen/ethkeygen/store"
)

// API is the part of the DynamoDB client the store uses.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// Key, attribute and index names. See the package documentation.
const (
	AttrPK            = "pk"
	AttrRequestID     = "request_id"
	AttrSlot          = "slot"
	AttrStatus        = "status"
	AttrCreatedPubkey = "created_pubkey"

	IndexByRequest = "by_request"
	IndexByStatus  = "by_status"

	prefixRecord  = "V#"
	prefixSlot    = "S#"
	prefixRequest = "R#"

	itemFormat = "1"
)

// MaxBatch is the largest number of records one Put accepts: each record is
// two items and a DynamoDB transaction holds at most 100.
const MaxBatch = 50

// conflictAttempts bounds how often Put retries a transaction cancelled by
// TransactionConflict or throttling.
const conflictAttempts = 8

// Option configures New.
type Option interface{ apply(*options) error }

type options struct {
	pageSize int32
}

type optionFunc func(*options) error

func (f optionFunc) apply(o *options) error { return f(o) }

// WithPageSize sets the Limit of each Query or Scan request. Without it
// DynamoDB returns pages of up to 1 MB. Tests set a small value to force
// many pages.
func WithPageSize(n int) Option {
	return optionFunc(func(o *options) error {
		if n < 1 || n > 1<<20 {
			return fmt.Errorf("%w: page size %d out of range", store.ErrInvalid, n)
		}
		if o.pageSize != 0 && o.pageSize != int32(n) {
			return fmt.Errorf("%w: conflicting page sizes %d and %d", store.ErrInvalid, o.pageSize, n)
		}
		o.pageSize = int32(n)
		return nil
	})
}

// Store is the DynamoDB implementation of store.Store.
type Store struct {
	client API
	table  string
	opts   options
}

var _ store.Store = (*Store)(nil)

// New returns a Store using table through client. It does no I/O; the
// table must exist (see CreateTable).
func New(client API, table string, opts ...Option) (*Store, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil DynamoDB client", store.ErrInvalid)
	}
	if table == "" {
		return nil, fmt.Errorf("%w: empty table name", store.ErrInvalid)
	}
	s := &Store{client: client, table: table}
	for _, o := range opts {
		if err := o.apply(&s.opts); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Close does nothing: the client belongs to the caller.
func (s *Store) Close() error { return nil }

func recordKey(pubkey string) string { return prefixRecord + pubkey }

func slotKey(req string, slot int) string { return prefixSlot + req + "#" + strconv.Itoa(slot) }

func requestKey(id string) string { return prefixRequest + id }

func keyOf(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: &types.AttributeValueMemberS{Value: pk}}
}

// CreateRequest implements store.Store with a conditional PutItem.
func (s *Store) CreateRequest(ctx context.Context, r store.Request) (store.Request, error) {
	if err := r.Validate(); err != nil {
		return store.Request{}, err
	}
	r.CreatedAt = r.CreatedAt.UTC().Truncate(time.Millisecond)
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table),
		Item: map[string]types.AttributeValue{
			AttrPK:        &types.AttributeValueMemberS{Value: requestKey(r.ID)},
			"id":          &types.AttributeValueMemberS{Value: r.ID},
			"fingerprint": &types.AttributeValueMemberS{Value: r.Fingerprint},
			"count":       &types.AttributeValueMemberN{Value: strconv.Itoa(r.Count)},
			"created_at":  &types.AttributeValueMemberS{Value: store.FormatTime(r.CreatedAt)},
			"v":           &types.AttributeValueMemberN{Value: itemFormat},
		},
		ConditionExpression:                 aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames:            map[string]string{"#pk": AttrPK},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return r, nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return store.Request{}, s.wrap("PutItem (create request)", err)
	}
	item := ccf.Item
	if len(item) == 0 {
		// Not returned by this endpoint: read it.
		out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(s.table), Key: keyOf(requestKey(r.ID)), ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			return store.Request{}, s.wrap("GetItem (request)", err)
		}
		item = out.Item
	}
	got, derr := decodeRequest(item)
	if derr != nil {
		return store.Request{}, derr
	}
	return got, fmt.Errorf("%w: request %q", store.ErrExists, r.ID)
}

// Put implements store.Store with one TransactWriteItems.
func (s *Store) Put(ctx context.Context, recs ...*store.Record) error {
	if len(recs) > MaxBatch {
		return fmt.Errorf("%w: %d records in one Put; DynamoDB transactions take at most %d", store.ErrInvalid, len(recs), MaxBatch)
	}
	if err := store.ValidateBatch(recs); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	cond := aws.String("attribute_not_exists(#pk)")
	names := map[string]string{"#pk": AttrPK}
	items := make([]types.TransactWriteItem, 0, 2*len(recs))
	for _, r := range recs {
		items = append(items,
			types.TransactWriteItem{Put: &types.Put{
				TableName:                aws.String(s.table),
				Item:                     encodeRecord(r),
				ConditionExpression:      cond,
				ExpressionAttributeNames: names,
			}},
			types.TransactWriteItem{Put: &types.Put{
				TableName: aws.String(s.table),
				Item: map[string]types.AttributeValue{
					AttrPK:   &types.AttributeValueMemberS{Value: slotKey(r.RequestID, r.Slot)},
					"pubkey": &types.AttributeValueMemberS{Value: r.Pubkey},
				},
				ConditionExpression:                 cond,
				ExpressionAttributeNames:            names,
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
		)
	}
	in := &dynamodb.TransactWriteItemsInput{TransactItems: items}
	for attempt := 1; ; attempt++ {
		// ClientRequestToken is left nil: the SDK generates one per call
		// and keeps it across its own retries of that call.
		_, err := s.client.TransactWriteItems(ctx, in)
		if err == nil {
			return nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return s.wrap("TransactWriteItems", err)
		}
		retry := false
		for i, reason := range tce.CancellationReasons {
			switch aws.ToString(reason.Code) {
			case "ConditionalCheckFailed":
				r := recs[i/2]
				if i%2 == 0 {
					return fmt.Errorf("%w: pubkey %s", store.ErrExists, r.Pubkey)
				}
				holder := "another pubkey"
				if v, ok := reason.Item["pubkey"].(*types.AttributeValueMemberS); ok {
					holder = "pubkey " + v.Value
				}
				return fmt.Errorf("%w: request %q slot %d (held by %s)", store.ErrExists, r.RequestID, r.Slot, holder)
			case "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded":
				retry = true
			}
		}
		if !retry {
			return s.wrap("TransactWriteItems", err)
		}
		if attempt == conflictAttempts {
			return fmt.Errorf("%w: dynamodb TransactWriteItems on table %s: still conflicting after %d attempts: %w",
				store.ErrUnavailable, s.table, attempt, err)
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return fmt.Errorf("store: dynamodb TransactWriteItems: %w", err)
		}
	}
}

// backoff returns a jittered exponential delay for the given attempt (1-based).
func backoff(attempt int) time.Duration {
	d := 20 * time.Millisecond << min(attempt-1, 6)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Get implements store.Store with a strongly consistent GetItem.
func (s *Store) Get(ctx context.Context, pubkey string) (*store.Record, error) {
	if !store.ValidPubkey(pubkey) {
		return nil, fmt.Errorf("%w: pubkey %q is not %d lowercase hex characters", store.ErrInvalid, pubkey, store.PubkeyLen)
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            keyOf(recordKey(pubkey)),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, s.wrap("GetItem", err)
	}
	if len(out.Item) == 0 {
		return nil, fmt.Errorf("%w: pubkey %s", store.ErrNotFound, pubkey)
	}
	return decodeRecord(out.Item)
}

// GetSlot implements store.Store with two strongly consistent GetItems:
// the slot-claim item S#<request>#<slot>, which names the pubkey holding
// the slot, then the record itself (as Get). Unlike Query it does not read
// the by_request index, so a record just written is found at once.
func (s *Store) GetSlot(ctx context.Context, requestID string, slot int) (*store.Record, error) {
	if err := store.ValidateSlot(requestID, slot); err != nil {
		return nil, err
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            keyOf(slotKey(requestID, slot)),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, s.wrap("GetItem (slot)", err)
	}
	if len(out.Item) == 0 {
		return nil, fmt.Errorf("%w: request %q slot %d", store.ErrNotFound, requestID, slot)
	}
	d := &decoder{item: out.Item}
	pubkey := d.s("pubkey", true)
	if d.err == nil && !store.ValidPubkey(pubkey) {
		d.fail("pubkey", fmt.Sprintf("is not a valid pubkey: %q", pubkey))
	}
	if d.err != nil {
		return nil, d.err
	}
	r, err := s.Get(ctx, pubkey)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// Put writes the claim and the record in one transaction and
			// nothing deletes either: a claim without its record is damage.
			return nil, fmt.Errorf("store: dynamodb table %s: request %q slot %d is claimed by pubkey %s, which has no record", s.table, requestID, slot, pubkey)
		}
		return nil, err
	}
	if r.RequestID != requestID || r.Slot != slot {
		return nil, fmt.Errorf("store: dynamodb table %s: request %q slot %d is claimed by pubkey %s, whose record is request %q slot %d",
			s.table, requestID, slot, pubkey, r.RequestID, r.Slot)
	}
	return r, nil
}

// Query implements store.Store. With f.RequestID set it queries the
// by_request index (slot order), filtering on status if f.Status is set too;
// with only f.Status set it queries by_status ((CreatedAt, Pubkey) order);
// with neither it scans the table for record items, in DynamoDB's
// unspecified scan order.
func (s *Store) Query(ctx context.Context, f store.Filter) iter.Seq2[*store.Record, error] {
	if err := store.ValidateFilter(f); err != nil {
		return store.ErrSeq(err)
	}
	var limit *int32
	if s.opts.pageSize > 0 {
		limit = aws.Int32(s.opts.pageSize)
	}
	// fetch returns one page of items and the key to continue from.
	var fetch func(start map[string]types.AttributeValue) ([]map[string]types.AttributeValue, map[string]types.AttributeValue, error)
	switch {
	case f.RequestID != "" || f.Status != "":
		in := &dynamodb.QueryInput{TableName: aws.String(s.table), Limit: limit}
		if f.RequestID != "" {
			in.IndexName = aws.String(IndexByRequest)
			in.KeyConditionExpression = aws.String("#req = :req")
			in.ExpressionAttributeNames = map[string]string{"#req": AttrRequestID}
			in.ExpressionAttributeValues = map[string]types.AttributeValue{":req": &types.AttributeValueMemberS{Value: f.RequestID}}
			if f.Status != "" {
				in.FilterExpression = aws.String("#st = :st")
				in.ExpressionAttributeNames["#st"] = AttrStatus
				in.ExpressionAttributeValues[":st"] = &types.AttributeValueMemberS{Value: string(f.Status)}
			}
		} else {
			in.IndexName = aws.String(IndexByStatus)
			in.KeyConditionExpression = aws.String("#st = :st")
			in.ExpressionAttributeNames = map[string]string{"#st": AttrStatus}
			in.ExpressionAttributeValues = map[string]types.AttributeValue{":st": &types.AttributeValueMemberS{Value: string(f.Status)}}
		}
		fetch = func(start map[string]types.AttributeValue) ([]map[string]types.AttributeValue, map[string]types.AttributeValue, error) {
			page := *in
			page.ExclusiveStartKey = start
			out, err := s.client.Query(ctx, &page)
			if err != nil {
				return nil, nil, s.wrap("Query "+*in.IndexName, err)
			}
			return out.Items, out.LastEvaluatedKey, nil
		}
	default:
		in := &dynamodb.ScanInput{
			TableName:                 aws.String(s.table),
			Limit:                     limit,
			FilterExpression:          aws.String("begins_with(#pk, :prefix)"),
			ExpressionAttributeNames:  map[string]string{"#pk": AttrPK},
			ExpressionAttributeValues: map[string]types.AttributeValue{":prefix": &types.AttributeValueMemberS{Value: prefixRecord}},
		}
		fetch = func(start map[string]types.AttributeValue) ([]map[string]types.AttributeValue, map[string]types.AttributeValue, error) {
			page := *in
			page.ExclusiveStartKey = start
			out, err := s.client.Scan(ctx, &page)
			if err != nil {
				return nil, nil, s.wrap("Scan", err)
			}
			return out.Items, out.LastEvaluatedKey, nil
		}
	}
	return func(yield func(*store.Record, error) bool) {
		var start map[string]types.AttributeValue
		for {
			items, next, err := fetch(start)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, item := range items {
				r, err := decodeRecord(item)
				if err != nil {
					yield(nil, err)
					return
				}
				if !yield(r, nil) {
					return
				}
			}
			if len(next) == 0 {
				return
			}
			start = next
		}
	}
}

// SetStatus implements store.Store with a conditional UpdateItem.
func (s *Store) SetStatus(ctx context.Context, pubkey string, from, to store.Status) error {
	if err := store.ValidateTransition(pubkey, from, to); err != nil {
		return err
	}
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      keyOf(recordKey(pubkey)),
		UpdateExpression:         aws.String("SET #st = :to"),
		ConditionExpression:      aws.String("attribute_exists(#pk) AND #st = :from"),
		ExpressionAttributeNames: map[string]string{"#pk": AttrPK, "#st": AttrStatus},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":to":   &types.AttributeValueMemberS{Value: string(to)},
			":from": &types.AttributeValueMemberS{Value: string(from)},
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return s.wrap("UpdateItem", err)
	}
	if len(ccf.Item) == 0 {
		return fmt.Errorf("%w: pubkey %s", store.ErrNotFound, pubkey)
	}
	cur := "?"
	if v, ok := ccf.Item[AttrStatus].(*types.AttributeValueMemberS); ok {
		cur = v.Value
	}
	return fmt.Errorf("%w: pubkey %s has status %q, not %q", store.ErrConflict, pubkey, cur, from)
}

// wrap annotates err with the operation and table, and classifies it: see
// the package documentation.
func (s *Store) wrap(op string, err error) error { return wrapErr(op, s.table, err) }

// wrapErr is wrap for table.
func wrapErr(op, table string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("store: dynamodb %s on table %s: %w", op, table, err)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "ValidationException" {
		return fmt.Errorf("store: dynamodb %s on table %s: %w", op, table, err)
	}
	return fmt.Errorf("%w: dynamodb %s on table %s: %w", store.ErrUnavailable, op, table, err)
}

func encodeRecord(r *store.Record) map[string]types.AttributeValue {
	created := store.FormatTime(r.CreatedAt)
	item := map[string]types.AttributeValue{
		AttrPK:            &types.AttributeValueMemberS{Value: recordKey(r.Pubkey)},
		"pubkey":          &types.AttributeValueMemberS{Value: r.Pubkey},
		AttrRequestID:     &types.AttributeValueMemberS{Value: r.RequestID},
		AttrSlot:          &types.AttributeValueMemberN{Value: strconv.Itoa(r.Slot)},
		"sealed":          &types.AttributeValueMemberB{Value: r.Sealed},
		AttrStatus:        &types.AttributeValueMemberS{Value: string(r.Status)},
		"created_at":      &types.AttributeValueMemberS{Value: created},
		AttrCreatedPubkey: &types.AttributeValueMemberS{Value: created + "#" + r.Pubkey},
		"v":               &types.AttributeValueMemberN{Value: itemFormat},
	}
	optS := func(name, v string) {
		if v != "" {
			item[name] = &types.AttributeValueMemberS{Value: v}
		}
	}
	optS("network", r.Network)
	optS("withdrawal_credentials", r.WithdrawalCredentials)
	optS("deposit_data", string(r.DepositData))
	optS("prov_version", r.Provenance.Version)
	optS("prov_build_hash", r.Provenance.BuildHash)
	optS("origin", r.Origin)
	optS("auth_key_id", r.AuthKeyID)
	if len(r.SealedMnemonic) > 0 {
		item["sealed_mnemonic"] = &types.AttributeValueMemberB{Value: r.SealedMnemonic}
	}
	if len(r.Auth) > 0 {
		item["auth"] = &types.AttributeValueMemberB{Value: r.Auth}
	}
	return item
}

// decoder reads attributes of one item and remembers the first problem.
type decoder struct {
	item map[string]types.AttributeValue
	err  error
}

func (d *decoder) fail(name, what string) {
	if d.err == nil {
		pk := "?"
		if v, ok := d.item[AttrPK].(*types.AttributeValueMemberS); ok {
			pk = v.Value
		}
		d.err = fmt.Errorf("store: dynamodb item %s: attribute %s %s", pk, name, what)
	}
}

func (d *decoder) s(name string, required bool) string {
	switch v := d.item[name].(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case nil:
		if required {
			d.fail(name, "missing")
		}
	default:
		d.fail(name, "is not a string")
	}
	return ""
}

func (d *decoder) n(name string) int {
	v, ok := d.item[name].(*types.AttributeValueMemberN)
	if !ok {
		d.fail(name, "missing or not a number")
		return 0
	}
	i, err := strconv.Atoi(v.Value)
	if err != nil {
		d.fail(name, "is not an integer")
	}
	return i
}

func (d *decoder) n64(name string) int64 {
	v, ok := d.item[name].(*types.AttributeValueMemberN)
	if !ok {
		d.fail(name, "missing or not a number")
		return 0
	}
	i, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		d.fail(name, "is not an integer")
	}
	return i
}

func (d *decoder) bool(name string) bool {
	v, ok := d.item[name].(*types.AttributeValueMemberBOOL)
	if !ok {
		d.fail(name, "missing or not a boolean")
		return false
	}
	return v.Value
}

func (d *decoder) b(name string, required bool) []byte {
	switch v := d.item[name].(type) {
	case *types.AttributeValueMemberB:
		if len(v.Value) == 0 {
			break
		}
		return v.Value
	case nil:
	default:
		d.fail(name, "is not binary")
		return nil
	}
	if required {
		d.fail(name, "missing")
	}
	return nil
}

func (d *decoder) time(name string) time.Time {
	s := d.s(name, true)
	if d.err != nil {
		return time.Time{}
	}
	t, err := store.ParseTime(s)
	if err != nil {
		d.fail(name, fmt.Sprintf("is not a time: %q", s))
	}
	return t
}

func decodeRecord(item map[string]types.AttributeValue) (*store.Record, error) {
	d := &decoder{item: item}
	if v, ok := item["v"].(*types.AttributeValueMemberN); !ok || v.Value != itemFormat {
		d.fail("v", "is not item format "+itemFormat)
	}
	r := &store.Record{
		Pubkey:                d.s("pubkey", true),
		RequestID:             d.s(AttrRequestID, true),
		Slot:                  d.n(AttrSlot),
		Network:               d.s("network", false),
		WithdrawalCredentials: d.s("withdrawal_credentials", false),
		Sealed:                d.b("sealed", true),
		SealedMnemonic:        d.b("sealed_mnemonic", false),
		Status:                store.Status(d.s(AttrStatus, true)),
		CreatedAt:             d.time("created_at"),
		Provenance: store.Provenance{
			Version:   d.s("prov_version", false),
			BuildHash: d.s("prov_build_hash", false),
		},
		Origin:    d.s("origin", false),
		Auth:      d.b("auth", false),
		AuthKeyID: d.s("auth_key_id", false),
	}
	if dd := d.s("deposit_data", false); dd != "" {
		r.DepositData = []byte(dd)
	}
	if d.err == nil && d.s(AttrPK, true) != recordKey(r.Pubkey) {
		d.fail(AttrPK, "does not match pubkey "+r.Pubkey)
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

func decodeRequest(item map[string]types.AttributeValue) (store.Request, error) {
	d := &decoder{item: item}
	r := store.Request{
		ID:          d.s("id", true),
		Fingerprint: d.s("fingerprint", true),
		Count:       d.n("count"),
		CreatedAt:   d.time("created_at"),
	}
	if d.err == nil && !strings.HasPrefix(d.s(AttrPK, true), prefixRequest) {
		d.fail(AttrPK, "is not a request key")
	}
	if d.err != nil {
		return store.Request{}, d.err
	}
	return r, nil
}
