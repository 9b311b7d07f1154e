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
// The same connection may instead carry one request for signed public
// messages, "sign_exits" or "sign_bls_changes", answered by "signed"
// (protocol_ops.go): the enclave checks custody's rules on the records
// and ledger states it is sent (custody.CheckExitRecorded: an exit only
// for a key the parent has marked exit-signed; 0x00 credentials for a BLS
// change), signs with package ops and returns the messages, never a key.
//
// Records carry public data, the sealed secret (ciphertext) and, for a key
// taken over from another signer, that signer's EIP-3076 interchange
// (public). The result carries statuses only: no message type can carry
// key material back to the parent.
//
// # What the enclave does
//
// The enclave is a long-running service: it accepts further load requests
// after its first, on new connections to the same listener, and each one
// adds its keys to the running signer (a [Signer]: [KeyDirSigner] writes
// Web3Signer's key directory and calls its POST /reload; [KeymanagerSigner]
// imports through the Keymanager API), so keys generated after the signer
// started reach it without a restart.
//
// [Serve] reads the request, refuses it whole if any key's stored status
// forbids loading it ("retired" always; "deposited", meaning it may be
// active on another signer, unless the request says takeover), if the
// request's genesis validators root is not its records' network's (with
// [Config].GenesisRoot), or if a key's history is for another network or
// another key. It then opens every record with the custody pipeline (which
// checks that the secret derives the record's pubkey) on every core within
// MaxMemory, through an envelope.Opener made from the forwarded credentials
// (in production: KMS Decrypt with a Nitro attestation, see
// envelope.NewNitroKMSOpener), turns each opened key into a hand-off
// keystore (web3signer.PrepareHandoffs: pbkdf2 c=1, its password beside
// it) and, only if all open, hands them to the signer with their
// interchange: history merged for keys that bring it, empty for keys that
// never signed. Takeover keys without history are flagged
// (needs_slashing_history) and left out of the interchange.
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
//   - All-or-nothing: a refused or failed key means nothing reaches the
//     signer. One exception, said in the result: a Keymanager API import
//     is per key on the server; keys it took are marked loaded.
package enclave
