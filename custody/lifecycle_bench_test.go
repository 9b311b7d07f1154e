//go:build !ethkeygen_fuzzonly

package custody

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
)

// BenchmarkLifecycleOverhead measures, in one run on the embedded default,
// what the lifecycle adds to generation: signing each record's
// authenticator (timed by signing every generated record again) and the
// request's export (verifying every authenticator and deposit, claiming
// each key in the ledger, freezing the export, building the file). It
// reports "lifecycle-overhead" = (sign + export) / (generate - sign):
// the bars are 0.02 for keystore format and 0.15 for raw.
//
//	go test -run '^$' -bench LifecycleOverhead -benchtime 200x ./custody   (raw)
func BenchmarkLifecycleOverhead(b *testing.B) {
	for _, format := range []SecretFormat{FormatRaw, FormatKeystore} {
		b.Run(string(format), func(b *testing.B) {
			n := max(b.N, 4)
			if format == FormatKeystore {
				n = max(min(b.N, 8), 4) // real scrypt: ~0.6 s of a core each
			}
			b.StopTimer()
			dir := b.TempDir()
			st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "ethkeygen.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			ledger, err := sqlitestore.OpenLedger(context.Background(), filepath.Join(dir, "ethkeygen.db.ledger"))
			if err != nil {
				b.Fatal(err)
			}
			defer ledger.Close()
			signer, verifier := testKeys(b)
			id, _ := age.GenerateX25519Identity()
			g, err := NewGenerator(st, envelope.NewLocalSealer(id.Recipient()), signer)
			if err != nil {
				b.Fatal(err)
			}
			cust, err := NewCustodian(st, ledger, verifier)
			if err != nil {
				b.Fatal(err)
			}
			a := mustAddress("0x0f51bb10119727a7e5eA3538074fb341F56B09Ad")
			req := Request{ID: fmt.Sprintf("bench-%s-%d", format, n), Count: n, Network: depositdata.Hoodi, Format: format,
				Withdrawal: Withdrawal{Address: &a}}
			b.StartTimer()

			t0 := time.Now()
			res, err := g.Generate(context.Background(), req, nil)
			if err != nil {
				b.Fatal(err)
			}
			generate := time.Since(t0)

			var recs []*store.Record
			for _, v := range res.Validators {
				rec, err := st.Get(context.Background(), v.Pubkey)
				if err != nil {
					b.Fatal(err)
				}
				recs = append(recs, rec)
			}
			t1 := time.Now()
			for _, rec := range recs {
				if err := signRecord(context.Background(), signer, rec); err != nil {
					b.Fatal(err)
				}
			}
			sign := time.Since(t1)

			t2 := time.Now()
			exp, err := cust.Export(context.Background(), ExportRequest{RequestID: req.ID, Pubkeys: res.Pubkeys(), Withdrawal: Withdrawal{Address: &a}})
			if err != nil || len(exp.Deposits) != n {
				b.Fatalf("export: %v", err)
			}
			export := time.Since(t2)

			b.ReportMetric(float64(n)/generate.Seconds(), "validators/s")
			b.ReportMetric((sign+export).Seconds()/(generate-sign).Seconds(), "lifecycle-overhead")
		})
	}
}
