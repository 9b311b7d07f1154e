package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ethkeygen/ethkeygen/store"
)

// TableAPI is the part of the DynamoDB client CreateTable uses.
type TableAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

var _ TableAPI = (*dynamodb.Client)(nil)

// CreateTableInput returns the definition of the store's table: partition key
// pk (S), the by_request and by_status indexes projecting all attributes,
// on-demand billing. The deployment template in examples/ declares the same.
func CreateTableInput(table string) *dynamodb.CreateTableInput {
	s, n := types.ScalarAttributeTypeS, types.ScalarAttributeTypeN
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrPK), AttributeType: s},
			{AttributeName: aws.String(AttrRequestID), AttributeType: s},
			{AttributeName: aws.String(AttrSlot), AttributeType: n},
			{AttributeName: aws.String(AttrStatus), AttributeType: s},
			{AttributeName: aws.String(AttrCreatedPubkey), AttributeType: s},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(AttrPK), KeyType: types.KeyTypeHash},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			{
				IndexName: aws.String(IndexByRequest),
				KeySchema: []types.KeySchemaElement{
					{AttributeName: aws.String(AttrRequestID), KeyType: types.KeyTypeHash},
					{AttributeName: aws.String(AttrSlot), KeyType: types.KeyTypeRange},
				},
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
			},
			{
				IndexName: aws.String(IndexByStatus),
				KeySchema: []types.KeySchemaElement{
					{AttributeName: aws.String(AttrStatus), KeyType: types.KeyTypeHash},
					{AttributeName: aws.String(AttrCreatedPubkey), KeyType: types.KeyTypeRange},
				},
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
			},
		},
	}
}

// CreateTable creates the store's table (see CreateTableInput) and waits
// until it and its indexes are ACTIVE, or ctx ends. If the table already
// exists it returns an error wrapping store.ErrExists. Tests use it; in
// production the deployment template creates the table.
func CreateTable(ctx context.Context, client TableAPI, table string) error {
	if table == "" {
		return fmt.Errorf("%w: empty table name", store.ErrInvalid)
	}
	return createTable(ctx, client, CreateTableInput(table))
}

// LedgerCreateTableInput returns the definition of the ledger's table:
// partition key pk (S), no sort key, no index, on-demand billing. Point-in-
// time recovery is left to the deployment template (it is not part of
// CreateTable). The deployment template in examples/ declares the same.
func LedgerCreateTableInput(table string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrPK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(AttrPK), KeyType: types.KeyTypeHash},
		},
	}
}

// CreateLedgerTable creates the ledger's table (see LedgerCreateTableInput)
// and waits until it is ACTIVE, or ctx ends. If the table already exists it
// returns an error wrapping store.ErrExists. Tests use it; in production the
// deployment template creates the table.
func CreateLedgerTable(ctx context.Context, client TableAPI, table string) error {
	if table == "" {
		return fmt.Errorf("%w: empty table name", store.ErrInvalid)
	}
	return createTable(ctx, client, LedgerCreateTableInput(table))
}

func createTable(ctx context.Context, client TableAPI, in *dynamodb.CreateTableInput) error {
	table := aws.ToString(in.TableName)
	if _, err := client.CreateTable(ctx, in); err != nil {
		var inUse *types.ResourceInUseException
		if errors.As(err, &inUse) {
			return fmt.Errorf("%w: table %s: %w", store.ErrExists, table, err)
		}
		return fmt.Errorf("%w: dynamodb CreateTable %s: %w", store.ErrUnavailable, table, err)
	}
	delay := 100 * time.Millisecond
	for {
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			var nf *types.ResourceNotFoundException
			if !errors.As(err, &nf) { // not yet visible: keep waiting
				return fmt.Errorf("%w: dynamodb DescribeTable %s: %w", store.ErrUnavailable, table, err)
			}
		} else if active(out.Table) {
			return nil
		}
		if err := sleep(ctx, delay); err != nil {
			return fmt.Errorf("store: waiting for table %s: %w", table, err)
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func active(t *types.TableDescription) bool {
	if t == nil || t.TableStatus != types.TableStatusActive {
		return false
	}
	for _, g := range t.GlobalSecondaryIndexes {
		if g.IndexStatus != types.IndexStatusActive {
			return false
		}
	}
	return true
}
