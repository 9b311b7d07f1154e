package envelope_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/envelope/envelopetest"
)

const testPubkey = "a99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c"

func recordContext(pubkey string) envelope.Context {
	return envelope.Context{envelope.PubkeyKey: pubkey, envelope.PurposeKey: envelope.PurposeValidatorSecret}
}

// layout is the sealed format as documented in doc.go, parsed independently
// of the package so that the documentation is checked too.
type layout struct {
	provider   byte
	keyID      string
	wrappedOff int // first byte of the wrapped data key
	wrapped    []byte
	nonceOff   int
}

func parseLayout(t testing.TB, b []byte) layout {
	t.Helper()
	if string(b[:4]) != "EKGE" || b[4] != 1 {
		t.Fatalf("bad magic/version: % x", b[:5])
	}
	n := int(binary.BigEndian.Uint16(b[6:8]))
	keyID := string(b[8 : 8+n])
	m := int(binary.BigEndian.Uint16(b[8+n : 10+n]))
	l := layout{provider: b[5], keyID: keyID, wrappedOff: 10 + n, wrapped: b[10+n : 10+n+m], nonceOff: 10 + n + m}
	if len(b) < l.nonceOff+12+16 {
		t.Fatalf("blob too short for nonce and tag")
	}
	return l
}

type provider struct {
	name   string
	sealer envelope.Sealer
	opener envelope.Opener
	id     byte
}

func providers(t *testing.T) []provider {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	fake := envelopetest.NewKMS()
	arn := fake.CreateKey()
	return []provider{
		{"age-x25519", envelope.NewLocalSealer(id.Recipient()), envelope.NewLocalOpener(id), 2},
		{"kms", envelope.NewKMSSealer(fake, arn), envelope.NewKMSOpener(fake), 1},
	}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, p := range providers(t) {
		t.Run(p.name, func(t *testing.T) {
			for _, size := range []int{0, 1, 32, 1000, 64 << 10} {
				pt := bytes.Repeat([]byte{0xA5}, size)
				ec := recordContext(testPubkey)
				sealed, err := p.sealer.Seal(ctx, pt, ec)
				if err != nil {
					t.Fatal(err)
				}
				l := parseLayout(t, sealed)
				if l.provider != p.id {
					t.Errorf("provider byte = %d, want %d", l.provider, p.id)
				}
				if got, want := len(sealed)-l.nonceOff, 12+size+16; got != want {
					t.Errorf("nonce+ciphertext+tag = %d bytes, want %d", got, want)
				}
				got, err := p.opener.Open(ctx, sealed, ec)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, pt) {
					t.Fatalf("size %d: round trip mismatch", size)
				}
				// "format" supplied explicitly is the same context.
				ec2 := maps.Clone(ec)
				ec2[envelope.FormatKey] = envelope.FormatVersion
				if _, err := p.opener.Open(ctx, sealed, ec2); err != nil {
					t.Fatalf("explicit format: %v", err)
				}
			}
		})
	}
}

func TestContextMismatch(t *testing.T) {
	ctx := context.Background()
	a := recordContext(testPubkey)
	mismatches := map[string]envelope.Context{
		"other record":   recordContext(strings.Repeat("b", 96)),
		"other purpose":  {envelope.PubkeyKey: testPubkey, envelope.PurposeKey: "withdrawal"},
		"missing key":    {envelope.PubkeyKey: testPubkey},
		"extra key":      {envelope.PubkeyKey: testPubkey, envelope.PurposeKey: envelope.PurposeValidatorSecret, "x": ""},
		"empty":          nil,
		"key/value swap": {testPubkey: envelope.PubkeyKey, envelope.PurposeKey: envelope.PurposeValidatorSecret},
	}
	for _, p := range providers(t) {
		sealed, err := p.sealer.Seal(ctx, []byte("secret A"), a)
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range mismatches {
			t.Run(p.name+"/"+name, func(t *testing.T) {
				pt, err := p.opener.Open(ctx, sealed, b)
				if err != envelope.ErrAuth {
					t.Fatalf("Open with record B's context = %v, %v; want ErrAuth", pt, err)
				}
			})
		}
	}
}

func TestInvalidContext(t *testing.T) {
	ctx := context.Background()
	for _, p := range providers(t) {
		sealed, err := p.sealer.Seal(ctx, []byte("s"), recordContext(testPubkey))
		if err != nil {
			t.Fatal(err)
		}
		for name, ec := range map[string]envelope.Context{
			"format 2":  {envelope.FormatKey: "2"},
			"empty key": {"": "x"},
			"bad utf8":  {"k": "\xff"},
			"too large": {"k": strings.Repeat("v", envelope.MaxContextSize)},
		} {
			t.Run(p.name+"/"+name, func(t *testing.T) {
				if _, err := p.sealer.Seal(ctx, []byte("s"), ec); !errors.Is(err, envelope.ErrContext) {
					t.Errorf("Seal: %v, want ErrContext", err)
				}
				if _, err := p.opener.Open(ctx, sealed, ec); !errors.Is(err, envelope.ErrContext) {
					t.Errorf("Open: %v, want ErrContext", err)
				}
			})
		}
	}
}

// TestFlipEveryByte flips every byte of a sealed blob: the result must never
// open, must never panic, and from the wrapped key on must be exactly ErrAuth.
// Header and length fields may instead give ErrFormat (unparseable) or, for
// KMS, ErrProvider (the key ID names no key).
func TestFlipEveryByte(t *testing.T) {
	ctx := context.Background()
	ec := recordContext(testPubkey)
	for _, p := range providers(t) {
		t.Run(p.name, func(t *testing.T) {
			sealed, err := p.sealer.Seal(ctx, []byte("validator secret key bytes......"), ec)
			if err != nil {
				t.Fatal(err)
			}
			l := parseLayout(t, sealed)
			for i := range sealed {
				for _, mask := range []byte{0x01, 0x80, 0xff} {
					b := bytes.Clone(sealed)
					b[i] ^= mask
					pt, err := p.opener.Open(ctx, b, ec)
					switch {
					case err == nil:
						t.Fatalf("byte %d ^ %#x: opened to %x", i, mask, pt)
					case i >= l.wrappedOff && err != envelope.ErrAuth:
						t.Fatalf("byte %d ^ %#x (after header): %v, want exactly ErrAuth", i, mask, err)
					case !errors.Is(err, envelope.ErrAuth) && !errors.Is(err, envelope.ErrFormat) && !errors.Is(err, envelope.ErrProvider):
						t.Fatalf("byte %d ^ %#x: unexpected error %v", i, mask, err)
					}
				}
			}
		})
	}
}

func TestTruncateAndExtend(t *testing.T) {
	ctx := context.Background()
	ec := recordContext(testPubkey)
	for _, p := range providers(t) {
		t.Run(p.name, func(t *testing.T) {
			sealed, err := p.sealer.Seal(ctx, []byte("secret"), ec)
			if err != nil {
				t.Fatal(err)
			}
			for n := range len(sealed) {
				if _, err := p.opener.Open(ctx, sealed[:n], ec); err == nil {
					t.Fatalf("truncated to %d bytes: opened", n)
				}
			}
			for _, extra := range [][]byte{{0}, {0, 0, 0, 0}, sealed} {
				if _, err := p.opener.Open(ctx, append(bytes.Clone(sealed), extra...), ec); err != envelope.ErrAuth {
					t.Fatalf("%d trailing bytes: %v, want ErrAuth", len(extra), err)
				}
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	ctx := context.Background()
	id, _ := age.GenerateX25519Identity()
	o := envelope.NewLocalOpener(id)
	good, err := envelope.NewLocalSealer(id.Recipient()).Seal(ctx, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string][]byte{
		"nil":              nil,
		"magic":            mut(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version 0":        mut(func(b []byte) []byte { b[4] = 0; return b }),
		"version 2":        mut(func(b []byte) []byte { b[4] = 2; return b }),
		"provider 0":       mut(func(b []byte) []byte { b[5] = 0; return b }),
		"provider 3":       mut(func(b []byte) []byte { b[5] = 3; return b }),
		"key id len 0":     mut(func(b []byte) []byte { b[6], b[7] = 0, 0; return b }),
		"key id len huge":  mut(func(b []byte) []byte { b[6], b[7] = 0xff, 0xff; return b }),
		"too large":        append(bytes.Clone(good), make([]byte, envelope.MaxSealedSize)...),
		"key id non-ASCII": mut(func(b []byte) []byte { b[9] = 0x80; return b }),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := o.Open(ctx, b, nil); !errors.Is(err, envelope.ErrFormat) {
				t.Fatalf("got %v, want ErrFormat", err)
			}
		})
	}
}

func TestProviderMismatch(t *testing.T) {
	ctx := context.Background()
	ps := providers(t)
	sealed, err := ps[0].sealer.Seal(ctx, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps[1].opener.Open(ctx, sealed, nil); !errors.Is(err, envelope.ErrFormat) {
		t.Fatalf("KMS opener on an age blob: %v, want ErrFormat", err)
	}
}

func TestLocalSealerCannotOpen(t *testing.T) {
	ctx := context.Background()
	id, _ := age.GenerateX25519Identity()
	s := envelope.NewLocalSealer(id.Recipient())
	if _, ok := s.(envelope.Opener); ok {
		t.Fatal("local sealer implements Opener")
	}
	if _, ok := reflect.TypeOf(s).MethodByName("Open"); ok {
		t.Fatal("local sealer has an Open method")
	}
	sealed, err := s.Seal(ctx, []byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Everything the sealing side knows (the recipient, which is also the
	// blob's key ID) does not unwrap the data key: age requires the identity.
	l := parseLayout(t, sealed)
	if l.keyID != id.Recipient().String() {
		t.Fatalf("key ID %q, want the recipient", l.keyID)
	}
	if _, err := age.Decrypt(bytes.NewReader(l.wrapped)); err == nil {
		t.Fatal("age decrypted the wrapped key without an identity")
	}
	// A different identity fails (it is told which recipient to use).
	other, _ := age.GenerateX25519Identity()
	if _, err := envelope.NewLocalOpener(other).Open(ctx, sealed, nil); !errors.Is(err, envelope.ErrAuth) || !errors.Is(err, envelope.ErrWrongKey) {
		t.Fatalf("wrong identity: %v, want ErrWrongKey (and ErrAuth)", err)
	}
	if _, err := envelope.NewLocalOpener(id).Open(ctx, sealed, nil); err != nil {
		t.Fatalf("right identity: %v", err)
	}
}

func TestFreshDataKeyPerSecret(t *testing.T) {
	ctx := context.Background()
	ec := recordContext(testPubkey)
	for _, p := range providers(t) {
		t.Run(p.name, func(t *testing.T) {
			pt := []byte("same plaintext")
			a, err := p.sealer.Seal(ctx, pt, ec)
			if err != nil {
				t.Fatal(err)
			}
			b, err := p.sealer.Seal(ctx, pt, ec)
			if err != nil {
				t.Fatal(err)
			}
			la, lb := parseLayout(t, a), parseLayout(t, b)
			if bytes.Equal(la.wrapped, lb.wrapped) {
				t.Error("same wrapped data key twice")
			}
			if bytes.Equal(a[la.nonceOff:la.nonceOff+12], b[lb.nonceOff:lb.nonceOff+12]) {
				t.Error("same nonce twice")
			}
			if bytes.Equal(a[la.nonceOff+12:], b[lb.nonceOff+12:]) {
				t.Error("same ciphertext twice")
			}
		})
	}
}

func TestSealDoesNotMutateInput(t *testing.T) {
	ctx := context.Background()
	for _, p := range providers(t) {
		t.Run(p.name, func(t *testing.T) {
			pt := []byte("do not touch")
			ec := recordContext(testPubkey)
			ptCopy, ecCopy := bytes.Clone(pt), maps.Clone(ec)
			sealed, err := p.sealer.Seal(ctx, pt, ec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pt, ptCopy) || !maps.Equal(ec, ecCopy) {
				t.Fatal("Seal modified its input")
			}
			sealedCopy := bytes.Clone(sealed)
			if _, err := p.opener.Open(ctx, sealed, ec); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sealed, sealedCopy) || !maps.Equal(ec, ecCopy) {
				t.Fatal("Open modified its input")
			}
		})
	}
}

func TestCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, p := range providers(t) {
		if _, err := p.sealer.Seal(ctx, []byte("x"), nil); !errors.Is(err, context.Canceled) {
			t.Errorf("%s Seal: %v", p.name, err)
		}
		if _, err := p.opener.Open(ctx, []byte("x"), nil); !errors.Is(err, context.Canceled) {
			t.Errorf("%s Open: %v", p.name, err)
		}
	}
}

func TestPlaintextTooLarge(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	s := envelope.NewLocalSealer(id.Recipient())
	if _, err := s.Seal(context.Background(), make([]byte, envelope.MaxSealedSize-100), nil); !errors.Is(err, envelope.ErrFormat) {
		t.Fatalf("got %v, want ErrFormat", err)
	}
}

func TestNilProviders(t *testing.T) {
	ctx := context.Background()
	for name, s := range map[string]envelope.Sealer{
		"local nil recipient": envelope.NewLocalSealer(nil),
		"kms nil client":      envelope.NewKMSSealer(nil, "k"),
		"kms empty key":       envelope.NewKMSSealer(envelopetest.NewKMS(), ""),
	} {
		if _, err := s.Seal(ctx, []byte("x"), nil); !errors.Is(err, envelope.ErrProvider) {
			t.Errorf("%s: %v, want ErrProvider", name, err)
		}
	}
}

func ExampleNewLocalSealer() {
	ctx := context.Background()
	// The opening side keeps the identity (see LoadOrCreateIdentity); the
	// generating side is given only the public recipient.
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		panic(err)
	}
	sealer := envelope.NewLocalSealer(identity.Recipient())
	opener := envelope.NewLocalOpener(identity)

	ec := envelope.Context{
		"pubkey":  "a99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c",
		"purpose": "eth-validator-secret",
	}
	sealed, err := sealer.Seal(ctx, []byte("validator secret"), ec)
	if err != nil {
		panic(err)
	}
	secret, err := opener.Open(ctx, sealed, ec)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s\n", secret)
	clear(secret)

	ec["pubkey"] = "b0" + ec["pubkey"][2:] // another record
	_, err = opener.Open(ctx, sealed, ec)
	fmt.Println(err)
	// Output:
	// validator secret
	// envelope: message authentication failed
}

// TestSealerKeyID: every Sealer names its wrapping key through the interface
// (no type switch, no %T), and the name agrees with the key ID the sealed
// blob records at offset 8 (parsed per doc.go, not by the package).
func TestSealerKeyID(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	fake := envelopetest.NewKMS()
	arn := fake.CreateKey()
	for _, tc := range []struct {
		name     string
		s        envelope.Sealer
		want     string
		inBlobID string
	}{
		{"age", envelope.NewLocalSealer(id.Recipient()), "age-x25519:" + id.Recipient().String(), id.Recipient().String()},
		{"kms", envelope.NewKMSSealer(fake, arn), "kms:" + arn, arn},
		// A wrapper that embeds the interface forwards KeyID.
		{"wrapped", struct{ envelope.Sealer }{envelope.NewLocalSealer(id.Recipient())}, "age-x25519:" + id.Recipient().String(), id.Recipient().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.KeyID(); got != tc.want {
				t.Fatalf("KeyID() = %q, want %q", got, tc.want)
			}
			b, err := tc.s.Seal(t.Context(), []byte("secret"), recordContext(testPubkey))
			if err != nil {
				t.Fatal(err)
			}
			if got := parseLayout(t, b).keyID; got != tc.inBlobID {
				t.Fatalf("blob key id %q, want %q", got, tc.inBlobID)
			}
		})
	}
}

// TestWrongRecipientIsNamed: an identity given secrets sealed to another
// recipient is told so, with both recipients (the one the blob's header
// records, read here per doc.go, and its own), not "message authentication
// failed"; a header whose key id is damaged into a non-recipient still
// gets exactly ErrAuth.
func TestWrongRecipientIsNamed(t *testing.T) {
	ctx := t.Context()
	sealedTo, _ := age.GenerateX25519Identity()
	mine, _ := age.GenerateX25519Identity()
	sealed, err := envelope.NewLocalSealer(sealedTo.Recipient()).Seal(ctx, []byte("secret"), recordContext(testPubkey))
	if err != nil {
		t.Fatal(err)
	}
	_, err = envelope.NewLocalOpener(mine).Open(ctx, sealed, recordContext(testPubkey))
	var wk *envelope.WrongKeyError
	if !errors.As(err, &wk) {
		t.Fatalf("%v, want a *WrongKeyError", err)
	}
	if header := parseLayout(t, sealed).keyID; wk.SealedTo != header || header != sealedTo.Recipient().String() {
		t.Fatalf("SealedTo %q, header %q, want %q", wk.SealedTo, header, sealedTo.Recipient())
	}
	if wk.Have != mine.Recipient().String() {
		t.Fatalf("Have %q, want %q", wk.Have, mine.Recipient())
	}
	msg := err.Error()
	if !strings.Contains(msg, sealedTo.Recipient().String()) || !strings.Contains(msg, mine.Recipient().String()) ||
		strings.Contains(msg, "authentication") || strings.Contains(msg, "\n") {
		t.Fatalf("message %q: want both recipients on one line, no authentication failure", msg)
	}
	if strings.Contains(msg, "AGE-SECRET-KEY") {
		t.Fatalf("message leaks an identity: %q", msg)
	}
	// Damage one character of the recorded recipient: exactly ErrAuth,
	// for this identity and for the right one.
	bad := bytes.Clone(sealed)
	bad[8+10] ^= 0x01
	for name, id := range map[string]*age.X25519Identity{"wrong identity": mine, "right identity": sealedTo} {
		if _, err := envelope.NewLocalOpener(id).Open(ctx, bad, recordContext(testPubkey)); err != envelope.ErrAuth {
			t.Fatalf("%s, damaged key id: %v, want exactly ErrAuth", name, err)
		}
	}
}
