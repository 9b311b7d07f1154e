// Package web3signer writes what Web3Signer needs to sign with validator
// keys: a key directory of signing-key configuration files (one EIP-2335
// keystore, its password file and a "file-keystore" YAML config per key),
// and an EIP-3076 slashing-protection interchange file.
//
// [WriteKeyDir] writes, for every key, in the directory given to Web3Signer
// as --key-store-path:
//
//	0x<pubkey>.json  the EIP-2335 keystore
//	0x<pubkey>.txt   its password (no trailing newline)
//	0x<pubkey>.yaml  type: "file-keystore", keyType: "BLS",
//	                 keystoreFile / keystorePasswordFile: absolute paths
//
// A key that has no keystore (a raw-format secret) is given one, encrypted
// under a fresh random password ([keystore.RandomPassword]); or, with
// [RawConfigs], it is written as a "file-raw" config holding the private key
// itself, which is weaker (see below).
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
