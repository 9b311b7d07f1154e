package ops

import (
	"fmt"
	"io"

	"github.com/ethkeygen/ethkeygen/keygen/keystore"
)

// Encrypted exits, as Lido's validator ejector reads them: the exit
// file's bytes sealed in an EIP-2335 container by @chainsafe/bls-keystore's
// create (the ejector's encryptor/encrypt.ts): pbkdf2-hmac-sha256 with
// c=262144, aes-128-ctr, a sha256 checksum, empty pubkey and path. The
// ejector recognises such a file by its "crypto" field, requires pbkdf2
// (its encryptedMessageDTO refuses scrypt), decrypts it with
// MESSAGES_PASSWORD and parses the plaintext as the exit's JSON. Any
// *.json name is read; the exit keeps ethstaker-deposit-cli's.

// EncryptExitFile seals an exit file (MarshalExitFile's bytes) under
// password; random supplies salt, IV and uuid (crypto/rand.Reader).
// opts are for tests (keystore.WithInsecureCost). The result is what the
// ejector's encryptor writes for the same file, up to the random values.
func EncryptExitFile(random io.Reader, file, password []byte, opts ...keystore.Option) ([]byte, error) {
	if _, err := ParseExit(file); err != nil {
		return nil, err
	}
	ks, err := keystore.EncryptMessage(random, file, password, opts...)
	if err != nil {
		return nil, fmt.Errorf("ops: encrypting the exit: %w", err)
	}
	return ks.Marshal()
}

// DecryptExitFile opens an encrypted exit file (EncryptExitFile's, or the
// ejector's encryptor's) and parses the exit inside. A wrong password is
// keystore.ErrWrongPassword; the exit's signature is not checked here
// (VerifyExit).
func DecryptExitFile(b, password []byte) (*SignedVoluntaryExit, error) {
	ks, err := keystore.ParseMessage(b)
	if err != nil {
		return nil, err
	}
	if ks.KDF() != keystore.PBKDF2 {
		return nil, fmt.Errorf("%w: an encrypted exit uses pbkdf2 (Lido's validator ejector reads no other kdf), not %s", ErrInvalid, ks.KDF())
	}
	pt, err := ks.Decrypt(password)
	if err != nil {
		return nil, err
	}
	defer pt.Destroy()
	return ParseExit(pt.UnsafeBytes())
}
