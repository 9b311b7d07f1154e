package envelope

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestRealKMSCiphertextForRecipient parses the two real KMS
// CiphertextForRecipient responses of aws-nitro-enclaves-sdk-c's
// cms_test.c (BER, indefinite lengths; testdata/kms-cms/SOURCE) to the
// encrypted key, IV and ciphertext that test expects.
func TestRealKMSCiphertextForRecipient(t *testing.T) {
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("testdata", "kms-cms", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, suffix := range []string{"", "_w_ctx"} {
		t.Run("input_ber"+suffix, func(t *testing.T) {
			in := read("input_ber" + suffix + ".bin")
			if !bytes.Contains(in[:4], []byte{0x80}) {
				t.Fatalf("input does not start with an indefinite length: % x", in[:4])
			}
			ed, err := parseEnvelopedData(in)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name      string
				got, want []byte
			}{
				{"encrypted key", ed.encryptedKey, read("encrypted_key_out" + suffix + ".bin")},
				{"iv", ed.iv, read("iv_out" + suffix + ".bin")},
				{"ciphertext", ed.ciphertext, read("ciphertext_out" + suffix + ".bin")},
			} {
				if !bytes.Equal(c.got, c.want) {
					t.Errorf("%s: %d bytes % x..., want %d bytes % x...", c.name, len(c.got), c.got[:min(8, len(c.got))], len(c.want), c.want[:min(8, len(c.want))])
				}
			}
			if len(ed.encryptedKey) != 256 {
				t.Errorf("encrypted key of %d bytes, want 256 (RSA-2048 OAEP)", len(ed.encryptedKey))
			}
		})
	}
}
