// Package dynamostore is the DynamoDB [store.Store] (one table, single-table
// design, every write conditional) and [store.Ledger] (a second table of its
// own, see "Ledger table" below).
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
// # Ledger table
//
// [NewLedger] uses a table apart from the records (by convention
// "<records table>-ledger"), created by [CreateLedgerTable] as defined by
// [LedgerCreateTableInput]: partition key pk (S), no sort key, no index,
// PAY_PER_REQUEST (point-in-time recovery is the deployment template's
// business). Its items, each with a kind attribute that scans filter on:
//
//	pk = "key#<pubkey>"                       kind key: pubkey, export_id, state, signer, assigned_to, version (N), updated_at, by, note, interchange (B)
//	pk = "export#<id>"                        kind export, the header: id, created_at, network, withdrawal_credentials,
//	                                          claims (N), sealed (BOOL), by, candidate_count, candidate_chunks,
//	                                          candidates_sha256, member_count, member_chunks, members_sha256;
//	                                          a top-up export adds top_up_gwei (N; absent: 0, the members'
//	                                          generated deposits) and may lack withdrawal_credentials
//	pk = "export#<id>#c#<sha256>#<n>"         kind candidates: chunk n of the candidates
//	pk = "export#<id>#m#<sha256>#<n>"         kind members: chunk n of the members
//	pk = "pin#<name>"                         kind pin: name, value
//
// Every item has v (N, 1). A chunk holds up to [ChunkPubkeys] (4000) pubkeys
// packed as binary, 48 bytes each (192,000 bytes, under the 400 KB item
// limit), so an export of 100,000 validators takes 25 chunks; at most
// [MaxExportChunks] (99) chunks are allowed, and a larger export fails with
// store.ErrInvalid. <sha256> is the SHA-256 of the whole packed list, which
// the header records and every read checks: chunk keys depend on the
// content, so racing or retried writers of different lists never write the
// same chunk item, and a chunk changed behind the ledger's back is reported
// as damage (an error without a sentinel).
//
// The lists are not written in the same transaction as the header: a
// transaction is limited to 4 MB in all, and 100,000 pubkeys are 4.8 MB. So
// each list is written first (one PutItem per chunk) and the header last, as
// the commit point: CreateExport puts the header with
// attribute_not_exists(pk) (the loser of a race gets the winner's export and
// store.ErrExists), and SealExport updates it with SET sealed = true and the
// members' digest on the condition (sealed = false AND claims = :claims).
// Chunks that no header names (a lost race, a crash before the header) are
// never read.
//
// ClaimForExport is one TransactWriteItems per [ClaimBatch] (99) keys: a Put
// of each key#<pubkey> on attribute_not_exists(pk) and an Update of the
// header, ADD claims :n, on (attribute_exists(pk) AND sealed = false). On
// TransactionCanceledException the CancellationReasons decide: a
// ConditionalCheckFailed key was claimed already and is dropped, and the
// rest is retried at once; a failed header condition is store.ErrConflict
// (the export is sealed: the old item is returned) or store.ErrNotFound;
// TransactionConflict and throttling are retried with backoff, then
// store.ErrUnavailable. Each transaction creates its keys and adds their
// number to claims together, so claims always equals the number of keys
// whose export_id is the export. PutKey is a PutItem on attribute_not_exists
// (version 1) or on (version = :prev AND export_id as stored). Pin is a
// PutItem on attribute_not_exists that returns the stored value when it
// fails.
//
// Every read is strongly consistent: GetItem with ConsistentRead, and
// Exports and Keys scan with ConsistentRead (Exports sorts the headers by
// (CreatedAt, ID) and then reads each export's chunks). Errors are mapped as
// for the records table.
//
// # Security
//
// The table holds sealed secrets only. The IAM policy of a writer needs
// dynamodb:PutItem, UpdateItem, GetItem, Query, Scan and TransactWriteItems on
// the table and its indexes; a reader needs GetItem, Query and Scan; nobody
// needs DeleteItem. The ledger table holds no secret; only custody writes it
// (PutItem, UpdateItem, TransactWriteItems, GetItem, Scan), and the
// generator's role needs no access to it, so neither writing nor restoring
// the records table can change the ledger.
package dynamostore
