package backend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/ethkeygen/ethkeygen/provenance"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/dynamostore"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
)

// LedgerSuffix names the embedded ledger file beside the store file, and
// the DynamoDB ledger table beside the records table.
const (
	LedgerFileSuffix  = ".ledger"
	LedgerTableSuffix = "-ledger"
)

// LedgerPathFor is the embedded ledger file of the store file db.
func LedgerPathFor(db string) string { return db + LedgerFileSuffix }

func (c *Config) dbPath() string {
	if c.DBPath == "" {
		return DefaultDBPath
	}
	return c.DBPath
}

// LedgerLocation names the ledger for messages: a table or a file.
func (c *Config) LedgerLocation() string {
	if c.DynamoDBTable != "" {
		return "dynamodb:" + c.ledgerTable()
	}
	return c.ledgerPath()
}

func (c *Config) ledgerTable() string {
	if c.LedgerTable != "" {
		return c.LedgerTable
	}
	return c.DynamoDBTable + LedgerTableSuffix
}

func (c *Config) ledgerPath() string {
	if c.LedgerPath != "" {
		return c.LedgerPath
	}
	return LedgerPathFor(c.dbPath())
}

// OpenLedger opens the lifecycle ledger kept apart from the records: the
// DynamoDB table LedgerTable (default <table>-ledger) beside a DynamoDB
// store, else the file LedgerPath (default <db>.ledger) beside the
// embedded store. Writing or restoring the records cannot change it.
func (c *Config) OpenLedger(ctx context.Context) (store.Ledger, error) {
	if c.DynamoDBTable != "" {
		cfg, err := c.AWS(ctx)
		if err != nil {
			return nil, err
		}
		return nonNil[store.Ledger](dynamostore.NewLedger(dynamodb.NewFromConfig(cfg), c.ledgerTable()))
	}
	var opts []sqlitestore.Option
	if c.ReadOnlyLedger {
		if _, err := os.Lstat(c.ledgerPath()); err == nil {
			opts = append(opts, sqlitestore.ReadOnly())
		}
	}
	l, err := sqlitestore.OpenLedger(ctx, c.ledgerPath(), opts...)
	if errors.Is(err, sqlitestore.ErrNeedsMigration) {
		// A ledger of an older schema: a read-only view cannot read it,
		// so migrate it as every writing command would.
		l, err = sqlitestore.OpenLedger(ctx, c.ledgerPath())
	}
	return nonNil[store.Ledger](l, err)
}

// GeneratorSigner is the generator's record-signing key: the KMS key
// SigningKeyID, else the local Ed25519 key in the key directory (created,
// 0600, on first use).
func (c *Config) GeneratorSigner(ctx context.Context) (provenance.Signer, error) {
	if c.SigningKeyID != "" {
		cfg, err := c.AWS(ctx)
		if err != nil {
			return nil, err
		}
		return provenance.NewKMSSigner(ctx, kms.NewFromConfig(cfg), c.SigningKeyID)
	}
	dir, err := c.keyDirChecked()
	if err != nil {
		return nil, err
	}
	s, created, err := provenance.LoadOrCreateLocalSigner(dir)
	if err != nil {
		return nil, err
	}
	if created && c.Notify != nil {
		c.Notify(fmt.Sprintf("created the generator's record-signing key in %s (generator.key, mode 0600; exporters and loaders need only generator.pub)", dir))
	}
	return s, nil
}

// DeferredGeneratorSigner is GeneratorSigner for SigningKeyID (a key ARN)
// without a KMS call until the first signature (a Lambda's cold start).
func (c *Config) DeferredGeneratorSigner(ctx context.Context) (provenance.Signer, error) {
	if c.SigningKeyID == "" {
		return c.GeneratorSigner(ctx)
	}
	cfg, err := c.AWS(ctx)
	if err != nil {
		return nil, err
	}
	return provenance.NewDeferredKMSSigner(kms.NewFromConfig(cfg), c.SigningKeyID)
}

// GeneratorVerifier is the public half of the generator's key, which every
// export, load and later operation checks records against.
func (c *Config) GeneratorVerifier(ctx context.Context) (provenance.Verifier, error) {
	if c.SigningKeyID != "" {
		cfg, err := c.AWS(ctx)
		if err != nil {
			return nil, err
		}
		return provenance.NewKMSVerifier(ctx, kms.NewFromConfig(cfg), c.SigningKeyID)
	}
	dir, err := c.keyDirChecked()
	if err != nil {
		return nil, err
	}
	return provenance.LoadLocalVerifier(dir)
}

func (c *Config) keyDirChecked() (string, error) { return c.KeyDirPath() }

// Actor names who runs this process, for the ledger's records of who
// changed what: user@host.
func Actor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}
