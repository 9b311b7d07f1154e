// Command library shows how a Go service uses ethkeygen as a library: it
// generates validators into an embedded store, sealed to an age recipient,
// and prints their deposit data; then, on the side that holds the identity,
// opens one of them. Run it with: go run ./examples/library
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

	gen, err := custody.NewGenerator(st, envelope.NewLocalSealer(identity.Recipient()))
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
	file, err := depositdata.MarshalFile(res.Deposits())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d validators, Launchpad file of %d bytes\n", len(res.Validators), len(file))

	// Protected compute: open a validator and check it.
	secret, _, err := custody.NewOpener(st, envelope.NewLocalOpener(identity)).Open(ctx, res.Validators[0].Pubkey)
	if err != nil {
		log.Fatal(err)
	}
	defer secret.Destroy()
	fmt.Printf("opened 0x%s… (%v)\n", secret.Pubkey[:12], secret) // the secret prints [REDACTED]
}
