package release_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/ethkeygen/ethkeygen/release"
)

// hookLambda runs before (and may rewrite the output of) each
// UpdateFunctionCode of the fake.
type hookLambda struct {
	next   release.LambdaAPI
	before func(in *lambda.UpdateFunctionCodeInput)
	after  func(out *lambda.UpdateFunctionCodeOutput)
}

func (h *hookLambda) UpdateFunctionCode(ctx context.Context, in *lambda.UpdateFunctionCodeInput, o ...func(*lambda.Options)) (*lambda.UpdateFunctionCodeOutput, error) {
	if h.before != nil {
		h.before(in)
	}
	out, err := h.next.UpdateFunctionCode(ctx, in, o...)
	if err == nil && h.after != nil {
		h.after(out)
	}
	return out, err
}

// TestDeployPinsTheCheckedVersion: an object overwritten at the signed key
// between Deploy's check and Lambda's fetch is not what gets deployed:
// Deploy pins the version it checked (red without S3ObjectVersion: Lambda
// takes the latest version). And a version written after signing is never
// deployed: the signed object's version is pinned at signing.
func TestDeployPinsTheCheckedVersion(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	signed, err := release.UploadAndSign(ctx, w.s3, w.signer, w.signInput(w.profile.Name))
	if err != nil {
		t.Fatal(err)
	}
	w.s3.Tamper(signed.Bucket, signed.Key, func(b []byte) []byte { return append(b, 0) })
	if _, err := release.Deploy(ctx, w.lambda, w.s3, release.DeployInput{Manifest: w.m, FunctionName: function, Signed: signed, Arch: "arm64"}); err != nil {
		t.Fatalf("the pinned signed version: %v", err)
	}
	if f := w.lambda.Function(function); !bytes.Equal(f.Code, w.zip) {
		t.Fatal("deployed the version written after signing")
	}
	signed.VersionID = ""                                                                 // from here: the latest version at Deploy time
	w.s3.Tamper(signed.Bucket, signed.Key, func(b []byte) []byte { return b[:len(b)-1] }) // the signed bytes again, a new version
	checked, ok := w.s3.Get(signed.Bucket, signed.Key, "")
	if !ok {
		t.Fatal("no signed object")
	}
	var sent string
	lc := &hookLambda{next: w.lambda, before: func(in *lambda.UpdateFunctionCodeInput) {
		sent = aws.ToString(in.S3ObjectVersion)
		w.s3.Tamper(signed.Bucket, signed.Key, func(b []byte) []byte { return append(b, 0) })
	}}
	d, err := release.Deploy(ctx, lc, w.s3, release.DeployInput{Manifest: w.m, FunctionName: function, Signed: signed, Arch: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if sent != checked.VersionID || d.S3ObjectVersion != checked.VersionID {
		t.Fatalf("deployed version %q (sent %q), checked %q", d.S3ObjectVersion, sent, checked.VersionID)
	}
	if f := w.lambda.Function(function); !bytes.Equal(f.Code, checked.Body) {
		t.Fatal("the function runs another object version than the one checked")
	}
}

// TestDeployChecksCodeSha256: when Lambda reports a CodeSha256 other than
// that of the checked bytes, Deploy fails with ErrMismatch.
func TestDeployChecksCodeSha256(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	signed, err := release.UploadAndSign(ctx, w.s3, w.signer, w.signInput(w.profile.Name))
	if err != nil {
		t.Fatal(err)
	}
	lc := &hookLambda{next: w.lambda, after: func(out *lambda.UpdateFunctionCodeOutput) {
		out.CodeSha256 = aws.String("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=") // SHA-256 of nothing
	}}
	if _, err := release.Deploy(ctx, lc, w.s3, release.DeployInput{Manifest: w.m, FunctionName: function, Signed: signed, Arch: "arm64"}); !errors.Is(err, release.ErrMismatch) {
		t.Fatalf("err = %v, want ErrMismatch", err)
	}
	// The fake's CodeSha256 is Lambda's: base64 of the zip's SHA-256.
	d, err := release.Deploy(ctx, w.lambda, w.s3, release.DeployInput{Manifest: w.m, FunctionName: function, Signed: signed, Arch: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if d.CodeSha256 != base64SHA256(w.zip) {
		t.Fatalf("CodeSha256 %s, want %s", d.CodeSha256, base64SHA256(w.zip))
	}
}

// TestDeployRefusesBootstrapNotInManifest: a signed object whose bootstrap
// is not the manifest's is never handed to Lambda.
func TestDeployRefusesBootstrapNotInManifest(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	signed, err := release.UploadAndSign(ctx, w.s3, w.signer, w.signInput(w.profile.Name))
	if err != nil {
		t.Fatal(err)
	}
	other := *w.m
	other.BootstrapSHA256 = release.SHA256([]byte("another bootstrap"))
	called := false
	lc := &hookLambda{next: w.lambda, before: func(*lambda.UpdateFunctionCodeInput) { called = true }}
	if _, err := release.Deploy(ctx, lc, w.s3, release.DeployInput{Manifest: &other, FunctionName: function, Signed: signed, Arch: "arm64"}); !errors.Is(err, release.ErrMismatch) || called {
		t.Fatalf("err = %v (UpdateFunctionCode called: %v), want ErrMismatch before any update", err, called)
	}
}

// TestDeployRefusesUnversionedObject: an object without a version id
// cannot be pinned.
func TestDeployRefusesUnversionedObject(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.s3.Unversioned["plain"] = true
	if _, err := w.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("plain"), Key: aws.String("z.zip"), Body: bytes.NewReader(w.zip)}); err != nil {
		t.Fatal(err)
	}
	_, err := release.Deploy(ctx, w.lambda, w.s3, release.DeployInput{Manifest: w.m, FunctionName: function, Signed: &release.Signed{Bucket: "plain", Key: "z.zip"}, Arch: "arm64"})
	if !errors.Is(err, release.ErrUnversioned) {
		t.Fatalf("err = %v, want ErrUnversioned", err)
	}
}

// TestFakeS3GetObject: the fake's GetObject follows S3: a version id only
// in a versioned bucket, NoSuchKey and NoSuchVersion error codes, each
// version readable.
func TestFakeS3GetObject(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	put := func(bkt string, body string) string {
		out, err := w.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bkt), Key: aws.String("k"), Body: bytes.NewReader([]byte(body))})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.VersionId)
	}
	v1, v2 := put(bucket, "one"), put(bucket, "two")
	for v, want := range map[string]string{v1: "one", v2: "two", "": "two"} {
		out, err := w.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), VersionId: aws.String(v)})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(out.Body)
		if b.String() != want || (v != "" && aws.ToString(out.VersionId) != v) {
			t.Errorf("version %q: %q (version %q)", v, b.String(), aws.ToString(out.VersionId))
		}
	}
	code := func(err error) string {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return ae.ErrorCode()
		}
		return ""
	}
	if _, err := w.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), VersionId: aws.String("nope")}); code(err) != "NoSuchVersion" {
		t.Errorf("missing version: %v", err)
	}
	if _, err := w.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("none")}); code(err) != "NoSuchKey" {
		t.Errorf("missing key: %v", err)
	}
	w.s3.Unversioned["plain"] = true
	if put("plain", "x") != "" {
		t.Error("unversioned PutObject returned a version id")
	}
	if out, err := w.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("plain"), Key: aws.String("k")}); err != nil || out.VersionId != nil {
		t.Errorf("unversioned GetObject: %v %v", out, err)
	}
}

func base64SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(s[:])
}
