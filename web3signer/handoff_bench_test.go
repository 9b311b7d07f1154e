package web3signer_test

import (
	"context"
	"fmt"
	"github.com/ethkeygen/ethkeygen/provenance"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/scrypt"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
	"github.com/ethkeygen/ethkeygen/web3signer"
	"github.com/ethkeygen/ethkeygen/web3signer/keymanager"
)

// bareScryptRate is the bare-scrypt path measured in the same run: EIP-2335
// default scrypt runs (n=2^18, r=8, p=1) per second on all cores. Today's
// hand-off costs about one such run per key (a keystore built or decrypted
// per key), and Web3Signer pays one more per key at load.
func bareScryptRate(b *testing.B) float64 {
	cores := runtime.GOMAXPROCS(0)
	salt := make([]byte, 32)
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 * cores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := scrypt.Key([]byte("password"), salt, keystore.ScryptN, keystore.ScryptR, keystore.ScryptP, 32); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	return float64(2*cores) / time.Since(start).Seconds()
}

type benchSet struct {
	st   store.Store
	recs []*store.Record
	op   envelope.Opener
}

// benchKeys is the generator key pair of the benchmark's records.
var benchKeys = sync.OnceValues(func() (provenance.Signer, provenance.Verifier) {
	dir, err := os.MkdirTemp("", "ethkeygen-bench-keys-")
	if err != nil {
		panic(err)
	}
	s, _, err := provenance.LoadOrCreateLocalSigner(dir)
	if err != nil {
		panic(err)
	}
	v, err := provenance.LoadLocalVerifier(dir)
	if err != nil {
		panic(err)
	}
	return s, v
})

// benchSets caches generated records across sub-benchmarks (generation is
// setup, and slow); the stores live in a directory removed at exit.
var (
	benchMu   sync.Mutex
	benchSets = map[string]*benchSet{}
	benchDir  = sync.OnceValue(func() string {
		d, err := os.MkdirTemp("", "ethkeygen-bench-")
		if err != nil {
			panic(err)
		}
		return d
	})
)

func TestMain(m *testing.M) {
	code := m.Run()
	benchMu.Lock()
	for _, s := range benchSets {
		s.st.Close()
	}
	benchMu.Unlock()
	if len(benchSets) > 0 {
		os.RemoveAll(benchDir())
	}
	os.Exit(code)
}

// sealedRecords generates n validators of format with the real pipeline
// into an embedded store sealed with a local age key (the setup, not
// timed), and returns the store, its records and an opener. apart seals
// each mnemonic under a second key (--mnemonic-recipient), so opening a
// record does not re-derive the key from its mnemonic.
func sealedRecords(b *testing.B, format custody.SecretFormat, apart bool, n int) (store.Store, []*store.Record, envelope.Opener) {
	b.Helper()
	key := fmt.Sprintf("%s-%v-%d", format, apart, n)
	benchMu.Lock()
	defer benchMu.Unlock()
	if s := benchSets[key]; s != nil {
		return s.st, s.recs, s.op
	}
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(benchDir(), key+".db"))
	if err != nil {
		b.Fatal(err)
	}
	id, _ := age.GenerateX25519Identity()
	var opts []custody.Option
	if apart {
		mid, _ := age.GenerateX25519Identity()
		opts = append(opts, custody.WithMnemonicSealer(envelope.NewLocalSealer(mid.Recipient())))
	}
	signer, _ := benchKeys()
	gen, err := custody.NewGenerator(st, envelope.NewLocalSealer(id.Recipient()), signer, opts...)
	if err != nil {
		b.Fatal(err)
	}
	req := custody.Request{ID: fmt.Sprintf("bench-%s-%d", format, n), Count: n, Network: depositdata.Hoodi, Format: format, KeysPerMnemonic: custody.MaxKeysPerMnemonic}
	if _, err := gen.Generate(ctx, req, nil); err != nil {
		b.Fatal(err)
	}
	var recs []*store.Record
	for r, err := range st.Query(ctx, store.Filter{}) {
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(recs) != n {
		b.Fatalf("%d records, want %d", len(recs), n)
	}
	benchSets[key] = &benchSet{st, recs, envelope.NewLocalOpener(id)}
	return st, recs, envelope.NewLocalOpener(id)
}

// BenchmarkHandoff: sealed records to signer-ready, b.N validators in one
// batch: open every record (custody.Opener: decrypt, parse, check the key
// derives the record's pubkey; a keystore-format record runs its scrypt
// once), make its hand-off keystore (pbkdf2, c=1) on every core, then
// either write the key directory with the interchange ("keydir") or
// build the Keymanager API request bodies, 1000 keys each, with their
// interchange ("keymanager"). The mnemonic is sealed apart from the key
// (generate --mnemonic-recipient / --mnemonic-kms-key-id) or inside it
// (the default): then custody's open re-derives the key from the mnemonic
// (BIP-39's PBKDF2 and EIP-2333), which dominates a raw record. Reports validators/s, the bare-scrypt rate
// measured in the same run, and raw-kdf-ratio = (bare scrypt runs/s) /
// (validators/s): the cost of one validator in scrypt runs (today's path
// is about 1, plus about 1 more at Web3Signer's load).
//
//	go test -run '^$' -bench 'Handoff/raw' -benchtime 10000x ./web3signer
//	go test -run '^$' -bench 'Handoff/keystore' -benchtime 40x ./web3signer
func BenchmarkHandoff(b *testing.B) {
	root, _ := web3signer.ParseRoot(hoodiRoot)
	for _, format := range []custody.SecretFormat{custody.FormatRaw, custody.FormatKeystore} {
		for _, mn := range []string{"mnemonic-apart", "mnemonic-inside"} {
			for _, route := range []string{"keydir", "keymanager"} {
				b.Run(string(format)+"/"+mn+"/"+route, func(b *testing.B) {
					n := b.N
					st, recs, op := sealedRecords(b, format, mn == "mnemonic-apart", n)
					_, verifier := benchKeys()
					opener := custody.NewOpener(st, op, verifier)
					workers := runtime.GOMAXPROCS(0) // raw: opening runs no KDF
					if format == custody.FormatKeystore {
						workers = custody.Workers(custody.DefaultMaxMemory, custody.ScryptWorkerMemory)
					}
					scryptRate := bareScryptRate(b)
					dir := filepath.Join(b.TempDir(), "keys")
					b.ResetTimer()
					start := time.Now()

					hs, err := web3signer.PrepareHandoffs(context.Background(), n, workers, func(ctx context.Context, i int) (web3signer.Opened, error) {
						s, err := opener.OpenRecord(ctx, recs[i])
						if err != nil {
							return web3signer.Opened{}, err
						}
						path := ""
						if s.Keystore != nil {
							path = s.Keystore.Path
						}
						return web3signer.Opened{Pubkey: recs[i].Pubkey, SecretKey: s.SigningKey(), Path: path, Release: s.Destroy}, nil
					})
					if err != nil {
						b.Fatal(err)
					}
					hist := make([]web3signer.KeyHistory, n)
					for i, h := range hs {
						hist[i] = web3signer.KeyHistory{Pubkey: h.Pubkey}
					}
					switch route {
					case "keydir":
						ic, err := web3signer.BuildInterchange(root, hist)
						if err != nil {
							b.Fatal(err)
						}
						keys := make([]web3signer.Key, n)
						for i, h := range hs {
							keys[i] = h.Key()
						}
						if err := web3signer.WriteKeyDir(dir, keys); err != nil {
							b.Fatal(err)
						}
						_ = ic // written beside the directory by the caller; its cost is counted
					case "keymanager":
						const batch = 1000
						for lo := 0; lo < n; lo += batch {
							hi := min(lo+batch, n)
							ic, err := web3signer.BuildInterchange(root, hist[lo:hi])
							if err != nil {
								b.Fatal(err)
							}
							kms := make([]keymanager.Keystore, 0, hi-lo)
							for _, h := range hs[lo:hi] {
								kms = append(kms, keymanager.Keystore{JSON: h.JSON, Password: h.Password.UnsafeBytes()})
							}
							body, err := keymanager.EncodeImportRequest(kms, ic)
							if err != nil {
								b.Fatal(err)
							}
							clear(body)
						}
					}
					elapsed := time.Since(start)
					b.StopTimer()
					for _, h := range hs {
						h.Destroy()
					}
					rate := float64(n) / elapsed.Seconds()
					b.ReportMetric(rate, "validators/s")
					b.ReportMetric(scryptRate, "bare-scrypt/s")
					b.ReportMetric(scryptRate/rate, "raw-kdf-ratio")
					b.ReportMetric(elapsed.Seconds()*10000/float64(n), "s/10k-validators")
				})
			}
		}
	}
}
