package release

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// LambdaAPI is the part of the Lambda client Deploy uses.
type LambdaAPI interface {
	UpdateFunctionCode(ctx context.Context, in *lambda.UpdateFunctionCodeInput, optFns ...func(*lambda.Options)) (*lambda.UpdateFunctionCodeOutput, error)
}

var _ LambdaAPI = (*lambda.Client)(nil)

// S3GetAPI is the part of the S3 client Deploy uses.
type S3GetAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

var _ S3GetAPI = (*s3.Client)(nil)

// maxZip bounds the signed object Deploy reads (Lambda's limit for a zip
// from S3 is 250 MB unzipped; the release zip is a few tens of MB).
const maxZip = 256 << 20

// DeployInput names the function and the signed object to deploy.
type DeployInput struct {
	FunctionName string
	Signed       *Signed
	// Manifest is the verified manifest: the signed object's bootstrap must
	// have its BootstrapSHA256.
	Manifest *Manifest
	// Arch must be the manifest's architecture ("arm64" or "x86_64").
	Arch string
	// Publish publishes a new function version.
	Publish bool
}

// Deployed is what Lambda reports after the update.
type Deployed struct {
	FunctionArn string
	Version     string
	// CodeSha256 is Lambda's base64 SHA-256 of the deployed (signed) zip,
	// checked equal to that of the object version Deploy pinned.
	CodeSha256 string
	// S3ObjectVersion is the version of the signed object deployed.
	S3ObjectVersion string
}

// Deploy points the function at one pinned version of the signed object
// with UpdateFunctionCode. It first reads that object (Signed.VersionID, or
// else its latest version, whose id it pins), and refuses it unless its bootstrap has the manifest's
// BootstrapSHA256; after the update it requires Lambda's CodeSha256 (base64
// SHA-256 of the zip deployed) to equal that of the bytes it checked, so an
// object overwritten in between is detected (ErrMismatch). Lambda checks the
// signature against the function's code signing config; a refusal
// (CodeVerificationFailedException for an unsigned object, another profile,
// an expired or revoked signature; InvalidCodeSignatureException for an
// object changed after signing) wraps ErrCodeSigning.
func Deploy(ctx context.Context, lc LambdaAPI, sc S3GetAPI, in DeployInput) (*Deployed, error) {
	if in.FunctionName == "" || in.Signed == nil || in.Signed.Bucket == "" || in.Signed.Key == "" || in.Manifest == nil {
		return nil, fmt.Errorf("%w: Deploy needs a function name, a signed object and its manifest", ErrInvalid)
	}
	if _, err := goarch(in.Arch); err != nil {
		return nil, err
	}
	if in.Arch != in.Manifest.Arch {
		return nil, fmt.Errorf("%w: deploying %s, the manifest is for %s", ErrInvalid, in.Arch, in.Manifest.Arch)
	}
	get := &s3.GetObjectInput{Bucket: aws.String(in.Signed.Bucket), Key: aws.String(in.Signed.Key)}
	if in.Signed.VersionID != "" {
		get.VersionId = aws.String(in.Signed.VersionID)
	}
	obj, err := sc.GetObject(ctx, get)
	if err != nil {
		return nil, fmt.Errorf("release: s3 GetObject s3://%s/%s: %w", in.Signed.Bucket, in.Signed.Key, err)
	}
	defer obj.Body.Close()
	version := aws.ToString(obj.VersionId)
	if in.Signed.VersionID != "" && version != in.Signed.VersionID {
		return nil, fmt.Errorf("%w: asked S3 for version %s of s3://%s/%s, got %q", ErrMismatch, in.Signed.VersionID, in.Signed.Bucket, in.Signed.Key, version)
	}
	if version == "" || version == "null" {
		return nil, fmt.Errorf("%w: s3://%s/%s has no version id: Deploy pins an object version", ErrUnversioned, in.Signed.Bucket, in.Signed.Key)
	}
	body, err := io.ReadAll(io.LimitReader(obj.Body, maxZip+1))
	if err != nil {
		return nil, fmt.Errorf("release: reading s3://%s/%s: %w", in.Signed.Bucket, in.Signed.Key, err)
	}
	if len(body) > maxZip {
		return nil, fmt.Errorf("%w: s3://%s/%s is larger than %d bytes", ErrInvalid, in.Signed.Bucket, in.Signed.Key, maxZip)
	}
	if err := checkBootstrap(body, in.Manifest.BootstrapSHA256); err != nil {
		return nil, fmt.Errorf("s3://%s/%s version %s: %w", in.Signed.Bucket, in.Signed.Key, version, err)
	}
	sum := sha256.Sum256(body)
	want := base64.StdEncoding.EncodeToString(sum[:])
	out, err := lc.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{
		FunctionName:    aws.String(in.FunctionName),
		S3Bucket:        aws.String(in.Signed.Bucket),
		S3Key:           aws.String(in.Signed.Key),
		S3ObjectVersion: aws.String(version),
		Architectures:   []lambdatypes.Architecture{lambdatypes.Architecture(in.Arch)},
		Publish:         in.Publish,
	})
	if err != nil {
		var cv *lambdatypes.CodeVerificationFailedException
		var ic *lambdatypes.InvalidCodeSignatureException
		if errors.As(err, &cv) || errors.As(err, &ic) {
			return nil, fmt.Errorf("%w: %s s3://%s/%s: %w", ErrCodeSigning, in.FunctionName, in.Signed.Bucket, in.Signed.Key, err)
		}
		return nil, fmt.Errorf("release: lambda UpdateFunctionCode %s: %w", in.FunctionName, err)
	}
	d := &Deployed{
		FunctionArn:     aws.ToString(out.FunctionArn),
		Version:         aws.ToString(out.Version),
		CodeSha256:      aws.ToString(out.CodeSha256),
		S3ObjectVersion: version,
	}
	if d.CodeSha256 != want {
		return d, fmt.Errorf("%w: %s now runs code with CodeSha256 %s, not the checked object's %s (s3://%s/%s version %s): investigate before invoking it",
			ErrMismatch, in.FunctionName, d.CodeSha256, want, in.Signed.Bucket, in.Signed.Key, version)
	}
	return d, nil
}

// checkBootstrap requires zip to hold exactly one file, bootstrap, with
// SHA-256 bootstrapSHA256 (hex).
func checkBootstrap(b []byte, bootstrapSHA256 string) error {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return fmt.Errorf("%w: not a zip: %w", ErrMismatch, err)
	}
	if len(zr.File) != 1 || zr.File[0].Name != "bootstrap" {
		return fmt.Errorf("%w: the zip holds %d entries, want bootstrap alone", ErrMismatch, len(zr.File))
	}
	f, err := zr.File[0].Open()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, maxZip)); err != nil {
		return fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != bootstrapSHA256 {
		return fmt.Errorf("%w: bootstrap sha256 %s, the manifest's is %s", ErrMismatch, got, bootstrapSHA256)
	}
	return nil
}

// StackParameters are the template's code parameters for the signed object,
// in the Key=Value form of `aws cloudformation deploy --parameter-overrides`,
// with CodeObjectVersion when the signed object's version is known.
func StackParameters(s *Signed, arch string) []string {
	p := []string{
		"Architecture=" + arch,
		"CodeBucket=" + s.Bucket,
		"CodeKey=" + s.Key,
	}
	if s.VersionID != "" {
		p = append(p, "CodeObjectVersion="+s.VersionID)
	}
	return p
}
