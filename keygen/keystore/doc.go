// Package keystore reads and writes EIP-2335 version 4 BLS keystores:
// scrypt (n=262144, r=8, p=1) by default or pbkdf2-sha256 (c=262144),
// AES-128-CTR, a sha256 checksum, random salt, IV and uuid, with the
// password normalised as the EIP requires (NFKD, control codes removed).
//
// Files are encoded like the staking deposit CLIs encode them (field order
// and separators), so validator clients and Web3Signer read them unchanged.
// The package is pure: callers do the file I/O.
//
// # Security
//
// Encrypt verifies what it wrote before returning: it decrypts the
// ciphertext with the key it derived and checks checksum and plaintext, so
// the verification costs no second KDF run. Decrypt compares the checksum in
// constant time and reports any mismatch as ErrWrongPassword. KDF parameters
// of files being read are bounded (MaxScryptN, MaxPBKDF2C) so a hostile file
// cannot make Decrypt exhaust memory or time. Weaker parameters are only
// available to tests through WithInsecureCost.
package keystore
