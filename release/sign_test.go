package release_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	signertypes "github.com/aws/aws-sdk-go-v2/service/signer/types"

	"github.com/ethkeygen/ethkeygen/release"
	"github.com/ethkeygen/ethkeygen/release/releasetest"
)

const (
	bucket   = "ethkeygen-releases"
	function = "ethkeygen-generator"
	commit   = "0123456789abcdef0123456789abcdef01234567"

	pretendBootstrap = "\x7fELF pretend bootstrap"
)

// world is one account: a versioned bucket, a Signer with the release
// profile (and a rogue Lambda profile the function does not allow), and the
// function with a code signing config in Enforce mode.
type world struct {
	s3      *releasetest.S3
	signer  *releasetest.Signer
	lambda  *releasetest.Lambda
	profile *releasetest.Profile
	rogue   *releasetest.Profile
	zip     []byte
	m       *release.Manifest
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{s3: releasetest.NewS3()}
	w.signer = releasetest.NewSigner(w.s3)
	w.signer.Polls = 2
	w.profile = w.signer.AddProfile("ethkeygen_release", releasetest.LambdaPlatform)
	w.rogue = w.signer.AddProfile("someone_else", releasetest.LambdaPlatform)
	w.lambda = releasetest.NewLambda(w.s3, w.signer)
	w.lambda.AddFunction(&releasetest.Function{
		Name: function,
		CodeSigning: &releasetest.CodeSigningConfig{
			AllowedProfileVersionArns: []string{w.profile.VersionArn},
			Enforce:                   true,
		},
	})
	var z bytes.Buffer
	if err := release.WriteZip(&z, []byte(pretendBootstrap)); err != nil {
		t.Fatal(err)
	}
	w.zip = z.Bytes()
	w.m = &release.Manifest{Schema: 1, Commit: commit, Arch: "arm64", Zip: release.ZipName("arm64"), ZipSHA256: release.SHA256(w.zip),
		BootstrapSHA256: release.SHA256([]byte(pretendBootstrap))}
	return w
}

func (w *world) signInput(profile string) release.SignInput {
	return release.SignInput{
		Zip: w.zip, Manifest: w.m, Bucket: bucket, Key: "unsigned/" + commit + "/" + w.m.Zip,
		ProfileName: profile, DestinationPrefix: "signed/" + commit + "/",
		PollInterval: time.Millisecond, MaxPoll: 2 * time.Millisecond, Timeout: 5 * time.Second,
	}
}

func TestUploadSignDeploy(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	signed, err := release.UploadAndSign(ctx, w.s3, w.signer, w.signInput(w.profile.Name))
	if err != nil {
		t.Fatal(err)
	}
	if signed.Bucket != bucket || !strings.HasPrefix(signed.Key, "signed/"+commit+"/") || signed.SourceVersionID == "" || signed.VersionID == "" || signed.ProfileName != w.profile.Name {
		t.Fatalf("signed = %+v", signed)
	}
	d, err := release.Deploy(ctx, w.lambda, w.s3, release.DeployInput{Manifest: w.m, FunctionName: function, Signed: signed, Arch: "arm64", Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != "1" || d.CodeSha256 == "" {
		t.Errorf("deployed = %+v", d)
	}
	if f := w.lambda.Function(function); !bytes.Equal(f.Code, w.zip) || f.Arch != "arm64" {
		t.Errorf("function code or arch not updated: arch %q", f.Arch)
	}
	params := strings.Join(release.StackParameters(signed, "arm64"), " ")
	if !strings.Contains(params, "CodeKey="+signed.Key) || !strings.Contains(params, "CodeBucket="+bucket) || !strings.Contains(params, "CodeObjectVersion="+signed.VersionID) {
		t.Errorf("stack parameters %q", params)
	}
}

func wantCode[E error](t *testing.T, err error) {
	t.Helper()
	var e E
	if !errors.Is(err, release.ErrCodeSigning) || !errors.As(err, &e) {
		t.Fatalf("err = %v, want ErrCodeSigning wrapping %T", err, e)
	}
}

func TestDeployRefusesUnsignedCode(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	in := w.signInput(w.profile.Name)
	if _, err := w.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &in.Bucket, Key: &in.Key, Body: bytes.NewReader(w.zip)}); err != nil {
		t.Fatal(err)
	}
	_, err := release.Deploy(ctx, w.lambda, w.s3, release.DeployInput{Manifest: w.m, FunctionName: function, Signed: &release.Signed{Bucket: bucket, Key: in.Key}, Arch: "arm64"})
	wantCode[*lambdatypes.CodeVerificationFailedException](t, err)
	if f := w.lambda.Function(function); f.Code != nil {
		t.Error("unsigned code was deployed")
	}
}

func TestDeployRefusesCodeSignedByAnotherProfile(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	signed, err := release.UploadAndSign(ctx, w.s3, w.signer, w.signInput(w.rogue.Name))
	if err != nil {
		t.Fatal(err) // the rogue profile can sign; Lambda must refuse it
	}
	_, err = release.Deploy(ctx, w.lambda, w.s3, release.DeployInput{Manifest: w.m, FunctionName: function, Signed: signed, Arch: "arm64"})
	wantCode[*lambdatypes.CodeVerificationFailedException](t, err)
}

func TestDeployRefusesCodeChangedAfterSigning(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	signed, err := release.UploadAndSign(ctx, w.s3, w.signer, w.signInput(w.profile.Name))
	if err != nil {
		t.Fatal(err)
	}
	w.s3.Tamper(signed.Bucket, signed.Key, func(b []byte) []byte { return append(b, 0) })
	// Deploying the key's latest version (no pinned version) reaches
	// Lambda's integrity check, which refuses it.
	latest := *signed
	latest.VersionID = ""
	_, err = release.Deploy(ctx, w.lambda, w.s3, release.DeployInput{Manifest: w.m, FunctionName: function, Signed: &latest, Arch: "arm64"})
	wantCode[*lambdatypes.InvalidCodeSignatureException](t, err)
	signed = &latest

	// Even in Warn mode an integrity failure blocks the deployment, while
	// unsigned code goes through: which is why the template enforces.
	w.lambda.AddFunction(&releasetest.Function{Name: "warn", CodeSigning: &releasetest.CodeSigningConfig{AllowedProfileVersionArns: []string{w.profile.VersionArn}}})
	_, err = release.Deploy(ctx, w.lambda, w.s3, release.DeployInput{Manifest: w.m, FunctionName: "warn", Signed: signed, Arch: "arm64"})
	wantCode[*lambdatypes.InvalidCodeSignatureException](t, err)
	in := w.signInput(w.profile.Name)
	if _, err := release.Deploy(ctx, w.lambda, w.s3, release.DeployInput{Manifest: w.m, FunctionName: "warn", Signed: &release.Signed{Bucket: bucket, Key: in.Key}, Arch: "arm64"}); err != nil {
		t.Errorf("Warn mode refused unsigned code: %v", err)
	}
}

func TestDeployRefusesRevokedProfile(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	signed, err := release.UploadAndSign(ctx, w.s3, w.signer, w.signInput(w.profile.Name))
	if err != nil {
		t.Fatal(err)
	}
	w.profile.Revoked = true
	_, err = release.Deploy(ctx, w.lambda, w.s3, release.DeployInput{Manifest: w.m, FunctionName: function, Signed: signed, Arch: "arm64"})
	wantCode[*lambdatypes.CodeVerificationFailedException](t, err)
}

func TestSignerRefusesNonLambdaProfile(t *testing.T) {
	w := newWorld(t)
	w.signer.AddProfile("iot", "AWSIoTDeviceManagement-SHA256-ECDSA")
	_, err := release.UploadAndSign(t.Context(), w.s3, w.signer, w.signInput("iot"))
	var ve *signertypes.ValidationException
	if !errors.Is(err, release.ErrSigning) || !errors.As(err, &ve) {
		t.Fatalf("err = %v, want ErrSigning wrapping ValidationException", err)
	}
	_, err = release.UploadAndSign(t.Context(), w.s3, w.signer, w.signInput("no_such_profile"))
	var nf *signertypes.ResourceNotFoundException
	if !errors.Is(err, release.ErrSigning) || !errors.As(err, &nf) {
		t.Fatalf("err = %v, want ErrSigning wrapping ResourceNotFoundException", err)
	}
}

// wrongVersionS3 reports a version id the bucket does not hold.
type wrongVersionS3 struct{ release.S3API }

func (w wrongVersionS3) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	out, err := w.S3API.PutObject(ctx, in, opts...)
	if err == nil {
		v := "v999"
		out.VersionId = &v
	}
	return out, err
}

func TestSigningJobFailsOnMissingSourceVersion(t *testing.T) {
	w := newWorld(t)
	_, err := release.UploadAndSign(t.Context(), wrongVersionS3{w.s3}, w.signer, w.signInput(w.profile.Name))
	if !errors.Is(err, release.ErrSigning) || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("err = %v, want a failed signing job", err)
	}
}

func TestUploadRefusesUnversionedBucket(t *testing.T) {
	w := newWorld(t)
	w.s3.Unversioned[bucket] = true
	_, err := release.UploadAndSign(t.Context(), w.s3, w.signer, w.signInput(w.profile.Name))
	if !errors.Is(err, release.ErrUnversioned) {
		t.Fatalf("err = %v, want ErrUnversioned", err)
	}
}

func TestUploadRefusesZipNotInManifest(t *testing.T) {
	w := newWorld(t)
	in := w.signInput(w.profile.Name)
	in.Zip = append([]byte{}, w.zip...)
	in.Zip[len(in.Zip)/2] ^= 1
	_, err := release.UploadAndSign(t.Context(), w.s3, w.signer, in)
	if !errors.Is(err, release.ErrMismatch) {
		t.Fatalf("err = %v, want ErrMismatch", err)
	}
	if _, ok := w.s3.Get(bucket, in.Key, ""); ok {
		t.Error("a zip that is not the manifest's was uploaded")
	}
}

func TestSigningTimeout(t *testing.T) {
	w := newWorld(t)
	w.signer.Polls = 1 << 30
	in := w.signInput(w.profile.Name)
	in.Timeout = 30 * time.Millisecond
	start := time.Now()
	_, err := release.UploadAndSign(t.Context(), w.s3, w.signer, in)
	if !errors.Is(err, release.ErrSigning) {
		t.Fatalf("err = %v, want ErrSigning", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("waited %v for a 30ms timeout", d)
	}
}

func TestWriteZipIsDeterministic(t *testing.T) {
	content := bytes.Repeat([]byte("bootstrap bytes "), 1000)
	var a, b bytes.Buffer
	if err := release.WriteZip(&a, content); err != nil {
		t.Fatal(err)
	}
	if err := release.WriteZip(&b, content); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two zips of the same content differ")
	}
	zr, err := zip.NewReader(bytes.NewReader(a.Bytes()), int64(a.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 {
		t.Fatalf("%d entries, want 1", len(zr.File))
	}
	f := zr.File[0]
	if f.Name != "bootstrap" || f.Mode().Perm() != 0o755 || !f.Mode().IsRegular() || f.Method != zip.Deflate || !f.Modified.Equal(release.ZipTime) {
		t.Errorf("entry %s mode %v method %d modified %v", f.Name, f.Mode(), f.Method, f.Modified)
	}
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("content round trip: %v", err)
	}
}

func TestCompare(t *testing.T) {
	m := &release.Manifest{Schema: 1, Commit: commit, Arch: "arm64", GoVersion: "go1.26.8", CCVersion: "gcc 12",
		ZipSHA256: strings.Repeat("a", 64), BootstrapSHA256: strings.Repeat("b", 64)}
	same := *m
	if err := release.Compare(m, &same); err != nil {
		t.Fatal(err)
	}
	other := *m
	other.ZipSHA256 = strings.Repeat("c", 64)
	other.GoVersion = "go1.26.9"
	err := release.Compare(m, &other)
	if !errors.Is(err, release.ErrMismatch) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "go1.26.9") {
		t.Fatalf("err = %q, want one line wrapping ErrMismatch naming the toolchain", err)
	}
	dirty := *m
	dirty.Dirty = true
	if err := release.Compare(&dirty, &same); !errors.Is(err, release.ErrDirty) {
		t.Fatalf("dirty manifest: err = %v", err)
	}
}
