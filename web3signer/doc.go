// Package web3signer writes what Web3Signer (or any validator client) needs
// to sign with validator keys: a key directory of signing-key configuration
// files (one EIP-2335 keystore, its password file and a "file-keystore"
// YAML config per key), hand-off keystores for the Keymanager API, and the
// EIP-3076 slashing-protection interchange that goes with them.
//
// [WriteKeyDir] writes, for every key, in the directory given to Web3Signer
// as --key-store-path, with Web3Signer's own file naming:
//
//	0x<pubkey>.yaml      type: "file-keystore", keyType: "BLS",
//	                     keystoreFile: "0x<pubkey>.json",
//	                     keystorePasswordFile: "0x<pubkey>.password"
//	0x<pubkey>.json      the EIP-2335 keystore
//	0x<pubkey>.password  its password (no trailing newline)
//
// The paths in the YAML are relative: Web3Signer resolves them against
// --key-store-path, so the directory may be moved or mounted elsewhere.
//
// A key given as its opened secret key is written as a hand-off keystore
// ([HandoffKeystore]: pbkdf2 with c=1 under a fresh random password); or,
// with [RawConfigs], as a "file-raw" config holding the private key itself.
// [PrepareHandoffs] makes hand-off keystores for many keys on every core,
// from an open function (custody.Opener), cancellably.
//
// Slashing protection travels with the keys as an EIP-3076 interchange
// (format version 5). [BuildInterchange] makes the one to import with a
// set of keys: the genesis validators root is a required argument (from the
// caller's network table, never from a document), each key that has signed
// before brings its previous signer's interchange, which must be for the
// same network ([ErrGenesisRoot]) and hold that key ([ErrInterchangeKey]),
// and is merged (a union: nothing is dropped); a key without one gets an
// empty history. [ParseInterchange] reads an interchange with the rules of
// Web3Signer's InterchangeV5Importer and checks its root; [KeyInterchange]
// extracts one key's history (say from a Keymanager API DELETE of many
// keys). [EmptyInterchange] is BuildInterchange for keys that never signed.
//
// # Security
//
//   - Files are created 0600 and never replace an existing file; the
//     directory is created (or tightened to) 0700.
//   - WriteKeyDir is all-or-nothing: on any failure it removes every file it
//     wrote (and the directory if it created it) and returns an error that
//     names no secret.
//   - A directory that already holds entries is refused unless
//     [AllowNonEmpty] is given, so keys from two runs are not mixed by
//     accident.
//   - The password file sits next to the keystore, so the directory as a
//     whole is as sensitive as the plaintext key: put it on an in-memory
//     filesystem (a tmpfs inside the enclave) readable only by Web3Signer.
//   - That is why hand-off keystores use the cheapest KDF EIP-2335 allows
//     (pbkdf2-hmac-sha256, c=1): a KDF slows down guessing a password, but
//     whoever can read a hand-off keystore can read its password (beside
//     it, or in the same Keymanager API request), and the password is
//     random (190 bits), not guessable. A memory-hard KDF there protects
//     nothing and costs the signer a second per key at every start.
//     Hand-off keystores must never be stored apart from their password
//     as if they were protected keystores.
//   - Opening a keystore-format secret (custody) runs its KDF once; the
//     hand-off keystore is then made from the key it yielded, which the
//     sealed envelope authenticated: no second KDF runs to "verify" it.
//   - [RawConfigs] writes the private key in hex into the YAML file: there
//     is then not even a KDF between a reader of the directory and the key.
//     It saves one scrypt run per key at load time and is meant only for an
//     in-memory directory inside protected compute.
//   - The package never logs. Slashing protection is only as good as the
//     history it is given: an empty history is correct only for keys that
//     are new, and must never be used to "reset" the history of a key that
//     has been active anywhere; whether a key has signed is the caller's
//     (custody's) knowledge, not this package's.
package web3signer
