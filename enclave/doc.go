// Package enclave is the Nitro Enclave side of loading validator keys into
// Web3Signer, and the protocol it speaks with the parent instance
// (package enclave/parent).
//
// # Protocol
//
// One connection (vsock in production, any io.ReadWriter in tests) carries
// one exchange of framed messages, each a 4-byte big-endian length then
// JSON, at most [MaxMessageSize] bytes:
//
//	parent -> enclave  {"type":"load","load":{version, region, credentials,
//	                    genesis_validators_root, takeover, records:[...]}}
//	enclave -> parent  {"type":"result","result":{ok, error, keys:[{pubkey,
//	                    status, reason, needs_slashing_history}]}}
//
// Records carry public data and the sealed secret (ciphertext). The result
// carries statuses only: no message type can carry key material back to the
// parent.
//
// # What the enclave does
//
// [Serve] reads the request, refuses it whole if any key's stored status
// forbids loading it ("retired" always; "deposited", meaning it may be
// active on another signer, unless the request says takeover), opens every
// record with the custody pipeline (which checks that the secret derives the
// record's pubkey) through an envelope.Opener made from the forwarded
// credentials (in production: KMS Decrypt with a Nitro attestation, see
// envelope.NewNitroKMSOpener), and only if all open writes the Web3Signer
// key directory and an empty EIP-3076 interchange for the keys that have
// never signed. Takeover keys are excluded from the interchange and flagged:
// their history must come from the signer they leave.
//
// # Security
//
//   - The enclave never logs key material, passwords, mnemonics, the
//     ephemeral RSA key or the credentials ([Credentials] and
//     [LoadRequest] redact themselves in logs); failures are reported to
//     the parent as fixed phrases.
//   - The credentials are the parent's instance role credentials: they let
//     the holder call KMS, but KMS releases data keys only to an attested
//     enclave image (kms:RecipientAttestation:ImageSha384 in the key
//     policy), so the parent, which has them too, still cannot decrypt.
//   - All-or-nothing: a refused or failed key means no file is written.
package enclave
