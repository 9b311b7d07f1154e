// Package store persists validator records: the sealed secret of each
// validator, its public deposit data, its status and the provenance of the
// build that made it. Records are keyed by the validator's public key.
//
// The package defines the [Store] interface, the [Record] and [Request]
// types and the sentinel errors. Two backends implement it:
//
//   - store/sqlitestore: an embedded single-file database (pure Go SQLite,
//     WAL mode), the default for the CLI. Several processes may share the
//     file.
//   - store/dynamostore: one DynamoDB table (single-table design) for the
//     Lambda deployment.
//
// store/storetest holds the conformance suite both backends pass.
//
// The store never sees a secret in the clear: Sealed and SealedMnemonic are
// opaque blobs sealed by package envelope before they get here. It imports
// neither keygen, depositdata nor envelope.
//
// # Promises
//
// No overwrite. A stored record is never replaced. [Store.Put] fails with
// [ErrExists] if any pubkey in the batch is already stored, or if any
// (RequestID, Slot) pair is already taken, and leaves the stored record as it
// was. The only mutation after Put is [Store.SetStatus], which changes the
// status alone and only if the current status is the one the caller names
// (compare-and-set); records are never deleted through this package.
//
// Atomic batches. Put writes all of its records or none of them: a single
// SQLite transaction, or a single DynamoDB TransactWriteItems. A failed Put
// (any error but [ErrUnavailable]) wrote nothing. After ErrUnavailable the
// outcome is unknown (the network may have failed after the commit); the
// caller resolves it by reading the records back with [Store.Get]. A batch
// repeating a pubkey or a (RequestID, Slot) is rejected with [ErrInvalid]
// before any I/O. Backends may cap the batch size (DynamoDB: 50 records);
// a larger batch is rejected with ErrInvalid rather than split, since a
// split batch would not be atomic.
//
// Concurrency. When several writers race to Put the same pubkey or the same
// (RequestID, Slot), exactly one succeeds and the others get ErrExists.
// [Store.CreateRequest] likewise lets exactly one caller create a request id;
// the others get the stored Request and ErrExists, so a retried request (same
// fingerprint) can be told from a reused id (different fingerprint).
//
// Validation. Records are checked before any I/O ([Record.Validate]): the
// pubkey must be 96 lowercase hex characters (so one key cannot be stored
// twice under two spellings), RequestID and Sealed non-empty, Slot >= 0,
// Status one of the four defined values, CreatedAt set, and DepositData, if
// present, valid JSON. Violations wrap ErrInvalid.
//
// Round trip. Every field reads back as written, except that CreatedAt is
// stored in UTC truncated to the millisecond, and an empty SealedMnemonic
// reads back as nil. DepositData is stored byte for byte.
//
// Query order. With Filter.RequestID set, records come in Slot order. With
// only Filter.Status set, they come in (CreatedAt, Pubkey) order. The zero
// Filter yields every record in an order the backend chooses (SQLite: by
// Pubkey; DynamoDB: the unspecified order of a table scan). Pagination is
// internal; the iteration may be stopped at any time. On DynamoDB, Query
// reads global secondary indexes, which are eventually consistent: a record
// just written may take a moment to appear. Get and [Store.GetSlot] are
// strongly consistent on both backends: to find the record holding a
// (RequestID, Slot) right after a Put (or after an ErrExists naming the
// slot), use GetSlot rather than Query.
//
// # Security
//
// The store holds sealed secrets only; reading the store without the key
// that sealed them reveals public data (pubkeys, deposit data, statuses).
// The SQLite file is created with mode 0600. Errors name pubkeys, request ids
// and slots, never blob contents.
package store
