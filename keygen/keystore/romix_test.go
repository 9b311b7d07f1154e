package keystore

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/scrypt"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestScryptRFC7914Vectors: scryptContext gives RFC 7914 section 12's
// outputs (the first three; the fourth needs 1 GiB, which go test -race
// ./... on a shared machine should not take: TestScryptMatchesXCrypto covers
// large r and N against x/crypto instead).
func TestScryptRFC7914Vectors(t *testing.T) {
	for _, v := range []struct {
		pw, salt string
		n, r, p  int
		want     string
	}{
		{"", "", 16, 1, 1, `77 d6 57 62 38 65 7b 20 3b 19 ca 42 c1 8a 04 97 f1 6b 48 44 e3 07 4a e8 df df fa 3f ed e2 14 42
			fc d0 06 9d ed 09 48 f8 32 6a 75 3a 0f c8 1f 17 e8 d3 e0 fb 2e 0d 36 28 cf 35 e2 0c 38 d1 89 06`},
		{"password", "NaCl", 1024, 8, 16, `fd ba be 1c 9d 34 72 00 78 56 e7 19 0d 01 e9 fe 7c 6a d7 cb c8 23 78 30 e7 73 76 63 4b 37 31 62
			2e af 30 d9 2e 22 a3 88 6f f1 09 27 9d 98 30 da c7 27 af b9 4a 83 ee 6d 83 60 cb df a2 cc 06 40`},
		{"pleaseletmein", "SodiumChloride", 16384, 8, 1, `70 23 bd cb 3a fd 73 48 46 1c 06 cd 81 fd 38 eb fd a8 fb ba 90 4f 8e 3e a9 b5 43 f6 54 5d a1 f2
			d5 43 29 55 61 3f 0f cf 62 d4 97 05 24 2a 9a f9 e6 1e 85 dc 0d 65 1e 40 df cf 01 7b 45 57 58 87`},
	} {
		got, err := scryptContext(context.Background(), []byte(v.pw), []byte(v.salt), v.n, v.r, v.p, 64)
		if err != nil {
			t.Fatal(err)
		}
		if want := unhex(t, v.want); !bytes.Equal(got, want) {
			t.Errorf("scrypt(%q, %q, %d, %d, %d) = %x, want %x", v.pw, v.salt, v.n, v.r, v.p, got, want)
		}
	}
}

// TestScryptMatchesXCrypto: the same output as golang.org/x/crypto/scrypt
// over a spread of parameters, key lengths and inputs.
func TestScryptMatchesXCrypto(t *testing.T) {
	for _, c := range []struct{ n, r, p, dk int }{{2, 1, 1, 32}, {4, 2, 3, 16}, {256, 1, 2, 64}, {1024, 3, 1, 32}, {512, 8, 2, 48}, {2048, 32, 1, 32}} {
		pw, salt := []byte("pw"+strings.Repeat("x", c.n%7)), []byte("salt"+strings.Repeat("y", c.r))
		want, err := scrypt.Key(pw, salt, c.n, c.r, c.p, c.dk)
		if err != nil {
			t.Fatal(err)
		}
		got, err := scryptContext(context.Background(), pw, salt, c.n, c.r, c.p, c.dk)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%+v: %x, x/crypto %x (%v)", c, got, want, err)
		}
	}
}

// TestScryptCancels: a context cancelled during the work stops it (with
// the context's error), at a cost that takes seconds.
func TestScryptCancels(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := scryptContext(ctx, []byte("pw"), []byte("salt"), 1<<18, 8, 4, 32); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// checkCountingCtx reports itself done from its doneAt-th Err call on, and
// counts the calls: the test sees where scryptContext looks.
type checkCountingCtx struct {
	context.Context
	calls, doneAt int
}

func (c *checkCountingCtx) Err() error {
	c.calls++
	if c.doneAt > 0 && c.calls >= c.doneAt {
		return context.Canceled
	}
	return nil
}

// TestScryptChecksEveryBlockRun: the context is looked at before the work
// and every cancelEvery ROMix iterations in both loops of every lane, and
// the work stops at the first look that finds it done: after a
// cancellation at most cancelEvery iterations run (no clock involved).
func TestScryptChecksEveryBlockRun(t *testing.T) {
	const n, r, p = 1 << 14, 1, 2
	looks := 1 + p*2*(n/cancelEvery)
	c := &checkCountingCtx{Context: context.Background()}
	got, err := scryptContext(c, []byte("pw"), []byte("salt"), n, r, p, 32)
	if err != nil {
		t.Fatal(err)
	}
	if c.calls != looks {
		t.Fatalf("%d looks at the context, want %d (one before the work, one every %d iterations)", c.calls, looks, cancelEvery)
	}
	want, err := scrypt.Key([]byte("pw"), []byte("salt"), n, r, p, 32)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%x, x/crypto %x (%v)", got, want, err)
	}
	for _, doneAt := range []int{1, 2, looks / 2, looks/2 + 1, looks} {
		c := &checkCountingCtx{Context: context.Background(), doneAt: doneAt}
		if _, err := scryptContext(c, []byte("pw"), []byte("salt"), n, r, p, 32); !errors.Is(err, context.Canceled) {
			t.Fatalf("done at look %d: err = %v", doneAt, err)
		}
		if c.calls != doneAt {
			t.Fatalf("done at look %d: went on to look %d", doneAt, c.calls)
		}
	}
}

func BenchmarkScrypt(b *testing.B) {
	for _, impl := range []struct {
		name string
		f    func() error
	}{
		{"x-crypto", func() error {
			_, err := scrypt.Key([]byte("pw"), []byte("salt"), ScryptN, ScryptR, ScryptP, 32)
			return err
		}},
		{"cancellable", func() error {
			_, err := scryptContext(context.Background(), []byte("pw"), []byte("salt"), ScryptN, ScryptR, ScryptP, 32)
			return err
		}},
	} {
		b.Run(impl.name, func(b *testing.B) {
			for b.Loop() {
				if err := impl.f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
