// Command library shows how a Go service uses ethkeygen as a library: it
// generates validators into an embedded store, sealed to an age recipient
// and signed by the generator's key; hands their deposits out through an
// export (the only way a deposit leaves custody, once, to the withdrawal
// address the operator states); then, on the side that holds the identity,
// claims one for a signer and opens it. Run it with: go run ./examples/library
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"filippo.io/age"

	"github.com/ethkeygen/ethkeygen/custody"
	"github.com/ethkeygen/ethkeygen/depositdata"
	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
)

func main() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ethkeygen-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The decrypting side owns the identity; the generator gets only its recipient.
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		log.Fatal(err)
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "ethkeygen.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	// The lifecycle ledger lives apart from the records: a records writer
	// or a restored backup cannot change it.
	ledger, err := sqlitestore.OpenLedger(ctx, filepath.Join(dir, "ethkeygen.db.ledger"))
	if err != nil {
		log.Fatal(err)
	}
	defer ledger.Close()
	// The generator signs every record; the other sides need only the public half.
	signer, _, err := provenance.LoadOrCreateLocalSigner(filepath.Join(dir, "keys"))
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := provenance.LoadLocalVerifier(filepath.Join(dir, "keys"))
	if err != nil {
		log.Fatal(err)
	}

	gen, err := custody.NewGenerator(st, envelope.NewLocalSealer(identity.Recipient()), signer)
	if err != nil {
		log.Fatal(err)
	}
	addr, err := depositdata.ParseAddress("0x0f51bb10119727a7e5eA3538074fb341F56B09Ad", false)
	if err != nil {
		log.Fatal(err)
	}
	res, err := gen.Generate(ctx, custody.Request{
		ID:         "example-1", // the idempotency key: repeating it returns the same validators
		Count:      2,
		Network:    depositdata.Hoodi,
		Withdrawal: custody.Withdrawal{Address: &addr},
		Format:     custody.FormatRaw, // no KDF at generation; see README "Secret formats"
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	cust, err := custody.NewCustodian(st, ledger, verifier)
	if err != nil {
		log.Fatal(err)
	}
	exp, err := cust.Export(ctx, custody.ExportRequest{RequestID: "example-1", Withdrawal: custody.Withdrawal{Address: &addr}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d validators, export %s: %s of %d bytes\n", len(res.Validators), exp.Export.ID, exp.FileName, len(exp.File))

	// Protected compute: claim a validator for a signer, then open it.
	claims, err := cust.ClaimForSigner(ctx, custody.LoadRequest{Signer: "example-signer", Pubkeys: res.Pubkeys()[:1]})
	if err != nil {
		log.Fatal(err)
	}
	secret, err := cust.Opener(envelope.NewLocalOpener(identity)).OpenRecord(ctx, claims.Items[0].Record)
	if err != nil {
		log.Fatal(err)
	}
	defer secret.Destroy()
	fmt.Printf("opened 0x%s… (%v)\n", secret.Pubkey[:12], secret) // the secret prints [REDACTED]
}
