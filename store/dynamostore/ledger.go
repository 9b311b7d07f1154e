package dynamostore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ethkeygen/ethkeygen/store"
)

// Ledger item keys, kinds and limits. See the package documentation.
const (
	ledgerKeyPrefix    = "key#"
	ledgerExportPrefix = "export#"
	ledgerPinPrefix    = "pin#"

	// AttrKind names the kind of a ledger item: key, export, candidates,
	// members or pin. Scans filter on it.
	AttrKind = "kind"

	kindKey        = "key"
	kindExport     = "export"
	kindCandidates = "candidates"
	kindMembers    = "members"
	kindPin        = "pin"

	// ChunkPubkeys is how many pubkeys one candidate or member chunk item
	// holds, packed as 48 bytes each (192,000 bytes, under the 400 KB item
	// limit).
	ChunkPubkeys = 4000
	// MaxExportChunks is the largest number of chunks of one list.
	MaxExportChunks = 99
	// MaxExportPubkeys is the largest number of candidates of one export.
	MaxExportPubkeys = ChunkPubkeys * MaxExportChunks

	// ClaimBatch is how many keys one ClaimForExport transaction claims:
	// one Put per key and the Update of the export header make 100 items.
	ClaimBatch = 99

	pubkeyBytes = store.PubkeyLen / 2

	// claimAttempts bounds how often one claim transaction is retried after
	// TransactionConflict or throttling (claims on one export all update its
	// header, so they conflict with each other).
	claimAttempts = 30
)

// Ledger is the DynamoDB implementation of store.Ledger, on a table of its
// own (see LedgerCreateTableInput).
type Ledger struct {
	client API
	table  string
	opts   options
}

var _ store.Ledger = (*Ledger)(nil)

// LedgerSuffix is appended to the records table's name to name the ledger
// table by default.
const LedgerSuffix = "-ledger"

// LedgerTableName returns the default ledger table of the records table
// records: records + LedgerSuffix.
func LedgerTableName(records string) string { return records + LedgerSuffix }

// NewLedger returns a Ledger using table through client. It does no I/O;
// the table must exist (see CreateLedgerTable). The table must not be the
// records table.
func NewLedger(client API, table string, opts ...Option) (*Ledger, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil DynamoDB client", store.ErrInvalid)
	}
	if table == "" {
		return nil, fmt.Errorf("%w: empty table name", store.ErrInvalid)
	}
	l := &Ledger{client: client, table: table}
	for _, o := range opts {
		if err := o.apply(&l.opts); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Close does nothing: the client belongs to the caller.
func (l *Ledger) Close() error { return nil }

func (l *Ledger) wrap(op string, err error) error { return wrapErr(op, l.table, err) }

func keyItemKey(pubkey string) string { return ledgerKeyPrefix + pubkey }

func exportKey(id string) string { return ledgerExportPrefix + id }

// chunkKey names chunk n of a list of export id: tag is "c" (candidates) or
// "m" (members), digest the SHA-256 of the whole list. The digest makes the
// key depend on the content, so that two writers of different lists (a
// CreateExport race, a SealExport race, a retry after a crash) never write
// the same chunk item; the header, written last, names the digest of the
// list that won.
func chunkKey(id, tag, digest string, n int) string {
	return ledgerExportPrefix + id + "#" + tag + "#" + digest + "#" + strconv.Itoa(n)
}

func pinKey(name string) string { return ledgerPinPrefix + name }

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func n(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// packList returns pubkeys packed 48 bytes each, and the hex SHA-256 of the
// packing. The pubkeys are valid (lowercase hex).
func packList(pubkeys []string) ([]byte, string) {
	buf := make([]byte, 0, len(pubkeys)*pubkeyBytes)
	for _, pk := range pubkeys {
		buf, _ = hex.AppendDecode(buf, []byte(pk))
	}
	sum := sha256.Sum256(buf)
	return buf, hex.EncodeToString(sum[:])
}

func numChunks(count int) int { return (count + ChunkPubkeys - 1) / ChunkPubkeys }

// writeChunks writes the chunk items of a packed list. The items depend only
// on (id, tag, content), so writing one again writes the same bytes.
func (l *Ledger) writeChunks(ctx context.Context, id, tag, kind string, packed []byte, digest string) error {
	count := len(packed) / pubkeyBytes
	for c := 0; c < numChunks(count); c++ {
		part := packed[c*ChunkPubkeys*pubkeyBytes : min(len(packed), (c+1)*ChunkPubkeys*pubkeyBytes)]
		_, err := l.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(l.table),
			Item: map[string]types.AttributeValue{
				AttrPK:      s(chunkKey(id, tag, digest, c)),
				AttrKind:    s(kind),
				"export_id": s(id),
				"n":         n(int64(c)),
				"pubkeys":   &types.AttributeValueMemberB{Value: part},
				"v":         n(1),
			},
		})
		if err != nil {
			return l.wrap("PutItem ("+kind+" chunk)", err)
		}
	}
	return nil
}

// readChunks reads and checks a list written by writeChunks.
func (l *Ledger) readChunks(ctx context.Context, id, tag, kind, digest string, count int) ([]string, error) {
	if count == 0 {
		if _, d := packList(nil); d != digest {
			return nil, fmt.Errorf("store: dynamodb table %s: export %s: empty %s list with digest %s", l.table, id, kind, digest)
		}
		return nil, nil
	}
	packed := make([]byte, 0, count*pubkeyBytes)
	for c := 0; c < numChunks(count); c++ {
		pk := chunkKey(id, tag, digest, c)
		out, err := l.client.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(l.table), Key: keyOf(pk), ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			return nil, l.wrap("GetItem ("+kind+" chunk)", err)
		}
		if len(out.Item) == 0 {
			return nil, fmt.Errorf("store: dynamodb table %s: export %s: %s chunk %d is missing", l.table, id, kind, c)
		}
		d := &decoder{item: out.Item}
		if k := d.s(AttrKind, true); d.err == nil && k != kind {
			d.fail(AttrKind, "is "+k+", not "+kind)
		}
		part := d.b("pubkeys", true)
		if d.err != nil {
			return nil, d.err
		}
		packed = append(packed, part...)
	}
	sum := sha256.Sum256(packed)
	if len(packed) != count*pubkeyBytes || hex.EncodeToString(sum[:]) != digest {
		return nil, fmt.Errorf("store: dynamodb table %s: export %s: %s chunks do not match the header (%d bytes, want %d; digest mismatch %v)",
			l.table, id, kind, len(packed), count*pubkeyBytes, hex.EncodeToString(sum[:]) != digest)
	}
	out := make([]string, count)
	for i := range out {
		out[i] = hex.EncodeToString(packed[i*pubkeyBytes : (i+1)*pubkeyBytes])
	}
	return out, nil
}

// header is an export header item, decoded.
type header struct {
	e                store.Export
	candidates       int
	candidatesDigest string
	members          int
	membersDigest    string
	candidateChunks  int
	memberChunks     int
}

func decodeHeader(item map[string]types.AttributeValue) (*header, error) {
	d := &decoder{item: item}
	if v, ok := item["v"].(*types.AttributeValueMemberN); !ok || v.Value != itemFormat {
		d.fail("v", "is not item format "+itemFormat)
	}
	if k := d.s(AttrKind, true); d.err == nil && k != kindExport {
		d.fail(AttrKind, "is "+k+", not "+kindExport)
	}
	h := &header{}
	h.e.ID = d.s("id", true)
	h.e.CreatedAt = d.time("created_at")
	h.e.Network = d.s("network", true)
	if _, ok := item["top_up_gwei"]; ok {
		// A top-up export; absent on every other (and on exports written
		// before top-ups existed): 0.
		if v := d.n64("top_up_gwei"); d.err == nil && v <= 0 {
			d.fail("top_up_gwei", "is not positive")
		} else {
			h.e.TopUpGwei = uint64(v)
		}
	}
	h.e.WithdrawalCredentials = d.s("withdrawal_credentials", h.e.TopUpGwei == 0)
	h.e.Claims = d.n("claims")
	h.e.Sealed = d.bool("sealed")
	h.e.By = d.s("by", false)
	h.candidates = d.n("candidate_count")
	h.candidateChunks = d.n("candidate_chunks")
	h.candidatesDigest = d.s("candidates_sha256", true)
	if h.e.Sealed {
		h.members = d.n("member_count")
		h.memberChunks = d.n("member_chunks")
		h.membersDigest = d.s("members_sha256", true)
	}
	if d.err == nil && d.s(AttrPK, true) != exportKey(h.e.ID) {
		d.fail(AttrPK, "does not match export id "+h.e.ID)
	}
	if d.err == nil && (h.candidateChunks != numChunks(h.candidates) || h.memberChunks != numChunks(h.members)) {
		d.fail("candidate_chunks", "or member_chunks does not match the counts")
	}
	if d.err != nil {
		return nil, d.err
	}
	return h, nil
}

// getHeader reads the header of export id with a strongly consistent
// GetItem; nil if there is none.
func (l *Ledger) getHeader(ctx context.Context, id string) (*header, error) {
	out, err := l.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.table), Key: keyOf(exportKey(id)), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, l.wrap("GetItem (export)", err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return decodeHeader(out.Item)
}

// complete reads the lists a header names.
func (l *Ledger) complete(ctx context.Context, h *header) (*store.Export, error) {
	e := h.e
	var err error
	if e.Candidates, err = l.readChunks(ctx, e.ID, "c", kindCandidates, h.candidatesDigest, h.candidates); err != nil {
		return nil, err
	}
	if e.Sealed {
		if e.Members, err = l.readChunks(ctx, e.ID, "m", kindMembers, h.membersDigest, h.members); err != nil {
			return nil, err
		}
	}
	return &e, nil
}

// CreateExport implements store.Ledger. The candidate chunks are written
// first, each with a PutItem (their keys carry the digest of the list, so
// no other export's or other attempt's chunks are touched), then the header
// with a PutItem conditioned on attribute_not_exists(pk): the header is the
// commit point, and an export without its header does not exist. (One
// TransactWriteItems cannot hold them: a transaction is limited to 4 MB,
// and 100,000 candidates are 4.8 MB.) More than MaxExportPubkeys candidates
// fail with ErrInvalid.
func (l *Ledger) CreateExport(ctx context.Context, e *store.Export) (*store.Export, error) {
	if err := store.ValidateNewExport(e); err != nil {
		return nil, err
	}
	if len(e.Candidates) > MaxExportPubkeys {
		return nil, fmt.Errorf("%w: export %s: %d candidates; a DynamoDB export holds at most %d (%d chunks of %d)",
			store.ErrInvalid, e.ID, len(e.Candidates), MaxExportPubkeys, MaxExportChunks, ChunkPubkeys)
	}
	existing := func(item map[string]types.AttributeValue) (*store.Export, error) {
		h, err := decodeHeader(item)
		if err != nil {
			return nil, err
		}
		got, err := l.complete(ctx, h)
		if err != nil {
			return nil, err
		}
		return got, fmt.Errorf("%w: export %s", store.ErrExists, e.ID)
	}
	// An export that exists already is reported without writing chunks.
	out, err := l.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.table), Key: keyOf(exportKey(e.ID)), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, l.wrap("GetItem (export)", err)
	}
	if len(out.Item) > 0 {
		return existing(out.Item)
	}
	packed, digest := packList(e.Candidates)
	if err := l.writeChunks(ctx, e.ID, "c", kindCandidates, packed, digest); err != nil {
		return nil, err
	}
	created := e.CreatedAt.UTC().Truncate(time.Millisecond)
	item := map[string]types.AttributeValue{
		AttrPK:              s(exportKey(e.ID)),
		AttrKind:            s(kindExport),
		"id":                s(e.ID),
		"created_at":        s(store.FormatTime(created)),
		"network":           s(e.Network),
		"claims":            n(0),
		"sealed":            &types.AttributeValueMemberBOOL{Value: false},
		"candidate_count":   n(int64(len(e.Candidates))),
		"candidate_chunks":  n(int64(numChunks(len(e.Candidates)))),
		"candidates_sha256": s(digest),
		"member_count":      n(0),
		"member_chunks":     n(0),
		"v":                 n(1),
	}
	if e.By != "" {
		item["by"] = s(e.By)
	}
	if e.WithdrawalCredentials != "" { // empty only on a top-up export
		item["withdrawal_credentials"] = s(e.WithdrawalCredentials)
	}
	if e.TopUp() {
		item["top_up_gwei"] = n(int64(e.TopUpGwei))
	}
	_, err = l.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           aws.String(l.table),
		Item:                                item,
		ConditionExpression:                 aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames:            map[string]string{"#pk": AttrPK},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return nil, l.wrap("PutItem (export)", err)
		}
		if len(ccf.Item) == 0 {
			h, err := l.getHeader(ctx, e.ID)
			if err != nil {
				return nil, err
			}
			if h == nil {
				return nil, fmt.Errorf("store: dynamodb table %s: export %s: header condition failed but no header is stored", l.table, e.ID)
			}
			got, err := l.complete(ctx, h)
			if err != nil {
				return nil, err
			}
			return got, fmt.Errorf("%w: export %s", store.ErrExists, e.ID)
		}
		return existing(ccf.Item)
	}
	got := *e
	got.CreatedAt = created
	got.Candidates = slices.Clone(e.Candidates)
	if len(got.Candidates) == 0 {
		got.Candidates = nil
	}
	got.Claims, got.Sealed, got.Members = 0, false, nil
	return &got, nil
}

// GetExport implements store.Ledger with strongly consistent GetItems of
// the header and its chunks.
func (l *Ledger) GetExport(ctx context.Context, id string) (*store.Export, error) {
	if err := store.ValidateExportID(id); err != nil {
		return nil, err
	}
	h, err := l.getHeader(ctx, id)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("%w: export %s", store.ErrNotFound, id)
	}
	return l.complete(ctx, h)
}

// scan yields the items of kind, page by page, with strongly consistent
// reads.
func (l *Ledger) scan(ctx context.Context, kind string) iter.Seq2[map[string]types.AttributeValue, error] {
	return func(yield func(map[string]types.AttributeValue, error) bool) {
		in := &dynamodb.ScanInput{
			TableName:                 aws.String(l.table),
			ConsistentRead:            aws.Bool(true),
			FilterExpression:          aws.String("#kind = :kind"),
			ExpressionAttributeNames:  map[string]string{"#kind": AttrKind},
			ExpressionAttributeValues: map[string]types.AttributeValue{":kind": s(kind)},
		}
		if l.opts.pageSize > 0 {
			in.Limit = aws.Int32(l.opts.pageSize)
		}
		for {
			out, err := l.client.Scan(ctx, in)
			if err != nil {
				yield(nil, l.wrap("Scan", err))
				return
			}
			for _, item := range out.Items {
				if !yield(item, nil) {
					return
				}
			}
			if len(out.LastEvaluatedKey) == 0 {
				return
			}
			next := *in
			next.ExclusiveStartKey = out.LastEvaluatedKey
			in = &next
		}
	}
}

// Exports implements store.Ledger: a scan for the headers (chunk items are
// filtered out), sorted by (CreatedAt, ID), then each export's chunks.
func (l *Ledger) Exports(ctx context.Context) iter.Seq2[*store.Export, error] {
	return func(yield func(*store.Export, error) bool) {
		var hs []*header
		for item, err := range l.scan(ctx, kindExport) {
			if err == nil {
				var h *header
				if h, err = decodeHeader(item); err == nil {
					hs = append(hs, h)
					continue
				}
			}
			yield(nil, err)
			return
		}
		slices.SortFunc(hs, func(a, b *header) int {
			if c := a.e.CreatedAt.Compare(b.e.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(a.e.ID, b.e.ID)
		})
		for _, h := range hs {
			e, err := l.complete(ctx, h)
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// ClaimForExport implements store.Ledger. Each batch of up to ClaimBatch keys
// is one TransactWriteItems: a Put of key#<pubkey> per key, conditioned on
// attribute_not_exists(pk), and an Update of the export header, ADD claims
// :n, conditioned on the header existing, not being sealed and not being a
// top-up export (ErrInvalid). When the
// transaction is cancelled, the keys whose condition failed (claimed
// already) are dropped and the rest retried; a failed header condition is
// ErrConflict (sealed) or ErrNotFound. After an error, the keys claimed by
// earlier batches of the call are returned with it.
func (l *Ledger) ClaimForExport(ctx context.Context, exportID string, pubkeys []string, at time.Time, by string) ([]string, error) {
	if err := store.ValidateClaim(exportID, pubkeys, at); err != nil {
		return nil, err
	}
	updated := store.FormatTime(at)
	var claimed []string
	for start := 0; start < len(pubkeys); start += ClaimBatch {
		batch := slices.Clone(pubkeys[start:min(start+ClaimBatch, len(pubkeys))])
		got, err := l.claimBatch(ctx, exportID, batch, updated, by)
		claimed = append(claimed, got...)
		if err != nil {
			return claimed, err
		}
	}
	if len(claimed) == 0 {
		// No transaction committed, so none checked the header: check it,
		// so that a missing or sealed export is reported as such.
		h, err := l.getHeader(ctx, exportID)
		switch {
		case err != nil:
			return nil, err
		case h == nil:
			return nil, fmt.Errorf("%w: export %s", store.ErrNotFound, exportID)
		case h.e.TopUp():
			return nil, errTopUpClaim(exportID)
		case h.e.Sealed:
			return nil, fmt.Errorf("%w: export %s is sealed", store.ErrConflict, exportID)
		}
	}
	return claimed, nil
}

func errTopUpClaim(id string) error {
	return fmt.Errorf("%w: export %s is a top-up export: it claims no keys", store.ErrInvalid, id)
}

func (l *Ledger) claimBatch(ctx context.Context, exportID string, batch []string, updated, by string) ([]string, error) {
	for attempt := 1; len(batch) > 0; {
		items := make([]types.TransactWriteItem, 0, len(batch)+1)
		for _, pk := range batch {
			item := map[string]types.AttributeValue{
				AttrPK:       s(keyItemKey(pk)),
				AttrKind:     s(kindKey),
				"pubkey":     s(pk),
				"export_id":  s(exportID),
				"state":      s(string(store.StatusExported)),
				"version":    n(1),
				"updated_at": s(updated),
				"v":          n(1),
			}
			if by != "" {
				item["by"] = s(by)
			}
			items = append(items, types.TransactWriteItem{Put: &types.Put{
				TableName:                aws.String(l.table),
				Item:                     item,
				ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
				ExpressionAttributeNames: map[string]string{"#pk": AttrPK},
			}})
		}
		items = append(items, types.TransactWriteItem{Update: &types.Update{
			TableName:                aws.String(l.table),
			Key:                      keyOf(exportKey(exportID)),
			UpdateExpression:         aws.String("ADD #claims :n"),
			ConditionExpression:      aws.String("attribute_exists(#pk) AND #sealed = :false AND attribute_not_exists(#topup)"),
			ExpressionAttributeNames: map[string]string{"#pk": AttrPK, "#claims": "claims", "#sealed": "sealed", "#topup": "top_up_gwei"},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":n":     n(int64(len(batch))),
				":false": &types.AttributeValueMemberBOOL{Value: false},
			},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}})
		_, err := l.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			return batch, nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return nil, l.wrap("TransactWriteItems (claim)", err)
		}
		reasons := tce.CancellationReasons
		if len(reasons) != len(items) {
			return nil, fmt.Errorf("%w: dynamodb TransactWriteItems (claim) on table %s: %d cancellation reasons for %d items: %w",
				store.ErrUnavailable, l.table, len(reasons), len(items), err)
		}
		if h := reasons[len(batch)]; aws.ToString(h.Code) == "ConditionalCheckFailed" {
			if len(h.Item) == 0 {
				return nil, fmt.Errorf("%w: export %s", store.ErrNotFound, exportID)
			}
			if _, ok := h.Item["top_up_gwei"]; ok {
				return nil, errTopUpClaim(exportID)
			}
			return nil, fmt.Errorf("%w: export %s is sealed", store.ErrConflict, exportID)
		}
		var rest []string
		retry := false
		for i, pk := range batch {
			switch aws.ToString(reasons[i].Code) {
			case "ConditionalCheckFailed":
				continue // claimed already: skipped
			case "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded":
				retry = true
			}
			rest = append(rest, pk)
		}
		switch aws.ToString(reasons[len(batch)].Code) {
		case "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded":
			retry = true
		}
		if len(rest) < len(batch) {
			batch = rest // drop the claimed keys and try the rest at once
			continue
		}
		if !retry {
			return nil, l.wrap("TransactWriteItems (claim)", err)
		}
		if attempt == claimAttempts {
			return nil, fmt.Errorf("%w: dynamodb TransactWriteItems (claim) on table %s: still conflicting after %d attempts: %w",
				store.ErrUnavailable, l.table, attempt, err)
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return nil, fmt.Errorf("store: dynamodb TransactWriteItems (claim): %w", err)
		}
		attempt++
	}
	return nil, nil
}

// SealExport implements store.Ledger: it reads the export (to check the
// members against the candidates), writes the member chunks, then updates
// the header with SET sealed = true and the members' count and digest,
// conditioned on (sealed = false AND claims = :claims). The header update is
// the commit point: a failed seal leaves the header as it was.
func (l *Ledger) SealExport(ctx context.Context, id string, members []string, claims int) error {
	if err := store.ValidateExportID(id); err != nil {
		return err
	}
	if err := store.ValidatePubkeys("export "+id+" members", members); err != nil {
		return err
	}
	e, err := l.GetExport(ctx, id)
	if err != nil {
		return err
	}
	if e.Sealed || e.Claims != claims {
		return fmt.Errorf("%w: export %s: sealed %v with %d claims, want unsealed with %d", store.ErrConflict, id, e.Sealed, e.Claims, claims)
	}
	if err := store.ValidateMembers(id, e.Candidates, members); err != nil {
		return err
	}
	packed, digest := packList(members)
	if err := l.writeChunks(ctx, id, "m", kindMembers, packed, digest); err != nil {
		return err
	}
	_, err = l.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(l.table),
		Key:              keyOf(exportKey(id)),
		UpdateExpression: aws.String("SET #sealed = :true, member_count = :count, member_chunks = :chunks, members_sha256 = :digest"),
		ConditionExpression: aws.String(
			"attribute_exists(#pk) AND #sealed = :false AND #claims = :claims"),
		ExpressionAttributeNames: map[string]string{"#pk": AttrPK, "#sealed": "sealed", "#claims": "claims"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":true":   &types.AttributeValueMemberBOOL{Value: true},
			":false":  &types.AttributeValueMemberBOOL{Value: false},
			":claims": n(int64(claims)),
			":count":  n(int64(len(members))),
			":chunks": n(int64(numChunks(len(members)))),
			":digest": s(digest),
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return l.wrap("UpdateItem (seal)", err)
	}
	if len(ccf.Item) == 0 {
		h, herr := l.getHeader(ctx, id)
		if herr != nil {
			return herr
		}
		if h == nil {
			return fmt.Errorf("%w: export %s", store.ErrNotFound, id)
		}
	}
	return fmt.Errorf("%w: export %s changed while sealing (claims or seal)", store.ErrConflict, id)
}

// GetKey implements store.Ledger with a strongly consistent GetItem.
func (l *Ledger) GetKey(ctx context.Context, pubkey string) (*store.KeyState, error) {
	if !store.ValidPubkey(pubkey) {
		return nil, fmt.Errorf("%w: pubkey %q is not %d lowercase hex characters", store.ErrInvalid, pubkey, store.PubkeyLen)
	}
	out, err := l.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.table), Key: keyOf(keyItemKey(pubkey)), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, l.wrap("GetItem (key)", err)
	}
	if len(out.Item) == 0 {
		return nil, fmt.Errorf("%w: key %s", store.ErrNotFound, pubkey)
	}
	return decodeKey(out.Item)
}

func encodeKey(ks *store.KeyState) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		AttrPK:       s(keyItemKey(ks.Pubkey)),
		AttrKind:     s(kindKey),
		"pubkey":     s(ks.Pubkey),
		"state":      s(string(ks.State)),
		"version":    n(ks.Version),
		"updated_at": s(store.FormatTime(ks.UpdatedAt)),
		"v":          n(1),
	}
	for name, v := range map[string]string{"export_id": ks.ExportID, "signer": ks.Signer, "assigned_to": ks.AssignedTo, "by": ks.By, "note": ks.Note} {
		if v != "" {
			item[name] = s(v)
		}
	}
	if len(ks.Interchange) > 0 {
		item["interchange"] = &types.AttributeValueMemberB{Value: ks.Interchange}
	}
	return item
}

func decodeKey(item map[string]types.AttributeValue) (*store.KeyState, error) {
	d := &decoder{item: item}
	if v, ok := item["v"].(*types.AttributeValueMemberN); !ok || v.Value != itemFormat {
		d.fail("v", "is not item format "+itemFormat)
	}
	ks := &store.KeyState{
		Pubkey:      d.s("pubkey", true),
		ExportID:    d.s("export_id", false),
		State:       store.Status(d.s("state", true)),
		Signer:      d.s("signer", false),
		AssignedTo:  d.s("assigned_to", false),
		Version:     d.n64("version"),
		UpdatedAt:   d.time("updated_at"),
		By:          d.s("by", false),
		Note:        d.s("note", false),
		Interchange: d.b("interchange", false),
	}
	if d.err == nil && d.s(AttrPK, true) != keyItemKey(ks.Pubkey) {
		d.fail(AttrPK, "does not match pubkey "+ks.Pubkey)
	}
	if d.err == nil {
		if err := ks.Validate(); err != nil {
			// Damage, not the caller's invalid argument: no sentinel.
			d.fail("(item)", fmt.Sprintf("is not a valid key state: %v", strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": ")))
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return ks, nil
}

// PutKey implements store.Ledger with a conditional PutItem: version 1 on
// attribute_not_exists(pk), a later version on (version = ks.Version-1 AND
// export_id as stored).
func (l *Ledger) PutKey(ctx context.Context, ks *store.KeyState) error {
	if err := ks.Validate(); err != nil {
		return err
	}
	in := &dynamodb.PutItemInput{
		TableName:                           aws.String(l.table),
		Item:                                encodeKey(ks),
		ExpressionAttributeNames:            map[string]string{"#pk": AttrPK},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	if ks.Version == 1 {
		in.ConditionExpression = aws.String("attribute_not_exists(#pk)")
	} else {
		in.ExpressionAttributeNames["#version"] = "version"
		in.ExpressionAttributeNames["#eid"] = "export_id"
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":prev": n(ks.Version - 1)}
		if ks.ExportID == "" {
			in.ConditionExpression = aws.String("attribute_exists(#pk) AND #version = :prev AND attribute_not_exists(#eid)")
		} else {
			in.ConditionExpression = aws.String("attribute_exists(#pk) AND #version = :prev AND #eid = :eid")
			in.ExpressionAttributeValues[":eid"] = s(ks.ExportID)
		}
	}
	_, err := l.client.PutItem(ctx, in)
	if err == nil {
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return l.wrap("PutItem (key)", err)
	}
	cur := "absent (version 0)"
	if len(ccf.Item) > 0 {
		if old, derr := decodeKey(ccf.Item); derr == nil {
			cur = fmt.Sprintf("version %d, export id %q", old.Version, old.ExportID)
		}
	}
	return fmt.Errorf("%w: key %s: stored %s, want version %d, export id %q", store.ErrConflict, ks.Pubkey, cur, ks.Version-1, ks.ExportID)
}

// Keys implements store.Ledger with a strongly consistent scan for key
// items, in DynamoDB's unspecified order.
func (l *Ledger) Keys(ctx context.Context) iter.Seq2[*store.KeyState, error] {
	return func(yield func(*store.KeyState, error) bool) {
		for item, err := range l.scan(ctx, kindKey) {
			var ks *store.KeyState
			if err == nil {
				ks, err = decodeKey(item)
			}
			if !yield(ks, err) || err != nil {
				return
			}
		}
	}
}

// Pin implements store.Ledger with a PutItem conditioned on
// attribute_not_exists(pk); on a failed condition it returns the stored
// value.
func (l *Ledger) Pin(ctx context.Context, name, value string) (string, error) {
	if err := store.ValidatePin(name, value); err != nil {
		return "", err
	}
	_, err := l.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(l.table),
		Item: map[string]types.AttributeValue{
			AttrPK:   s(pinKey(name)),
			AttrKind: s(kindPin),
			"name":   s(name),
			"value":  s(value),
			"v":      n(1),
		},
		ConditionExpression:                 aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames:            map[string]string{"#pk": AttrPK},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return value, nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return "", l.wrap("PutItem (pin)", err)
	}
	item := ccf.Item
	if len(item) == 0 {
		out, err := l.client.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(l.table), Key: keyOf(pinKey(name)), ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			return "", l.wrap("GetItem (pin)", err)
		}
		item = out.Item
	}
	d := &decoder{item: item}
	got := d.s("value", true)
	if d.err == nil && d.s("name", true) != name {
		d.fail("name", "does not match pin "+name)
	}
	if d.err != nil {
		return "", d.err
	}
	return got, nil
}
