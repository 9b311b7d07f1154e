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
// of files being read are bounded so a hostile file cannot make Decrypt
// exhaust memory or time: scrypt's memory 128·n·r by MaxScryptMemory (512
// MiB), its work n·r·p by MaxScryptWork (2^23, four times EIP-2335's
// default; every keystore real tools write passes), pbkdf2's c by
// MaxPBKDF2C, and a file's size by MaxFileSize (Parse). KDFMemory says what
// a keystore's KDF needs, to size concurrent decryptions by. DecryptContext
// and DecryptKeyContext stop within milliseconds when their context is done:
// their scrypt is this package's RFC 7914 implementation (romix.go, checked
// against the RFC's vectors and x/crypto), which checks the context every
// 256 ROMix iterations; Decrypt uses x/crypto's and cannot be interrupted. Weaker parameters are only
// available to tests through WithInsecureCost.
package keystore
