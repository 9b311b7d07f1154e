package envelope_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/ethkeygen/ethkeygen/attest"
	"github.com/ethkeygen/ethkeygen/attest/attesttest"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/envelope/envelopetest"
)

type nitroFixture struct {
	kms    *envelopetest.KMS
	rkms   *envelopetest.RecipientKMS
	nsm    *attesttest.NSM
	arn    string
	sealed []byte
	secret []byte
	ec     envelope.Context
}

func newNitroFixture(t *testing.T) *nitroFixture {
	t.Helper()
	f := &nitroFixture{kms: envelopetest.NewKMS(), nsm: attesttest.New(attesttest.Image())}
	f.arn = f.kms.CreateKey()
	f.rkms = envelopetest.NewRecipientKMS(f.kms, envelopetest.RecipientPolicy{
		Roots: f.nsm.Roots(), ImageSha384: strings.ToUpper(f.nsm.ImageSha384()),
	})
	f.secret = []byte("a validator secret document")
	f.ec = envelope.Context{envelope.PubkeyKey: "ab", envelope.PurposeKey: envelope.PurposeValidatorSecret}
	var err error
	f.sealed, err = envelope.NewKMSSealer(f.kms, f.arn).Seal(context.Background(), f.secret, f.ec)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func nitroAPICode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func TestNitroOpen(t *testing.T) {
	f := newNitroFixture(t)
	op := envelope.NewNitroKMSOpener(f.rkms, f.nsm)
	for range 2 {
		got, err := op.Open(context.Background(), f.sealed, f.ec)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.secret) {
			t.Fatal("opened something else")
		}
	}
	if f.rkms.Attested() != 2 || f.nsm.Calls() != 2 {
		t.Fatalf("attested %d, nsm calls %d", f.rkms.Attested(), f.nsm.Calls())
	}
	keys := f.nsm.PublicKeys()
	if bytes.Equal(keys[0], keys[1]) {
		t.Fatal("the ephemeral key was reused")
	}
	pub, err := x509.ParsePKIXPublicKey(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := pub.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
		t.Fatal("ephemeral key is not RSA-2048")
	}
	for _, r := range f.kms.Requests() {
		if r.Op == envelopetest.OpDecrypt && r.KeyID != f.arn {
			t.Fatalf("Decrypt KeyId %q", r.KeyID)
		}
	}
}

// clientFunc adapts a function to envelope.KMSDecryptAPI.
type clientFunc func(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)

func (f clientFunc) Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	return f(ctx, in, optFns...)
}

// attesterFunc adapts a function to envelope.Attester.
type attesterFunc func(ctx context.Context, pub []byte) ([]byte, error)

func (f attesterFunc) Attest(ctx context.Context, pub []byte) ([]byte, error) { return f(ctx, pub) }

func TestNitroPolicy(t *testing.T) {
	t.Run("image digest not in the policy", func(t *testing.T) {
		f := newNitroFixture(t)
		other := attesttest.New(attesttest.Image()) // another image, same trusted root would not help
		f.rkms.Policy.ImageSha384 = other.ImageSha384()
		_, err := envelope.NewNitroKMSOpener(f.rkms, f.nsm).Open(context.Background(), f.sealed, f.ec)
		if !errors.Is(err, envelope.ErrProvider) || nitroAPICode(err) != "AccessDeniedException" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("PCR8 not in the policy", func(t *testing.T) {
		f := newNitroFixture(t)
		f.rkms.Policy.PCR8 = strings.Repeat("00", 48)
		_, err := envelope.NewNitroKMSOpener(f.rkms, f.nsm).Open(context.Background(), f.sealed, f.ec)
		if nitroAPICode(err) != "AccessDeniedException" {
			t.Fatalf("got %v", err)
		}
		f.rkms.Policy.PCR8 = f.nsm.PCR8()
		if _, err := envelope.NewNitroKMSOpener(f.rkms, f.nsm).Open(context.Background(), f.sealed, f.ec); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("document from an untrusted NSM", func(t *testing.T) {
		f := newNitroFixture(t)
		rogue := attesttest.New([48]byte{}) // claims nothing, but...
		// ...even a rogue NSM that claims the right image is refused,
		// because its root is not trusted.
		doc := func(ctx context.Context, pub []byte) ([]byte, error) {
			d := rogue.Document(pub)
			d.PCRs[0] = f.nsm.Document(pub).PCRs[0]
			return rogue.Sign(d)
		}
		_, err := envelope.NewNitroKMSOpener(f.rkms, attesterFunc(doc)).Open(context.Background(), f.sealed, f.ec)
		if !errors.Is(err, envelope.ErrProvider) || nitroAPICode(err) != "ValidationException" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("tampered attestation document", func(t *testing.T) {
		f := newNitroFixture(t)
		doc := func(ctx context.Context, pub []byte) ([]byte, error) {
			d, err := f.nsm.Attest(ctx, pub)
			if err != nil {
				return nil, err
			}
			// Flip a byte in the middle of the payload.
			d = bytes.Clone(d)
			d[len(d)/2] ^= 0x01
			return d, nil
		}
		_, err := envelope.NewNitroKMSOpener(f.rkms, attesterFunc(doc)).Open(context.Background(), f.sealed, f.ec)
		if !errors.Is(err, envelope.ErrProvider) || nitroAPICode(err) != "ValidationException" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("document for another public key", func(t *testing.T) {
		f := newNitroFixture(t)
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		otherDER, _ := x509.MarshalPKIXPublicKey(&other.PublicKey)
		doc := func(ctx context.Context, _ []byte) ([]byte, error) { return f.nsm.Attest(ctx, otherDER) }
		_, err := envelope.NewNitroKMSOpener(f.rkms, attesterFunc(doc)).Open(context.Background(), f.sealed, f.ec)
		if err != envelope.ErrAuth {
			t.Fatalf("got %v, want ErrAuth", err)
		}
	})
	t.Run("no Recipient", func(t *testing.T) {
		f := newNitroFixture(t)
		_, err := envelope.NewKMSOpener(f.rkms).Open(context.Background(), f.sealed, f.ec)
		if nitroAPICode(err) != "AccessDeniedException" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("NSM failure", func(t *testing.T) {
		f := newNitroFixture(t)
		f.nsm.Fail(errors.New("nsm: device busy"))
		_, err := envelope.NewNitroKMSOpener(f.rkms, f.nsm).Open(context.Background(), f.sealed, f.ec)
		if !errors.Is(err, envelope.ErrProvider) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestNitroAuthFailures(t *testing.T) {
	t.Run("bad padding", func(t *testing.T) {
		f := newNitroFixture(t)
		f.rkms.SetFault(envelopetest.FaultBadPadding)
		if _, err := envelope.NewNitroKMSOpener(f.rkms, f.nsm).Open(context.Background(), f.sealed, f.ec); err != envelope.ErrAuth {
			t.Fatalf("got %v, want ErrAuth", err)
		}
	})
	t.Run("content key for another RSA key", func(t *testing.T) {
		f := newNitroFixture(t)
		f.rkms.SetFault(envelopetest.FaultWrongRecipientKey)
		if _, err := envelope.NewNitroKMSOpener(f.rkms, f.nsm).Open(context.Background(), f.sealed, f.ec); err != envelope.ErrAuth {
			t.Fatalf("got %v, want ErrAuth", err)
		}
	})
	t.Run("wrong encryption context", func(t *testing.T) {
		f := newNitroFixture(t)
		ec := envelope.Context{envelope.PubkeyKey: "cd", envelope.PurposeKey: envelope.PurposeValidatorSecret}
		if _, err := envelope.NewNitroKMSOpener(f.rkms, f.nsm).Open(context.Background(), f.sealed, ec); err != envelope.ErrAuth {
			t.Fatalf("got %v, want ErrAuth", err)
		}
	})
	t.Run("blob of another KMS key", func(t *testing.T) {
		f := newNitroFixture(t)
		arn2 := f.kms.CreateKey()
		sealed2, err := envelope.NewKMSSealer(f.kms, arn2).Seal(context.Background(), f.secret, f.ec)
		if err != nil {
			t.Fatal(err)
		}
		// Splice the wrapped key of the other blob's KMS key: KMS refuses
		// or GCM does; either way exactly ErrAuth.
		mixed := append(bytes.Clone(f.sealed[:len(f.sealed)-1]), f.sealed[len(f.sealed)-1]^1)
		for _, b := range [][]byte{mixed, sealed2[:len(sealed2)-1]} {
			if _, err := envelope.NewNitroKMSOpener(f.rkms, f.nsm).Open(context.Background(), b, f.ec); err != envelope.ErrAuth {
				t.Fatalf("got %v, want ErrAuth", err)
			}
		}
	})
	t.Run("tampered CiphertextForRecipient", func(t *testing.T) {
		f := newNitroFixture(t)
		var mu sync.Mutex
		pos := 0
		tamper := clientFunc(func(ctx context.Context, in *kms.DecryptInput, opts ...func(*kms.Options)) (*kms.DecryptOutput, error) {
			out, err := f.rkms.Decrypt(ctx, in, opts...)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			defer mu.Unlock()
			c := out.CiphertextForRecipient
			out.CiphertextForRecipient[pos%len(c)] ^= 0x01
			return out, nil
		})
		op := envelope.NewNitroKMSOpener(tamper, f.nsm)
		// Sample positions across the structure: headers, OIDs, the
		// encrypted key, the IV, the content and the end-of-contents
		// (not the recipient's subject key identifier, bytes 33-52, which
		// is not checked: see TestEnvelopedData).
		for _, p := range []int{0, 1, 5, 20, 30, 60, 100, 200, 300, 350, 400, 420, 440, 460, -1, -3} {
			mu.Lock()
			pos = p
			if p < 0 {
				pos = 10000*len(f.sealed) + p // wraps to the end
			}
			mu.Unlock()
			if _, err := op.Open(context.Background(), f.sealed, f.ec); err != envelope.ErrAuth {
				t.Fatalf("flip at %d: got %v, want ErrAuth", p, err)
			}
		}
	})
	t.Run("plaintext returned alongside", func(t *testing.T) {
		f := newNitroFixture(t)
		leaky := clientFunc(func(ctx context.Context, in *kms.DecryptInput, opts ...func(*kms.Options)) (*kms.DecryptOutput, error) {
			out, err := f.rkms.Decrypt(ctx, in, opts...)
			if err == nil {
				out.Plaintext = make([]byte, 32)
			}
			return out, err
		})
		if _, err := envelope.NewNitroKMSOpener(leaky, f.nsm).Open(context.Background(), f.sealed, f.ec); !errors.Is(err, envelope.ErrProvider) {
			t.Fatalf("got %v", err)
		}
	})
}

// The CMS parser, directly with a fixed key (no KMS round trip).
func TestEnvelopedData(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	good, err := envelopetest.EnvelopedData(&priv.PublicKey, key, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := envelope.OpenEnvelopedData(good, priv)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("good message: %v", err)
	}
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33} {
		pt := bytes.Repeat([]byte{7}, n)
		m, _ := envelopetest.EnvelopedData(&priv.PublicKey, pt, false)
		if got, err := envelope.OpenEnvelopedData(m, priv); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("length %d: %v", n, err)
		}
		m, _ = envelopetest.EnvelopedData(&priv.PublicKey, pt, true)
		if _, err := envelope.OpenEnvelopedData(m, priv); err == nil {
			t.Fatalf("length %d: bad padding accepted", n)
		}
	}

	replace := func(old, new []byte) []byte {
		if !bytes.Contains(good, old) {
			t.Fatalf("%x not in the message", old)
		}
		return bytes.Replace(good, old, new, 1)
	}
	cases := map[string][]byte{
		"trailing byte":        append(bytes.Clone(good), 0),
		"trailing EOC":         append(bytes.Clone(good), 0, 0),
		"missing EOC":          good[:len(good)-2],
		"EnvelopedData v0":     replace([]byte{0x02, 0x01, 0x02}, []byte{0x02, 0x01, 0x00}),
		"signedData":           replace([]byte{0x01, 0x07, 0x03}, []byte{0x01, 0x07, 0x02}),
		"aes128-CBC":           replace([]byte{0x04, 0x01, 0x2a}, []byte{0x04, 0x01, 0x02}),
		"rsaEncryption":        replace([]byte{0x01, 0x01, 0x07}, []byte{0x01, 0x01, 0x01}),
		"sha384 OAEP hash":     replace([]byte{0x04, 0x02, 0x01, 0x05, 0x00}, []byte{0x04, 0x02, 0x02, 0x05, 0x00}),
		"encrypted-data type":  replace([]byte{0x01, 0x07, 0x01}, []byte{0x01, 0x07, 0x06}),
		"empty":                nil,
		"high tag":             append([]byte{0x3f, 0x80}, good[2:]...),
		"indefinite primitive": append([]byte{0x10, 0x80}, good[2:]...),
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := envelope.OpenEnvelopedData(m, priv); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	t.Run("every truncation", func(t *testing.T) {
		for i := range len(good) {
			if err := envelope.ParseEnvelopedData(good[:i]); err == nil {
				t.Fatalf("truncated to %d accepted", i)
			}
		}
	})
	t.Run("wrong private key", func(t *testing.T) {
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		if _, err := envelope.OpenEnvelopedData(good, other); err == nil {
			t.Fatal("opened with another key")
		}
	})
	t.Run("every single-bit flip", func(t *testing.T) {
		// CBC is malleable: a flip in the IV or a non-final block yields
		// other bytes with valid padding. Then the key is wrong and the
		// AES-GCM of the sealed secret fails (see TestNitroAuthFailures).
		// Anything else must be an error, never a panic or the same key.
		// The recipient's subject key identifier (bytes 33-52 here) is
		// not checked: there is one recipient, KMS does not document how
		// it derives the identifier, and RSA-OAEP under the ephemeral key
		// is the real check. Flipping it changes nothing.
		if !bytes.Equal(good[28:33], []byte{0x02, 0x01, 0x02, 0x80, 0x14}) {
			t.Fatalf("unexpected layout % x", good[28:33])
		}
		for i := range len(good) {
			if i >= 33 && i < 53 {
				continue
			}
			m := bytes.Clone(good)
			m[i] ^= 0x01
			got, err := envelope.OpenEnvelopedData(m, priv)
			if err == nil && bytes.Equal(got, key) {
				t.Fatalf("flip at %d: same key", i)
			}
		}
	})
}

func TestPKCS7PadLen(t *testing.T) {
	block := func(tail ...byte) []byte { return append(bytes.Repeat([]byte{0xaa}, 16-len(tail)), tail...) }
	for _, c := range []struct {
		b  []byte
		n  int
		ok bool
	}{
		{block(1), 1, true},
		{block(2, 2), 2, true},
		{bytes.Repeat([]byte{16}, 16), 16, true},
		{block(0), 0, false},
		{block(17), 0, false},
		{block(0xff), 0, false},
		{block(1, 2, 2), 2, true},
		{block(3, 2), 0, false},
		{block(2, 3, 3), 0, false},
		{append(bytes.Repeat([]byte{16}, 15), 15), 0, false},
		{nil, 0, false},
		{make([]byte, 15), 0, false},
	} {
		n, ok := envelope.PKCS7PadLen(c.b)
		if ok != c.ok || (ok && n != c.n) {
			t.Errorf("%x: got %d %v", c.b, n, ok)
		}
	}
}

func FuzzParseEnvelopedData(f *testing.F) {
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	good, _ := envelopetest.EnvelopedData(&priv.PublicKey, make([]byte, 32), false)
	f.Add(good)
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	f.Add([]byte{0x30, 0x80, 0x30, 0x80, 0x30, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = envelope.ParseEnvelopedData(b)
	})
}

func TestAttestVerify(t *testing.T) {
	nsm := attesttest.New(attesttest.Image())
	doc, err := nsm.Attest(context.Background(), []byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	var _ envelope.Attester = nsm
	var _ envelope.Attester = attest.NSM{}
	d, err := attest.Verify(doc, nsm.Roots(), timeNow())
	if err != nil {
		t.Fatal(err)
	}
	if d.ImageSha384() != nsm.ImageSha384() || !bytes.Equal(d.PublicKey, []byte{1, 2, 3}) || d.Digest != "SHA384" {
		t.Fatalf("document %+v", d)
	}
	if _, err := attest.Verify(doc, attesttest.New(attesttest.Image()).Roots(), timeNow()); !errors.Is(err, attest.ErrSignature) {
		t.Fatalf("other root: %v", err)
	}
}

func timeNow() time.Time { return time.Now() }
