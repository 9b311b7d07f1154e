// Package envelope seals validator secrets with envelope encryption.
//
// Every call to [Sealer.Seal] obtains a fresh 256-bit data key, encrypts the
// secret with AES-256-GCM under it, and stores the data key only in wrapped
// form: wrapped by AWS KMS ([NewKMSSealer], [NewKMSOpener]) or, for the
// embedded default that needs no AWS, by an age X25519 public key
// ([NewLocalSealer], [NewLocalOpener], [LoadOrCreateIdentity]).
//
// A [Context] of non-secret strings, conventionally
//
//	{"pubkey": "<hex>", "purpose": "eth-validator-secret", "format": "1"}
//
// is bound to the secret. The caller supplies pubkey and purpose; the package
// adds "format" (and rejects any other value for it). The context is sent to
// KMS as the EncryptionContext and is also authenticated as GCM associated
// data, so a sealed secret copied to another record fails to open.
//
// # Sealed format, version 1
//
// All integers are big-endian. Offsets are in bytes.
//
//	off     size  field
//	0       4     magic "EKGE" (0x45 0x4b 0x47 0x45)
//	4       1     version, 0x01
//	5       1     provider: 0x01 = AWS KMS, 0x02 = age X25519
//	6       2     N, key ID length, 1..2048
//	8       N     key ID, printable ASCII (0x21..0x7e); public:
//	              kms: the key ARN reported by GenerateDataKey
//	              age-x25519: the recipient, "age1..."
//	8+N     2     M, wrapped data key length, 1..4096
//	10+N    M     wrapped data key:
//	              kms: the GenerateDataKey CiphertextBlob
//	              age-x25519: a binary age file whose payload is the 32-byte data key
//	10+N+M  12    GCM nonce, random
//	22+N+M  L+16  AES-256-GCM ciphertext of the L-byte secret, then the 16-byte tag
//
// The whole blob is at most [MaxSealedSize] (1 MiB) bytes. Parsing is strict:
// a wrong magic, version or provider, a length out of range or past the end,
// or a blob too short to hold nonce and tag is rejected with [ErrFormat].
// The ciphertext runs to the end of the blob, so any appended or removed
// trailing byte fails authentication with [ErrAuth]. Nothing is ignored.
//
// The GCM associated data is every byte before the nonce (offsets 0 to
// 10+N+M: header, key ID and wrapped key) followed by the canonical encoding
// of the context (including "format"):
//
//	"ethkeygen envelope context v1"  29 ASCII bytes
//	uint32  number of entries
//	per entry, in ascending byte order of keys:
//	  uint32 key length, key bytes, uint32 value length, value bytes
//
// # Security
//
// What this package promises, and what it does not:
//
//   - Confidentiality and integrity of the secret rest on AES-256-GCM under a
//     data key that is used for exactly one secret, so random 96-bit nonces
//     are safe. A data key is never stored or returned in plaintext.
//   - The context binding is enforced twice for KMS (KMS refuses to unwrap
//     under another EncryptionContext; GCM rejects the associated data) and
//     once for age: age has no associated data, so the wrapped data key
//     itself is not bound to the context, and the binding comes from the GCM
//     associated data alone. That suffices because the data key is fresh per
//     secret and the GCM tag covers the context, the header and the wrapped
//     key; an attacker who could unwrap a data key already holds the identity.
//   - [Opener.Open] returns exactly [ErrAuth], with no detail, for any
//     tampering, wrong context or wrong key; a blob that does not even parse
//     may instead give [ErrFormat]. One case is named instead: an age
//     identity given a secret whose header records another (well-formed)
//     recipient gets a [*WrongKeyError] naming both recipients (public
//     values), which still matches [ErrAuth] with errors.Is. Provider outages and permission problems
//     wrap [ErrProvider] and keep the AWS error in the chain. No error ever
//     contains plaintext, data keys or identity material.
//   - The local sealer holds only the public recipient and has no way to
//     open what it seals, mirroring a KMS key policy that grants the
//     generator kms:GenerateDataKey but not kms:Decrypt. Keep the identity
//     file (mode 0600) away from the generating host.
//   - Plaintext data keys are cleared as soon as they have been used. Go
//     cannot guarantee erasure: the AES key schedule, age's internal buffers
//     and the identity's string form are beyond this package's reach, and
//     the garbage collector may have copied memory. Callers should clear the
//     slice returned by Open when done with it.
//   - The context is not secret: it appears in CloudTrail. Never put secrets
//     in it.
//   - The package never logs.
package envelope
