package release

import "errors"

var (
	// ErrInvalid reports a bad argument or manifest.
	ErrInvalid = errors.New("release: invalid")
	// ErrMismatch reports a rebuild whose hashes differ from the manifest.
	ErrMismatch = errors.New("release: rebuild does not match manifest")
	// ErrDirty reports a source tree with uncommitted changes, or one not
	// at the manifest's commit.
	ErrDirty = errors.New("release: source tree is not the clean commit")
	// ErrBuild reports a failed go build.
	ErrBuild = errors.New("release: build failed")
	// ErrUnversioned reports an upload to a bucket without versioning:
	// AWS Signer signs only a versioned source object.
	ErrUnversioned = errors.New("release: bucket is not versioned")
	// ErrSigning reports a signing job that failed or did not finish in
	// time.
	ErrSigning = errors.New("release: signing failed")
	// ErrCodeSigning reports a deployment Lambda refused because of the
	// code signature (CodeVerificationFailedException,
	// InvalidCodeSignatureException).
	ErrCodeSigning = errors.New("release: Lambda refused the code signature")
)
