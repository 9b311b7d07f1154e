// Package deploy holds the AWS deployment of the ethkeygen generator:
// template.yaml, a CloudFormation template for the code-signed Lambda
// function, the seal-only KMS key, and the DynamoDB table; README.md, the
// developer's and release manager's steps with cmd ethkeygen-release.
//
// The package has no code. Its tests read the template and hold its security
// properties: the generator role can never decrypt, only the attested enclave
// role can, administrators cannot use the key, the key and the table survive
// the stack, code signing is enforced, and the table matches
// store/dynamostore.CreateTableInput.
package deploy
