// Package store persists validator keys in two stores kept apart:
//
//   - the records ([Store]): the sealed secret of each validator, its public
//     deposit data, the status it was created with (generated or imported),
//     the provenance of the build that made it and an authenticator over its
//     public fields made by the generator's signing key. Records are keyed by
//     the validator's public key and written once, by the generator;
//   - the ledger ([Ledger]): the lifecycle state of each key after creation
//     ([KeyState]: exported, deposited, exit-signed, retired), the exports
//     that hold deposits ([Export]), and pinned values (the sealing
//     recipient, the generator's verification key). Only custody writes it.
//
// The package defines both interfaces, the [Record], [Request], [KeyState]
// and [Export] types and the sentinel errors. Two backends implement both:
//
//   - store/sqlitestore: an embedded database (pure Go SQLite, WAL mode),
//     the default for the CLI: the records in one file (e.g. ethkeygen.db),
//     the ledger in another (ethkeygen.db.ledger). Several processes may
//     share the files.
//   - store/dynamostore: one DynamoDB table for the records (single-table
//     design) and another for the ledger (by default "<records table>-ledger"),
//     for the Lambda deployment.
//
// store/storetest holds the conformance suites both backends pass: Run for
// the records, RunLedger for the ledger.
//
// The store never sees a secret in the clear: Sealed and SealedMnemonic are
// opaque blobs sealed by package envelope before they get here. It imports
// neither keygen, depositdata nor envelope.
//
// # The records
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
// Status one of the defined values, Origin empty, generated or imported,
// CreatedAt set, and DepositData, if present, valid JSON. Violations wrap
// ErrInvalid.
//
// Round trip. Every field reads back as written, except that CreatedAt is
// stored in UTC truncated to the millisecond, and an empty SealedMnemonic or
// Auth reads back as nil. Records written before Origin, Auth and AuthKeyID
// existed read back with them empty; the store never fills them in. DepositData is stored byte for byte.
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
// # The ledger
//
// The ledger lives apart from the records, in its own SQLite file or its own
// DynamoDB table, so that whoever can write the records (the generator's
// role, an attacker with the records file) or restore them (a backup, a
// point-in-time recovery of the records table) cannot change it: a restored
// or edited record does not re-arm a key the ledger says is exported,
// deposited or retired, and does not change what an export holds. What the
// ledger promises, on both backends:
//
// Each key is claimed at most once. [Ledger.ClaimForExport] creates a key's
// KeyState (exported, Version 1, tagged with the export's id) only if the
// key has none, and adds each key it creates to the export's Claims in the
// same transaction, so Claims always equals the number of keys whose
// ExportID is the export, however many exports claim overlapping keys at
// once. A KeyState's ExportID never changes afterwards.
//
// A sealed export is frozen. [Ledger.SealExport] succeeds only if the export
// is not sealed and its Claims equal the count the caller read
// (compare-and-set); once it has, no claim for the export succeeds. A caller
// that reads Claims, collects the keys the export owns and seals with that
// count therefore seals exactly the keys the export owns, or gets
// [ErrConflict] and tries again.
//
// Compare-and-set everywhere else. [Ledger.PutKey] writes only over the
// version the caller read (absent counts as 0): of two writers of the same
// version exactly one wins. [Ledger.CreateExport] lets one writer create an
// id; the others get the stored export and [ErrExists]. [Ledger.Pin] keeps
// the first value written for a name.
//
// Strong consistency. Every ledger read (GetExport, GetKey, Exports, Keys)
// sees every write that returned before it began.
//
// The ledger checks the form of what it stores ([KeyState.Validate],
// [Export.Validate]: errors wrap [ErrInvalid]) and that an export's members
// are among its candidates. Which state may follow which is a lifecycle rule
// and lives in custody, not here.
//
// # Security
//
// The records hold sealed secrets only; reading them without the key that
// sealed them reveals public data (pubkeys, deposit data, statuses). The
// ledger holds no secret at all. Both SQLite files are created with mode
// 0600. Errors name pubkeys, request ids, slots and export ids, never blob
// contents.
package store
