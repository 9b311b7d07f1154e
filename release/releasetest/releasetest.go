// Package releasetest has in-memory stand-ins for S3, AWS Signer and Lambda
// code signing, which no local server implements. They enforce the rules the
// release depends on: S3 checks the SHA-256 checksum and versions objects;
// Signer signs only an existing object version with an AWSLambda profile;
// Lambda with a code signing config refuses unsigned code, code signed by a
// profile it does not allow, revoked profiles (CodeVerificationFailedException
// in Enforce mode) and code changed after signing
// (InvalidCodeSignatureException, always), with the SDK's own error types.
package releasetest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	signertypes "github.com/aws/aws-sdk-go-v2/service/signer/types"
	"github.com/aws/smithy-go"
)

// LambdaPlatform is the only signing platform Lambda accepts.
const LambdaPlatform = "AWSLambda-SHA384-ECDSA"

// Metadata keys under which the fake Signer stores a signature. (The real
// service embeds it differently; what matters here is who can produce it.)
const (
	metaSignature = "x-fake-signer-signature"
	metaProfile   = "x-fake-signer-profile-version-arn"
)

// Object is one version of an S3 object.
type Object struct {
	VersionID string
	Body      []byte
	Metadata  map[string]string
}

// S3 is a versioned in-memory S3.
type S3 struct {
	mu      sync.Mutex
	objects map[string][]Object // bucket/key -> versions, oldest first
	// Unversioned lists buckets without versioning: PutObject returns no
	// VersionId and overwrites.
	Unversioned map[string]bool
	next        int
}

// NewS3 returns an empty S3.
func NewS3() *S3 { return &S3{objects: map[string][]Object{}, Unversioned: map[string]bool{}} }

func s3Err(code, msg string) error { return &smithy.GenericAPIError{Code: code, Message: msg} }

// PutObject stores a new version, checking ChecksumSHA256 when given.
func (s *S3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if in.Bucket == nil || in.Key == nil || in.Body == nil {
		return nil, s3Err("InvalidRequest", "bucket, key and body are required")
	}
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	if in.ChecksumSHA256 != nil {
		sum := sha256.Sum256(body)
		if *in.ChecksumSHA256 != base64.StdEncoding.EncodeToString(sum[:]) {
			return nil, s3Err("BadDigest", "The SHA256 you specified did not match the calculated checksum.")
		}
	}
	o := s.put(*in.Bucket, *in.Key, body, in.Metadata)
	out := &s3.PutObjectOutput{}
	if o.VersionID != "" {
		out.VersionId = aws.String(o.VersionID)
	}
	return out, nil
}

func (s *S3) put(bucket, key string, body []byte, meta map[string]string) Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := Object{Body: slices.Clone(body), Metadata: map[string]string{}}
	for k, v := range meta {
		o.Metadata[k] = v
	}
	id := bucket + "/" + key
	if s.Unversioned[bucket] {
		s.objects[id] = []Object{o}
		return o
	}
	s.next++
	o.VersionID = "v" + strconv.Itoa(s.next)
	s.objects[id] = append(s.objects[id], o)
	return o
}

// GetObject returns an object version (the latest without VersionId) as S3
// does: its VersionId only in a versioned bucket, NoSuchKey for a missing
// key, NoSuchVersion for a missing version.
func (s *S3) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if in.Bucket == nil || in.Key == nil {
		return nil, s3Err("InvalidRequest", "bucket and key are required")
	}
	s.mu.Lock()
	n := len(s.objects[*in.Bucket+"/"+*in.Key])
	unversioned := s.Unversioned[*in.Bucket]
	s.mu.Unlock()
	if n == 0 {
		return nil, s3Err("NoSuchKey", "The specified key does not exist.")
	}
	o, ok := s.Get(*in.Bucket, *in.Key, aws.ToString(in.VersionId))
	if !ok {
		return nil, s3Err("NoSuchVersion", "The specified version does not exist.")
	}
	out := &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(slices.Clone(o.Body))), ContentLength: aws.Int64(int64(len(o.Body))), Metadata: maps.Clone(o.Metadata)}
	if !unversioned {
		out.VersionId = aws.String(o.VersionID)
	}
	return out, nil
}

// HeadObject is GetObject without the body.
func (s *S3) HeadObject(ctx context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	out, err := s.GetObject(ctx, &s3.GetObjectInput{Bucket: in.Bucket, Key: in.Key, VersionId: in.VersionId})
	if err != nil {
		return nil, err
	}
	return &s3.HeadObjectOutput{VersionId: out.VersionId, ContentLength: out.ContentLength, Metadata: out.Metadata}, nil
}

// Get returns an object version ("" for the latest).
func (s *S3) Get(bucket, key, version string) (Object, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := s.objects[bucket+"/"+key]
	if len(vs) == 0 {
		return Object{}, false
	}
	if version == "" {
		return vs[len(vs)-1], true
	}
	for _, o := range vs {
		if o.VersionID == version {
			return o, true
		}
	}
	return Object{}, false
}

// Tamper writes a new version of an object with its body changed by f and
// its metadata (including any signature) kept: what an attacker with write
// access to the bucket could do after signing.
func (s *S3) Tamper(bucket, key string, f func([]byte) []byte) {
	o, ok := s.Get(bucket, key, "")
	if !ok {
		panic("releasetest: Tamper on a missing object")
	}
	s.put(bucket, key, f(slices.Clone(o.Body)), o.Metadata)
}

// Profile is a signing profile.
type Profile struct {
	Name, PlatformID, Version, VersionArn string
	Revoked                               bool
	key                                   []byte
}

type job struct {
	out   signer.DescribeSigningJobOutput
	polls int
}

// Signer is an in-memory AWS Signer writing signed objects into S3.
type Signer struct {
	S3 *S3
	// Polls is how many DescribeSigningJob calls report InProgress before
	// the job's outcome.
	Polls int

	mu       sync.Mutex
	profiles map[string]*Profile
	jobs     map[string]*job
	tokens   map[string]string
	next     int
}

// NewSigner returns a Signer writing to s.
func NewSigner(s *S3) *Signer {
	return &Signer{S3: s, profiles: map[string]*Profile{}, jobs: map[string]*job{}, tokens: map[string]string{}}
}

// AddProfile creates a signing profile with its own signing key.
func (s *Signer) AddProfile(name, platform string) *Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	p := &Profile{
		Name: name, PlatformID: platform, Version: "v1",
		VersionArn: "arn:aws:signer:eu-west-1:123456789012:/signing-profiles/" + name + "/v1",
		key:        key,
	}
	s.profiles[name] = p
	return p
}

func (s *Signer) byVersionArn(arn string) *Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.profiles {
		if p.VersionArn == arn {
			return p
		}
	}
	return nil
}

func signature(key, body []byte) string {
	m := hmac.New(sha512.New384, key)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// StartSigningJob validates the request like the service does and runs the
// job: it fails if the source object version does not exist, else writes
// the signed object to <prefix><job id>.zip in the destination bucket.
func (s *Signer) StartSigningJob(ctx context.Context, in *signer.StartSigningJobInput, _ ...func(*signer.Options)) (*signer.StartSigningJobOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if in.Source == nil || in.Source.S3 == nil || in.Destination == nil || in.Destination.S3 == nil || in.ProfileName == nil {
		return nil, &signertypes.ValidationException{Message: aws.String("source, destination and profileName are required")}
	}
	src, dst := in.Source.S3, in.Destination.S3
	if aws.ToString(src.Version) == "" {
		return nil, &signertypes.ValidationException{Message: aws.String("source object version is required (the bucket must be versioned)")}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok := aws.ToString(in.ClientRequestToken); tok != "" {
		if id, ok := s.tokens[tok]; ok {
			return &signer.StartSigningJobOutput{JobId: aws.String(id)}, nil
		}
	}
	p := s.profiles[aws.ToString(in.ProfileName)]
	if p == nil {
		return nil, &signertypes.ResourceNotFoundException{Message: aws.String("signing profile not found: " + aws.ToString(in.ProfileName))}
	}
	if p.PlatformID != LambdaPlatform {
		return nil, &signertypes.ValidationException{Message: aws.String("profile platform " + p.PlatformID + " cannot sign Lambda code")}
	}
	if p.Revoked {
		return nil, &signertypes.ValidationException{Message: aws.String("signing profile is revoked")}
	}
	s.next++
	id := fmt.Sprintf("job-%04d", s.next)
	if tok := aws.ToString(in.ClientRequestToken); tok != "" {
		s.tokens[tok] = id
	}
	j := &job{out: signer.DescribeSigningJobOutput{
		JobId: aws.String(id), ProfileName: aws.String(p.Name), ProfileVersion: aws.String(p.Version),
		PlatformId: aws.String(p.PlatformID), Source: in.Source,
	}}
	s.jobs[id] = j
	obj, ok := s.S3.Get(aws.ToString(src.BucketName), aws.ToString(src.Key), aws.ToString(src.Version))
	if !ok {
		j.out.Status = signertypes.SigningStatusFailed
		j.out.StatusReason = aws.String("Source object not found: s3://" + aws.ToString(src.BucketName) + "/" + aws.ToString(src.Key) + " version " + aws.ToString(src.Version))
		return &signer.StartSigningJobOutput{JobId: aws.String(id)}, nil
	}
	key := aws.ToString(dst.Prefix) + id + ".zip"
	s.S3.put(aws.ToString(dst.BucketName), key, obj.Body, map[string]string{
		metaSignature: signature(p.key, obj.Body),
		metaProfile:   p.VersionArn,
	})
	j.out.Status = signertypes.SigningStatusSucceeded
	j.out.SignedObject = &signertypes.SignedObject{S3: &signertypes.S3SignedObject{BucketName: dst.BucketName, Key: aws.String(key)}}
	return &signer.StartSigningJobOutput{JobId: aws.String(id)}, nil
}

// DescribeSigningJob reports InProgress for the first Polls calls, then the
// job's outcome.
func (s *Signer) DescribeSigningJob(ctx context.Context, in *signer.DescribeSigningJobInput, _ ...func(*signer.Options)) (*signer.DescribeSigningJobOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[aws.ToString(in.JobId)]
	if j == nil {
		return nil, &signertypes.ResourceNotFoundException{Message: aws.String("job not found")}
	}
	out := j.out
	if j.polls < s.Polls {
		j.polls++
		out.Status = signertypes.SigningStatusInProgress
		out.SignedObject, out.StatusReason = nil, nil
	}
	return &out, nil
}

// CodeSigningConfig is a function's code signing configuration.
type CodeSigningConfig struct {
	AllowedProfileVersionArns []string
	// Enforce is UntrustedArtifactOnDeployment: Enforce (else Warn).
	Enforce bool
}

// Function is a Lambda function.
type Function struct {
	Name        string
	CodeSigning *CodeSigningConfig
	Code        []byte
	Arch        string
	Version     int
}

// Lambda is an in-memory Lambda that deploys code from S3 and checks code
// signatures made by Signer.
type Lambda struct {
	S3     *S3
	Signer *Signer

	mu        sync.Mutex
	functions map[string]*Function
}

// NewLambda returns a Lambda reading code from s3 and signatures from sig.
func NewLambda(s3 *S3, sig *Signer) *Lambda {
	return &Lambda{S3: s3, Signer: sig, functions: map[string]*Function{}}
}

// AddFunction creates a function.
func (l *Lambda) AddFunction(f *Function) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.functions[f.Name] = f
}

// Function returns a function's current state.
func (l *Lambda) Function(name string) Function {
	l.mu.Lock()
	defer l.mu.Unlock()
	return *l.functions[name]
}

// UpdateFunctionCode deploys S3 code, checking its signature as Lambda does:
// integrity always, then (in Enforce mode) that it is signed at all, by an
// allowed profile version that is not revoked.
func (l *Lambda) UpdateFunctionCode(ctx context.Context, in *lambda.UpdateFunctionCodeInput, _ ...func(*lambda.Options)) (*lambda.UpdateFunctionCodeOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	f := l.functions[aws.ToString(in.FunctionName)]
	l.mu.Unlock()
	if f == nil {
		return nil, &lambdatypes.ResourceNotFoundException{Message: aws.String("Function not found: " + aws.ToString(in.FunctionName))}
	}
	if in.ZipFile != nil || in.S3Bucket == nil || in.S3Key == nil {
		return nil, &lambdatypes.InvalidParameterValueException{Message: aws.String("this fake deploys from S3 only")}
	}
	obj, ok := l.S3.Get(*in.S3Bucket, *in.S3Key, aws.ToString(in.S3ObjectVersion))
	if !ok {
		return nil, &lambdatypes.InvalidParameterValueException{Message: aws.String("Error occurred while GetObject. S3 Error Code: NoSuchKey")}
	}
	if csc := f.CodeSigning; csc != nil {
		if err := l.verify(csc, obj); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f.Code = obj.Body
	if len(in.Architectures) == 1 {
		f.Arch = string(in.Architectures[0])
	}
	if in.Publish {
		f.Version++
	}
	sum := sha256.Sum256(obj.Body)
	return &lambda.UpdateFunctionCodeOutput{
		FunctionName: aws.String(f.Name),
		FunctionArn:  aws.String("arn:aws:lambda:eu-west-1:123456789012:function:" + f.Name),
		Version:      aws.String(map[bool]string{true: strconv.Itoa(f.Version), false: "$LATEST"}[in.Publish]),
		CodeSha256:   aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	}, nil
}

func (l *Lambda) verify(csc *CodeSigningConfig, obj Object) error {
	sig, arn := obj.Metadata[metaSignature], obj.Metadata[metaProfile]
	if sig == "" {
		if csc.Enforce {
			return &lambdatypes.CodeVerificationFailedException{Message: aws.String("Lambda cannot deploy the function. The function or layer might be signed using a signature that the client is not configured to accept. Check the provided signature.")}
		}
		return nil
	}
	p := l.Signer.byVersionArn(arn)
	if p == nil || !hmac.Equal([]byte(sig), []byte(signature(p.key, obj.Body))) {
		return &lambdatypes.InvalidCodeSignatureException{Message: aws.String("The code signature failed the integrity check.")}
	}
	if (p.Revoked || !slices.Contains(csc.AllowedProfileVersionArns, arn)) && csc.Enforce {
		return &lambdatypes.CodeVerificationFailedException{Message: aws.String("Lambda cannot deploy the function. The code signature is not from an allowed publisher (" + arn + ").")}
	}
	return nil
}
