// Package dynamostore is the DynamoDB [store.Store]: one table, single-table
// design, every write conditional.
//
// # Table
//
// The table has a string partition key "pk" and no sort key. Three kinds of
// item share it:
//
//	pk = "V#<pubkey>"           the record: every Record field (see below)
//	pk = "S#<request>#<slot>"   the slot claim: attribute pubkey, the record holding the slot
//	pk = "R#<request>"          the request: id, fingerprint, count, created_at
//
// Record items carry the attributes pubkey, request_id, slot (N), network,
// withdrawal_credentials, deposit_data (S, the JSON byte for byte), sealed
// (B), sealed_mnemonic (B), status, created_at (S, [store.TimeFormat]),
// created_pubkey (S, "<created_at>#<pubkey>"), prov_version, prov_build_hash,
// origin (S), auth (B), auth_key_id (S) and v (N, the item format, 1). Empty
// optional attributes are omitted; items written before origin, auth and
// auth_key_id existed read back with them empty (the item format is
// unchanged: the attributes are optional).
//
// Two global secondary indexes, both projecting ALL attributes, and both
// sparse (only record items carry their keys):
//
//	by_request   partition request_id (S), sort slot (N)             Query by request, in slot order
//	by_status    partition status (S),     sort created_pubkey (S)   Query by status, in (CreatedAt, Pubkey) order
//
// [CreateTable] creates exactly this table (billing PAY_PER_REQUEST) and
// [CreateTableInput] returns its definition; the deployment template in
// examples/ declares the same keys and indexes, and must be kept in step.
//
// # Writes
//
// Put is one TransactWriteItems: for each record a Put of its V# item and a
// Put of its S# claim, each with ConditionExpression attribute_not_exists(pk).
// DynamoDB allows 100 items per transaction, so Put takes at most
// [MaxBatch] (50) records; a larger batch fails with store.ErrInvalid, and
// the caller splits it, knowing each part is atomic on its own. A cancelled
// transaction whose reasons include ConditionalCheckFailed yields
// store.ErrExists naming the pubkey or the slot (and the pubkey holding it).
// Transactions cancelled only by TransactionConflict (another transaction
// on the same items) or throttling are retried with backoff, then yield
// store.ErrUnavailable. The SDK fills in ClientRequestToken, so its own
// retries of one call are idempotent.
//
// SetStatus is an UpdateItem with ConditionExpression
// "attribute_exists(pk) AND status = :from" and
// ReturnValuesOnConditionCheckFailure ALL_OLD: a failed condition with no
// old item is store.ErrNotFound, with one store.ErrConflict. CreateRequest is
// a conditional PutItem returning the existing item on failure.
//
// # Reads
//
// Get is a strongly consistent GetItem. GetSlot is a strongly consistent
// GetItem of the S# claim, then Get of the pubkey it names: a missing claim is
// store.ErrNotFound; a claim whose record is missing or names another
// (request, slot) is reported as damage, without a sentinel. Query reads the by_request or
// by_status index (eventually consistent), or scans the table for V# items
// when the filter is empty (unspecified order); it follows
// LastEvaluatedKey, with [WithPageSize] setting Limit.
//
// # Errors
//
// Conditional failures map to the store sentinels as above. Context
// cancellation is returned wrapped as is. A ValidationException (a request
// DynamoDB refuses as malformed) is returned wrapped without a sentinel.
// Every other failure, after the SDK's retries (throttling, network errors,
// a missing table, denied access), wraps store.ErrUnavailable and the cause.
//
// # Security
//
// The table holds sealed secrets only. The IAM policy of a writer needs
// dynamodb:PutItem, UpdateItem, GetItem, Query, Scan and TransactWriteItems on
// the table and its indexes; a reader needs GetItem, Query and Scan; nobody
// needs DeleteItem.
package dynamostore
