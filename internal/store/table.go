package store

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TableInput returns the CreateTable request of the jobs table named name,
// laid out as described at the top of dynamodb.go. It mirrors the table in
// template.yaml; tests (this package's and the Lambda end-to-end tests)
// create their table with it.
func TableInput(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrSK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrLivePK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrLiveSK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrSubmittedPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrSubmittedSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			{
				IndexName: aws.String(indexLive),
				KeySchema: []types.KeySchemaElement{
					{AttributeName: aws.String(attrLivePK), KeyType: types.KeyTypeHash},
					{AttributeName: aws.String(attrLiveSK), KeyType: types.KeyTypeRange},
				},
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
			},
			{
				IndexName: aws.String(indexSubmitted),
				KeySchema: []types.KeySchemaElement{
					{AttributeName: aws.String(attrSubmittedPK), KeyType: types.KeyTypeHash},
					{AttributeName: aws.String(attrSubmittedSK), KeyType: types.KeyTypeRange},
				},
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
			},
		},
	}
}

// TimeToLive returns the UpdateTimeToLive request that turns on the jobs
// table's TTL on expires_at, as template.yaml's TimeToLiveSpecification
// does: CreateTable cannot.
func TimeToLive(name string) *dynamodb.UpdateTimeToLiveInput {
	return &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(attrExpiresAt),
			Enabled:       aws.Bool(true),
		},
	}
}
