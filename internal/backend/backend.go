// Package backend turns adapter configuration (flags, environment) into the
// store, sealers and openers the pipeline uses: the embedded default (one
// SQLite file and a local age identity) or AWS (DynamoDB and KMS), in any
// combination. It is the one place adapters share this wiring.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/ethkeygen/ethkeygen/envelope"
	"github.com/ethkeygen/ethkeygen/store"
	"github.com/ethkeygen/ethkeygen/store/dynamostore"
	"github.com/ethkeygen/ethkeygen/store/sqlitestore"
)

// DefaultDBPath is the embedded store of the CLI.
const DefaultDBPath = "ethkeygen.db"

// Config selects the backends.
type Config struct {
	DBPath string // embedded store file, used when DynamoDBTable is empty
	// ExistingStore: the embedded store file must exist already (commands
	// that read or export records): a deleted or moved store is an error,
	// not a new empty store.
	ExistingStore bool
	// ReadOnlyRecords: open the embedded records file read-only (implies
	// ExistingStore): for every command that writes no record.
	ReadOnlyRecords bool
	// ReadOnlyLedger: open an existing embedded ledger file read-only
	// (list); a missing one is created as usual.
	ReadOnlyLedger bool
	DynamoDBTable  string // DynamoDB table: use DynamoDB
	KMSKeyID       string // KMS key ARN or alias: seal with KMS
	Recipient      string // age recipient (age1...): seal locally to it
	KeyDir         string // where the local identity and recipient files live
	Region         string // AWS region (else the standard AWS environment)

	// Managed is set by the deployed adapters (the Lambda function, the
	// enclave's parent): the AWS configuration ignores the shared config and
	// credentials files, so a profile's endpoint_url or ca_bundle cannot
	// redirect the SDK either. Call awsenv.RefuseEndpointOverrides first.
	Managed bool

	// Separate key for mnemonics (optional): a KMS key or an age recipient.
	MnemonicKMSKeyID  string
	MnemonicRecipient string

	// The lifecycle ledger (default: beside the store) and the generator's
	// record-signing key (default: the local key in KeyDir).
	LedgerPath   string
	LedgerTable  string
	SigningKeyID string // KMS asymmetric signing key (ECC_NIST_P256)

	// Notify receives one-time notices (e.g. where a new identity was created).
	Notify func(string)

	awsOnce sync.Once
	awsCfg  aws.Config
	awsErr  error
}

// ErrNoKeyDir reports that there is no key directory to use: no --key-dir,
// no ETHKEYGEN_HOME, and no home (HOME unset or relative, and no absolute
// XDG_CONFIG_HOME).
var ErrNoKeyDir = errors.New("no key directory: HOME is unset (or not an absolute path); pass --key-dir DIR or set ETHKEYGEN_HOME")

// DefaultKeyDir is $ETHKEYGEN_HOME, else the user config dir's ethkeygen
// ($XDG_CONFIG_HOME/ethkeygen or $HOME/.config/ethkeygen). Without either
// it fails with ErrNoKeyDir rather than falling back to a directory
// relative to the current one (two working directories would then hold
// two identities).
func DefaultKeyDir() (string, error) {
	if d := os.Getenv("ETHKEYGEN_HOME"); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil || !filepath.IsAbs(d) {
		return "", ErrNoKeyDir
	}
	return filepath.Join(d, "ethkeygen"), nil
}

// KeyDirPath is the directory of the local identity, recipient and generator
// key files: KeyDir if set, else DefaultKeyDir.
func (c *Config) KeyDirPath() (string, error) {
	if c.KeyDir != "" {
		return c.KeyDir, nil
	}
	return DefaultKeyDir()
}

// IdentityPath is the local identity file (the decryption key of the
// embedded default).
func (c *Config) IdentityPath() (string, error) { return c.keyFile("identity.txt") }

// RecipientPath is the local recipient file (public).
func (c *Config) RecipientPath() (string, error) { return c.keyFile("recipient.txt") }

func (c *Config) keyFile(name string) (string, error) {
	d, err := c.KeyDirPath()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, name), nil
}

// AWS loads the AWS configuration once: the standard chain (environment,
// profiles, instance role), AWS_ENDPOINT_URL_* included; when Managed, no
// shared config or credentials file.
func (c *Config) AWS(ctx context.Context) (aws.Config, error) {
	c.awsOnce.Do(func() {
		var opts []func(*config.LoadOptions) error
		if c.Managed {
			opts = append(opts, config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}))
		}
		if c.Region != "" {
			opts = append(opts, config.WithRegion(c.Region))
		}
		c.awsCfg, c.awsErr = config.LoadDefaultConfig(ctx, opts...)
		if c.awsErr == nil && c.awsCfg.Region == "" {
			c.awsErr = errors.New("no AWS region: pass --region or set AWS_REGION")
		}
	})
	return c.awsCfg, c.awsErr
}

// OpenStore opens DynamoDB when a table is configured, else the embedded
// store file.
func (c *Config) OpenStore(ctx context.Context) (store.Store, error) {
	if c.DynamoDBTable != "" {
		cfg, err := c.AWS(ctx)
		if err != nil {
			return nil, err
		}
		return nonNil[store.Store](dynamostore.New(dynamodb.NewFromConfig(cfg), c.DynamoDBTable))
	}
	path := c.DBPath
	if path == "" {
		path = DefaultDBPath
	}
	var opts []sqlitestore.Option
	if c.ExistingStore {
		opts = append(opts, sqlitestore.MustExist())
	}
	if c.ReadOnlyRecords {
		opts = append(opts, sqlitestore.ReadOnly())
	}
	return nonNil[store.Store](sqlitestore.Open(ctx, path, opts...))
}

// nonNil returns v as the interface I, or a nil I with err: never a typed
// nil pointer inside I, whose Close a caller cleaning up after an error
// would call.
func nonNil[I any, T comparable](v T, err error) (I, error) {
	var zero I
	var nilT T
	if err != nil || v == nilT {
		return zero, err
	}
	return any(v).(I), nil
}

// Sealers returns the sealer for validator secrets and, when configured,
// the separate sealer for mnemonics (nil otherwise).
func (c *Config) Sealers(ctx context.Context) (secret, mnemonic envelope.Sealer, err error) {
	if secret, err = c.sealer(ctx, c.KMSKeyID, c.Recipient, true); err != nil {
		return nil, nil, err
	}
	if c.MnemonicKMSKeyID != "" || c.MnemonicRecipient != "" {
		if mnemonic, err = c.sealer(ctx, c.MnemonicKMSKeyID, c.MnemonicRecipient, false); err != nil {
			return nil, nil, err
		}
	}
	return secret, mnemonic, nil
}

func (c *Config) sealer(ctx context.Context, kmsKey, recipient string, useDefault bool) (envelope.Sealer, error) {
	switch {
	case kmsKey != "" && recipient != "":
		return nil, errors.New("choose a KMS key or an age recipient, not both")
	case kmsKey != "":
		cfg, err := c.AWS(ctx)
		if err != nil {
			return nil, err
		}
		return envelope.NewKMSSealer(kms.NewFromConfig(cfg), kmsKey), nil
	case recipient != "":
		r, err := age.ParseX25519Recipient(recipient)
		if err != nil {
			return nil, fmt.Errorf("age recipient %q: %w", recipient, err)
		}
		return envelope.NewLocalSealer(r), nil
	case useDefault:
		r, err := c.localRecipient()
		if err != nil {
			return nil, err
		}
		return envelope.NewLocalSealer(r), nil
	}
	return nil, errors.New("no key configured")
}

// localRecipient reads recipient.txt; on first use it creates the identity
// (0600) and the recipient file and says where, once.
func (c *Config) localRecipient() (*age.X25519Recipient, error) {
	rpath, err := c.RecipientPath()
	if err != nil {
		return nil, err
	}
	r, err := envelope.LoadRecipient(rpath)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return r, err
	}
	ipath, err := c.IdentityPath()
	if err != nil {
		return nil, err
	}
	id, created, err := envelope.LoadOrCreateIdentity(ipath)
	if err != nil {
		return nil, err
	}
	if err := envelope.WriteRecipientFile(rpath, id.Recipient()); err != nil {
		return nil, err
	}
	if created && c.Notify != nil {
		c.Notify(fmt.Sprintf("created the local decryption identity %s (mode 0600; keep it away from the generator, which needs only %s)",
			ipath, rpath))
	}
	return id.Recipient(), nil
}

// Opener returns the decrypting side: KMS when useKMS, else the local
// identity (identityFile, or the default one).
func (c *Config) Opener(ctx context.Context, useKMS bool, identityFile string) (envelope.Opener, error) {
	if useKMS {
		cfg, err := c.AWS(ctx)
		if err != nil {
			return nil, err
		}
		return envelope.NewKMSOpener(kms.NewFromConfig(cfg)), nil
	}
	if identityFile == "" {
		p, err := c.IdentityPath()
		if err != nil {
			return nil, err
		}
		identityFile = p
	}
	id, err := envelope.LoadIdentity(identityFile)
	if err != nil {
		return nil, err
	}
	return envelope.NewLocalOpener(id), nil
}
