// Package keygen turns entropy into Ethereum validator keys: BIP-39
// mnemonics (every wordlist go-bip39 ships, with language detection on
// input), BIP-39 seeds with an optional passphrase, EIP-2333 key derivation
// and the EIP-2334 validator paths.
//
// The package is pure: it performs no I/O, takes no context and never logs.
// Randomness is read from the io.Reader the caller passes (crypto/rand in
// production).
//
// # Security
//
// Mnemonics, seeds and secret keys live in types whose String, Format,
// GoString and MarshalJSON print a redaction marker instead of the secret, so
// a stray %v, %+v, %#v, json.Marshal or slog attribute cannot leak them.
// Raw access goes through methods named Unsafe..., which are easy to audit
// with grep. Destroy clears the bytes the type holds; Go cannot promise that
// no copy remains elsewhere (big.Int intermediates inside EIP-2333, the BLS
// library's own representation), so clearing is best effort.
package keygen
