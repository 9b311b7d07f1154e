// Package provenance makes and checks the generator's authenticator: a
// signature over the canonical message of a record's public fields, made
// with a key that writing the store does not give. Export, load and every
// later operation verify it (package custody builds the message and
// decides; this package only signs and verifies bytes).
//
// Two implementations, both behind [Signer] and [Verifier]:
//
//   - The embedded default: an Ed25519 key (RFC 8032, pure mode: the message
//     itself is signed). [LoadOrCreateLocalSigner] keeps it in the key
//     directory as generator.key (mode 0600) with generator.pub beside it;
//     [LoadLocalVerifier] needs only generator.pub. KeyID is
//     "ed25519:<64 hex digits of the public key>".
//   - AWS: a KMS asymmetric key, key spec ECC_NIST_P256, signing algorithm
//     ECDSA_SHA_256 ([NewKMSSigner]; the generator role alone is granted
//     kms:Sign). [NewKMSVerifier] fetches the public key once with
//     GetPublicKey and verifies locally with crypto/ecdsa: no KMS call, no
//     KMS permission beyond kms:GetPublicKey, per record. KeyID is the key
//     ARN. Signatures are ASN.1 DER, as KMS returns them. The Signer sends
//     the SHA-256 digest (MessageType DIGEST), see [NewKMSSigner].
//
// # Why an asymmetric KMS key and not an HMAC key
//
// local-kms (the pinned github.com/nsmithuk/local-kms that the tests run
// against) implements both Sign/Verify/GetPublicKey and
// GenerateMac/VerifyMac. The asymmetric key is used because verification
// then needs no secret and no KMS call: anyone holding the public key (the
// exporter, the signer hand-off, an auditor, a pinned copy via
// [NewP256Verifier]) can check every record offline and cannot make a valid
// authenticator, whereas with HMAC every verifier needs kms:VerifyMac, one
// KMS request per record, and a key policy that keeps GenerateMac away from
// all of them.
//
// # File formats
//
// generator.key (the line starting with the prefix is the key; '#' lines
// and blank lines are comments):
//
//	# ethkeygen generator signing key (secret; ...)
//	# public key: ethkeygen-generator-ed25519:<hex public key>
//	ETHKEYGEN-GENERATOR-ED25519-SECRET-KEY:<64 hex digits: the RFC 8032 seed>
//
// generator.pub:
//
//	# ethkeygen generator verification key (public; ...)
//	ethkeygen-generator-ed25519:<64 lowercase hex digits: the public key>
//
// # Security
//
//   - Verify returns an error wrapping [ErrForged] for any signature that
//     does not verify under the verifier's key, including one of the wrong
//     length and one made by another key; the caller compares the record's
//     key id with the pinned one.
//   - ECDSA signatures are malleable (s and n-s both verify); that gives an
//     attacker a second signature over a message the generator signed, never
//     one over a message it did not, which is all an authenticator needs.
//   - generator.key and generator.pub are opened without following
//     symlinks and must be regular files owned by the user (or root) and not
//     writable by group or others, in a directory with the same rules;
//     generator.key may not be readable by them either. A generator.pub that
//     does not match generator.key is refused, and a generator.pub without
//     its key is never silently replaced by a new pair.
//   - The private key is never printed: a Signer formats as its key id with
//     every fmt verb, and file errors never quote the key line.
//   - The package never logs.
package provenance
