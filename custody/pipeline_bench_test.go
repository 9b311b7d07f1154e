//go:build !ethkeygen_fuzzonly

package custody

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/keygen/keystore"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/dynamostore"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
)

// benchGenerate runs one request of b.N validators (at least 2·cores) and
// reports validators/s and raw-kdf-ratio = (bare scrypt runs/s on all
// cores) / (validators/s), measured in the same run.
func benchGenerate(b *testing.B, st store.Store, sealer envelope.Sealer, format SecretFormat) {
	b.StopTimer()
	cores := runtime.GOMAXPROCS(0)
	raw := rawKDFRate(b, keystore.Scrypt, cores)
	signer, _ := testKeys(b)
	g, err := NewGenerator(st, sealer, signer)
	if err != nil {
		b.Fatal(err)
	}
	n := max(b.N, 2*cores)
	req := Request{ID: fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), n), Count: n, Network: depositdata.Hoodi, Format: format}
	b.StartTimer()
	start := time.Now()
	if _, err := g.Generate(context.Background(), req, nil); err != nil {
		b.Fatal(err)
	}
	rate := float64(n) / time.Since(start).Seconds()
	b.ReportMetric(rate, "validators/s")
	b.ReportMetric(raw/rate, "raw-kdf-ratio")
}

// BenchmarkGenerateEmbedded: the whole pipeline (derive, keystore, deposit,
// verify, seal, store) on the embedded default (SQLite + age).
func BenchmarkGenerateEmbedded(b *testing.B) {
	for _, format := range []SecretFormat{FormatKeystore, FormatRaw} {
		b.Run(string(format), func(b *testing.B) {
			st, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			id, _ := age.GenerateX25519Identity()
			benchGenerate(b, st, envelope.NewLocalSealer(id.Recipient()), format)
		})
	}
}

// BenchmarkGenerateAWS: the same against local-kms and DynamoDB Local
// (make test starts them; set ETHKEYGEN_KMS_ENDPOINT and
// ETHKEYGEN_DYNAMODB_ENDPOINT to run it by hand).
func BenchmarkGenerateAWS(b *testing.B) {
	kmsCfg := testenv.AWSConfig(b, testenv.KMSEndpoint(b))
	ddbCfg := testenv.AWSConfig(b, testenv.DynamoDBEndpoint(b))
	key := testenv.NewKMSKey(b, kmsCfg)
	for _, format := range []SecretFormat{FormatKeystore, FormatRaw} {
		b.Run(string(format), func(b *testing.B) {
			table := fmt.Sprintf("bench-%d", time.Now().UnixNano())
			client := dynamodb.NewFromConfig(ddbCfg)
			if err := dynamostore.CreateTable(context.Background(), client, table); err != nil {
				b.Fatal(err)
			}
			st, err := dynamostore.New(client, table)
			if err != nil {
				b.Fatal(err)
			}
			benchGenerate(b, st, envelope.NewKMSSealer(kms.NewFromConfig(kmsCfg), key), format)
		})
	}
}
