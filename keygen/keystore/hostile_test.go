package keystore_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/keygen/keystore"
)

// withKDF returns an EIP-2335 keystore JSON with the given KDF function and
// params (the cipher and checksum of the ERC's scrypt vector: only the
// KDF's bounds matter here).
func withKDF(function, params string) []byte {
	return []byte(fmt.Sprintf(`{"crypto":{"kdf":{"function":%q,"params":%s,"message":""},`+
		`"checksum":{"function":"sha256","params":{},"message":"d2217fe5f3e9a1e34581ef8a78f7c9928e436d36dacc5e846690a5581e8ea484"},`+
		`"cipher":{"function":"aes-128-ctr","params":{"iv":"264daa3f303d7259501c93d997d84fe6"},"message":"06ae90d55fe0a6e9c5c3bc5b170827b2e5cce3929ed3f116c2811e6366dfe20f"}},`+
		`"description":"","pubkey":"","path":"","uuid":"1d85ae20-35c5-4611-98e8-aa14a633906f","version":4}`, function, params))
}

func scryptKS(n, r, p int) []byte {
	return withKDF("scrypt", fmt.Sprintf(`{"dklen":32,"n":%d,"r":%d,"p":%d,"salt":"d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"}`, n, r, p))
}

func pbkdf2KS(c int) []byte {
	return withKDF("pbkdf2", fmt.Sprintf(`{"dklen":32,"c":%d,"prf":"hmac-sha256","salt":"d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"}`, c))
}

// TestKDFBounds: every cost real tools write is accepted (KDFMemory checks
// the same bounds Decrypt does, without running the KDF); the review's
// hostile n=2^20, r=8, p=16 and its neighbours are refused.
func TestKDFBounds(t *testing.T) {
	for name, c := range map[string]struct {
		ks  []byte
		mem int64 // 0: refused
	}{
		"EIP-2335 default scrypt n=2^18 r=8 p=1": {scryptKS(1<<18, 8, 1), 256<<20 + 128*8 + 256*8},
		"geth light scrypt n=2^12 r=8 p=6":       {scryptKS(1<<12, 8, 6), 4<<20 + 128*8*6 + 256*8},
		"largest allowed n=2^19 r=8 p=2":         {scryptKS(1<<19, 8, 2), 512<<20 + 128*8*2 + 256*8},
		"EIP-2335 default pbkdf2 c=2^18":         {pbkdf2KS(1 << 18), 1 << 10},
		"pbkdf2 c=2^21":                          {pbkdf2KS(1 << 21), 1 << 10},
		"review's hostile n=2^20 r=8 p=16":       {scryptKS(1<<20, 8, 16), 0},
		"n=2^20 r=8 p=1 (1 GiB)":                 {scryptKS(1<<20, 8, 1), 0},
		"n=2^18 r=8 p=16 (work 2^25)":            {scryptKS(1<<18, 8, 16), 0},
		"n=2^19 r=8 p=3 (work above 2^23)":       {scryptKS(1<<19, 8, 3), 0},
		"n=2^16 r=32 p=16 (work 2^25)":           {scryptKS(1<<16, 32, 16), 0},
		"pbkdf2 c=2^24":                          {pbkdf2KS(1 << 24), 0},
		"pbkdf2 c=2^21+1":                        {pbkdf2KS(1<<21 + 1), 0},
	} {
		ks, err := keystore.Parse(c.ks)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		mem, err := ks.KDFMemory()
		switch {
		case c.mem == 0 && !errors.Is(err, keystore.ErrUnsupported):
			t.Errorf("%s: accepted (memory %d, %v)", name, mem, err)
		case c.mem != 0 && (err != nil || mem != c.mem):
			t.Errorf("%s: memory %d, %v; want %d", name, mem, err, c.mem)
		}
		if c.mem == 0 {
			start := time.Now()
			if _, err := ks.DecryptContext(context.Background(), []byte("pw")); !errors.Is(err, keystore.ErrUnsupported) || time.Since(start) > time.Second {
				t.Errorf("%s: DecryptContext %v after %v", name, err, time.Since(start))
			}
		}
	}
}

// TestParseSizeLimit: a keystore file larger than MaxFileSize is refused
// before it is decoded.
func TestParseSizeLimit(t *testing.T) {
	b := scryptKS(1<<18, 8, 1)
	padded := append(b[:len(b)-1:len(b)-1], []byte(`,"description2":"`+strings.Repeat("x", keystore.MaxFileSize)+`"}`)...)
	if _, err := keystore.Parse(padded); !errors.Is(err, keystore.ErrFormat) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized keystore: %v", err)
	}
}

// TestDecryptContextVectors: the cancellable path decrypts the ERC-2335
// vectors to their secrets, and stops on a cancelled context.
func TestDecryptContextVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		ks, err := keystore.Parse(v.Keystore)
		if err != nil {
			t.Fatal(err)
		}
		sk, err := ks.DecryptKeyContext(t.Context(), []byte(v.Password))
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if got := hex.EncodeToString(sk.UnsafeBytes()); got != v.Secret {
			t.Fatalf("%s: secret %s, want %s", v.Name, got, v.Secret)
		}
		sk.Destroy()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := ks.DecryptKeyContext(ctx, []byte(v.Password)); !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: cancelled: %v", v.Name, err)
		}
	}
}
