package envelope

import (
	"bytes"
	"context"
	"os"
	"testing"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func TestSealClearsDataKey(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	s := NewLocalSealer(id.Recipient()).(*sealer)
	var seen []byte
	s.onDataKey = func(k []byte) {
		if len(k) != dataKeySize || isZero(k) {
			t.Errorf("data key before use: %d bytes, zero=%v", len(k), isZero(k))
		}
		seen = k
	}
	if _, err := s.Seal(context.Background(), []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if seen == nil || !isZero(seen) {
		t.Fatal("data key not cleared after Seal")
	}
}

// stubKMS hands out data keys whose buffers the test keeps, to check that
// the package clears KMS-returned plaintext keys after use.
type stubKMS struct {
	arn       string
	key       []byte
	wrapped   []byte
	decrypted []byte
}

func (k *stubKMS) GenerateDataKey(_ context.Context, in *kms.GenerateDataKeyInput, _ ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	k.key = bytes.Repeat([]byte{7}, 32)
	k.wrapped = []byte("opaque")
	return &kms.GenerateDataKeyOutput{KeyId: &k.arn, Plaintext: k.key, CiphertextBlob: k.wrapped}, nil
}

func (k *stubKMS) Decrypt(_ context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	k.decrypted = bytes.Repeat([]byte{7}, 32)
	return &kms.DecryptOutput{KeyId: &k.arn, Plaintext: k.decrypted}, nil
}

func TestKMSDataKeysCleared(t *testing.T) {
	ctx := context.Background()
	stub := &stubKMS{arn: "arn:aws:kms:eu-west-1:111122223333:key/stub"}
	sealed, err := NewKMSSealer(stub, "alias/stub").Seal(ctx, []byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !isZero(stub.key) {
		t.Fatal("GenerateDataKey plaintext not cleared after Seal")
	}
	if !bytes.Equal(stub.wrapped, []byte("opaque")) {
		t.Fatal("Seal modified the wrapped key")
	}
	pt, err := NewKMSOpener(stub).Open(ctx, sealed, nil)
	if err != nil || string(pt) != "secret" {
		t.Fatalf("Open: %q, %v", pt, err)
	}
	if !isZero(stub.decrypted) {
		t.Fatal("Decrypt plaintext not cleared after Open")
	}
}

func TestCanonicalContextUnambiguous(t *testing.T) {
	pairs := [][2]Context{
		{{"a": "bc"}, {"ab": "c"}},
		{{"a": "b", "c": "d"}, {"a": "b\x00\x00\x00\x01c\x00\x00\x00\x01d"}},
		{{}, {"": ""}},
	}
	for _, p := range pairs {
		if bytes.Equal(p[0].canonical(), p[1].canonical()) {
			t.Errorf("%q and %q encode the same", p[0], p[1])
		}
	}
	want := "ethkeygen envelope context v1" +
		"\x00\x00\x00\x02" +
		"\x00\x00\x00\x01a\x00\x00\x00\x01b" +
		"\x00\x00\x00\x06format\x00\x00\x00\x011"
	if got := string(Context{"format": "1", "a": "b"}.canonical()); got != want {
		t.Errorf("canonical = %q, want %q", got, want)
	}
}

func loadFuzzIdentity(f *testing.F) *age.X25519Identity {
	data, err := os.ReadFile("../testdata/envelope/test-only-identity.txt")
	if err != nil {
		f.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil || len(ids) != 1 {
		f.Fatal(err)
	}
	return ids[0].(*age.X25519Identity)
}

// FuzzOpen feeds arbitrary blobs to the parser and the local opener. Neither
// may panic; a blob that parses must re-encode to itself; and, as every seed
// is sealed to the test identity under fuzzContext, anything that opens must
// open to a known seed plaintext.
func FuzzOpen(f *testing.F) {
	id := loadFuzzIdentity(f)
	ctx := context.Background()
	ec := Context{"pubkey": "a99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c", "purpose": PurposeValidatorSecret}
	s := NewLocalSealer(id.Recipient())
	for _, pt := range []string{"", "s", "TEST-ONLY validator secret 32 B!"} {
		b, err := s.Seal(ctx, []byte(pt), ec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	known := map[string]bool{"": true, "s": true, "TEST-ONLY validator secret 32 B!": true}
	o := NewLocalOpener(id)
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		blob, err := parse(data)
		if err == nil {
			re := appendPrefix(nil, blob.provider, blob.keyID, blob.wrapped)
			re = append(re, blob.nonce...)
			re = append(re, blob.ciphertext...)
			if !bytes.Equal(re, data) {
				t.Fatalf("parse/encode is not an identity:\n in %x\nout %x", data, re)
			}
		}
		pt, err := o.Open(ctx, data, ec)
		if !bytes.Equal(in, data) {
			t.Fatal("Open modified its input")
		}
		if err == nil && !known[string(pt)] {
			t.Fatalf("opened a forged blob to %q", pt)
		}
	})
}
