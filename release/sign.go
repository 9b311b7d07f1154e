package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	signertypes "github.com/aws/aws-sdk-go-v2/service/signer/types"
)

// S3API is the part of the S3 client UploadAndSign uses.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
}

// SignerAPI is the part of the AWS Signer client UploadAndSign uses.
type SignerAPI interface {
	StartSigningJob(ctx context.Context, in *signer.StartSigningJobInput, optFns ...func(*signer.Options)) (*signer.StartSigningJobOutput, error)
	DescribeSigningJob(ctx context.Context, in *signer.DescribeSigningJobInput, optFns ...func(*signer.Options)) (*signer.DescribeSigningJobOutput, error)
}

var (
	_ S3API     = (*s3.Client)(nil)
	_ SignerAPI = (*signer.Client)(nil)
)

// Default polling of a signing job.
const (
	DefaultPollInterval = 2 * time.Second
	DefaultMaxPoll      = 15 * time.Second
	DefaultSignTimeout  = 10 * time.Minute
)

// SignInput says what to upload and how to sign it.
type SignInput struct {
	// Zip is the release zip; its SHA-256 must equal Manifest.ZipSHA256.
	Zip      []byte
	Manifest *Manifest
	// Bucket must have versioning enabled; Key is where the unsigned zip
	// goes (e.g. unsigned/<commit>/ethkeygen-lambda-arm64.zip).
	Bucket, Key string
	// ProfileName is the AWS Signer profile (the template's
	// SigningProfileName output), platform AWSLambda-SHA384-ECDSA.
	ProfileName string
	// DestinationBucket and DestinationPrefix receive the signed zip
	// (DestinationBucket defaults to Bucket).
	DestinationBucket, DestinationPrefix string
	// PollInterval is the first wait between DescribeSigningJob calls; it
	// grows by half each time up to MaxPoll. Timeout bounds the whole wait.
	PollInterval, MaxPoll, Timeout time.Duration
}

// Signed is the signed object to deploy.
type Signed struct {
	Bucket, Key string
	// VersionID is the S3 version of the signed object, read right after
	// the signing job: the stack (CodeObjectVersion) and Deploy pin it.
	VersionID string `json:",omitempty"`
	// SourceVersionID is the S3 version of the unsigned zip that was signed.
	SourceVersionID string
	JobID           string
	// ProfileName and ProfileVersion name the signing profile version that
	// signed it; the code signing config must allow that version.
	ProfileName, ProfileVersion string
}

// UploadAndSign uploads the zip (after checking it against the manifest),
// starts an AWS Signer job on the uploaded object version, and waits for it.
// It returns the signed object, or an error wrapping ErrSigning if the job
// failed or did not finish within the timeout.
func UploadAndSign(ctx context.Context, s3c S3API, sc SignerAPI, in SignInput) (*Signed, error) {
	if in.Manifest == nil || in.Bucket == "" || in.Key == "" || in.ProfileName == "" {
		return nil, fmt.Errorf("%w: UploadAndSign needs a manifest, bucket, key and profile name", ErrInvalid)
	}
	if got := SHA256(in.Zip); got != in.Manifest.ZipSHA256 {
		return nil, fmt.Errorf("%w: zip sha256 %s is not the manifest's %s", ErrMismatch, got, in.Manifest.ZipSHA256)
	}
	sum := sha256.Sum256(in.Zip)
	put, err := s3c.PutObject(ctx, &s3.PutObjectInput{
		Bucket:            aws.String(in.Bucket),
		Key:               aws.String(in.Key),
		Body:              bytes.NewReader(in.Zip),
		ContentLength:     aws.Int64(int64(len(in.Zip))),
		ContentType:       aws.String("application/zip"),
		ChecksumAlgorithm: s3types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		Metadata: map[string]string{
			"ethkeygen-commit": in.Manifest.Commit,
			"ethkeygen-sha256": in.Manifest.ZipSHA256,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("release: s3 PutObject s3://%s/%s: %w", in.Bucket, in.Key, err)
	}
	version := aws.ToString(put.VersionId)
	if version == "" || version == "null" {
		return nil, fmt.Errorf("%w: s3://%s has no object versions; enable versioning (AWS Signer signs a versioned object)", ErrUnversioned, in.Bucket)
	}
	dst := in.DestinationBucket
	if dst == "" {
		dst = in.Bucket
	}
	start, err := sc.StartSigningJob(ctx, &signer.StartSigningJobInput{
		ProfileName: aws.String(in.ProfileName),
		// Idempotent per uploaded version: a retried call starts no
		// second job.
		ClientRequestToken: aws.String(in.Manifest.ZipSHA256[:32] + version),
		Source: &signertypes.Source{S3: &signertypes.S3Source{
			BucketName: aws.String(in.Bucket), Key: aws.String(in.Key), Version: aws.String(version),
		}},
		Destination: &signertypes.Destination{S3: &signertypes.S3Destination{
			BucketName: aws.String(dst), Prefix: aws.String(in.DestinationPrefix),
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: StartSigningJob (profile %s, s3://%s/%s version %s): %w", ErrSigning, in.ProfileName, in.Bucket, in.Key, version, err)
	}
	jobID := aws.ToString(start.JobId)
	job, err := waitSigningJob(ctx, sc, jobID, in)
	if err != nil {
		return nil, err
	}
	if job.SignedObject == nil || job.SignedObject.S3 == nil || aws.ToString(job.SignedObject.S3.Key) == "" {
		return nil, fmt.Errorf("%w: job %s succeeded without a signed object", ErrSigning, jobID)
	}
	signedBucket, signedKey := aws.ToString(job.SignedObject.S3.BucketName), aws.ToString(job.SignedObject.S3.Key)
	// Pin the signed object's version now, so that the stack and Deploy
	// name it rather than whatever is at the key later.
	head, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(signedBucket), Key: aws.String(signedKey)})
	if err != nil {
		return nil, fmt.Errorf("release: s3 HeadObject s3://%s/%s: %w", signedBucket, signedKey, err)
	}
	if v := aws.ToString(head.VersionId); v == "" || v == "null" {
		return nil, fmt.Errorf("%w: the signed object s3://%s/%s has no version id (enable versioning on the destination bucket)", ErrUnversioned, signedBucket, signedKey)
	}
	return &Signed{
		Bucket:          signedBucket,
		Key:             signedKey,
		VersionID:       aws.ToString(head.VersionId),
		SourceVersionID: version,
		JobID:           jobID,
		ProfileName:     aws.ToString(job.ProfileName),
		ProfileVersion:  aws.ToString(job.ProfileVersion),
	}, nil
}

func waitSigningJob(ctx context.Context, sc SignerAPI, jobID string, in SignInput) (*signer.DescribeSigningJobOutput, error) {
	interval, maxPoll, timeout := in.PollInterval, in.MaxPoll, in.Timeout
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	if maxPoll <= 0 {
		maxPoll = DefaultMaxPoll
	}
	if timeout <= 0 {
		timeout = DefaultSignTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		out, err := sc.DescribeSigningJob(ctx, &signer.DescribeSigningJobInput{JobId: aws.String(jobID)})
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w: job %s not finished after %s", ErrSigning, jobID, timeout)
			}
			return nil, fmt.Errorf("%w: DescribeSigningJob %s: %w", ErrSigning, jobID, err)
		}
		switch out.Status {
		case signertypes.SigningStatusSucceeded:
			return out, nil
		case signertypes.SigningStatusFailed:
			return nil, fmt.Errorf("%w: job %s failed: %s", ErrSigning, jobID, aws.ToString(out.StatusReason))
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: job %s not finished after %s (status %s)", ErrSigning, jobID, timeout, out.Status)
		case <-t.C:
		}
		interval = min(interval+interval/2, maxPoll)
	}
}
