//go:build !ethkeygen_fuzzonly

package custody

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/keygen"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"golang.org/x/crypto/scrypt"
)

// rawKDFRate measures the bare KDF (no derivation, signing or encryption)
// on `parallel` goroutines at once and returns KDF runs per second. It is
// the yardstick: a validator cannot cost less than one KDF run.
func rawKDFRate(b *testing.B, kdf keystore.KDF, parallel int) float64 {
	const rounds = 2
	salt := make([]byte, 32)
	start := time.Now()
	for range rounds {
		var wg sync.WaitGroup
		for range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if kdf == keystore.Scrypt {
					_, err = scrypt.Key([]byte("password"), salt, keystore.ScryptN, keystore.ScryptR, keystore.ScryptP, 32)
				} else {
					_, err = pbkdf2.Key(sha256.New, "password", salt, keystore.PBKDF2C, 32)
				}
				if err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	return float64(rounds*parallel) / time.Since(start).Seconds()
}

// BenchmarkBuildFromMnemonic reports validators/s and
// "raw-kdf-ratio" = (bare KDF runs/s) / (validators/s) at the same
// parallelism, measured in the same run: 1.00 means a validator costs
// exactly one KDF run; the excess is everything else.
func BenchmarkBuildFromMnemonic(b *testing.B) {
	m, err := keygen.ParseMnemonic("test test test test test test test test test test test waste")
	if err != nil {
		b.Fatal(err)
	}
	seed := m.Seed("")
	password := keygen.NewBytes([]byte("benchmark password"))
	for _, kdf := range []keystore.KDF{keystore.Scrypt, keystore.PBKDF2} {
		for _, cores := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("%s/cores=%d", kdf, cores), func(b *testing.B) {
				b.StopTimer()
				raw := rawKDFRate(b, kdf, cores)
				b.StartTimer()
				start := time.Now()
				_, err := BuildFromMnemonic(context.Background(), MnemonicRequest{
					Seed: seed, Count: max(b.N, cores), Network: depositdata.Hoodi, KDF: kdf, Password: password,
					MaxMemory: int64(cores) * kdfMemory(kdf),
				})
				if err != nil {
					b.Fatal(err)
				}
				rate := float64(max(b.N, cores)) / time.Since(start).Seconds()
				b.ReportMetric(rate, "validators/s")
				b.ReportMetric(raw/rate, "raw-kdf-ratio")
			})
		}
	}
}
