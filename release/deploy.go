package release

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// LambdaAPI is the part of the Lambda client Deploy uses.
type LambdaAPI interface {
	UpdateFunctionCode(ctx context.Context, in *lambda.UpdateFunctionCodeInput, optFns ...func(*lambda.Options)) (*lambda.UpdateFunctionCodeOutput, error)
}

var _ LambdaAPI = (*lambda.Client)(nil)

// DeployInput names the function and the signed object to deploy.
type DeployInput struct {
	FunctionName string
	Signed       *Signed
	// Arch must be the manifest's architecture ("arm64" or "x86_64").
	Arch string
	// Publish publishes a new function version.
	Publish bool
}

// Deployed is what Lambda reports after the update.
type Deployed struct {
	FunctionArn string
	Version     string
	// CodeSha256 is Lambda's base64 SHA-256 of the deployed (signed) zip.
	CodeSha256 string
}

// Deploy points the function at the signed object with UpdateFunctionCode.
// Lambda checks the signature against the function's code signing config; a
// refusal (CodeVerificationFailedException for an unsigned object, another
// profile, an expired or revoked signature; InvalidCodeSignatureException
// for an object changed after signing) wraps ErrCodeSigning.
func Deploy(ctx context.Context, lc LambdaAPI, in DeployInput) (*Deployed, error) {
	if in.FunctionName == "" || in.Signed == nil || in.Signed.Bucket == "" || in.Signed.Key == "" {
		return nil, fmt.Errorf("%w: Deploy needs a function name and a signed object", ErrInvalid)
	}
	if _, err := goarch(in.Arch); err != nil {
		return nil, err
	}
	out, err := lc.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{
		FunctionName:  aws.String(in.FunctionName),
		S3Bucket:      aws.String(in.Signed.Bucket),
		S3Key:         aws.String(in.Signed.Key),
		Architectures: []lambdatypes.Architecture{lambdatypes.Architecture(in.Arch)},
		Publish:       in.Publish,
	})
	if err != nil {
		var cv *lambdatypes.CodeVerificationFailedException
		var ic *lambdatypes.InvalidCodeSignatureException
		if errors.As(err, &cv) || errors.As(err, &ic) {
			return nil, fmt.Errorf("%w: %s s3://%s/%s: %w", ErrCodeSigning, in.FunctionName, in.Signed.Bucket, in.Signed.Key, err)
		}
		return nil, fmt.Errorf("release: lambda UpdateFunctionCode %s: %w", in.FunctionName, err)
	}
	return &Deployed{
		FunctionArn: aws.ToString(out.FunctionArn),
		Version:     aws.ToString(out.Version),
		CodeSha256:  aws.ToString(out.CodeSha256),
	}, nil
}

// StackParameters are the template's code parameters for the signed object,
// in the Key=Value form of `aws cloudformation deploy --parameter-overrides`.
func StackParameters(s *Signed, arch string) []string {
	return []string{
		"Architecture=" + arch,
		"CodeBucket=" + s.Bucket,
		"CodeKey=" + s.Key,
	}
}
