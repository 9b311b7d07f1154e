// Package release builds, verifies, signs and deploys the ethkeygen Lambda
// function, for the two roles of a release:
//
//   - the developer runs [Build] at a commit and pushes the commit with the
//     [Manifest] for review;
//   - the release manager runs [Verify] in a clean checkout of the reviewed
//     commit, which rebuilds the zip and compares its SHA-256 with the
//     manifest, then [UploadAndSign] (S3 PutObject into a versioned bucket,
//     AWS Signer StartSigningJob, DescribeSigningJob until it ends) and
//     [Deploy] (Lambda UpdateFunctionCode with the signed object) or
//     [StackParameters] for the CloudFormation template in examples/deploy.
//
// # Reproducibility
//
// The same commit, Go toolchain and C compiler give the same bytes: the
// binary is built with -trimpath, no VCS stamping, an empty build id, a
// pinned environment (GOFLAGS, GOAMD64/GOARM64, GOTOOLCHAIN=local) and C
// flags that map the source directory away; the zip holds one entry,
// bootstrap, with a fixed time (1980-01-01), mode 0755 and Deflate at a
// fixed level. The manifest records the Go and C compiler versions, which a
// rebuild must share.
//
// # Security
//
// Signing is what Lambda enforces (the template's code signing config is in
// Enforce mode): an unsigned object, or one signed by another profile, is
// refused by Lambda itself. Verify is what ties the signature to reviewed
// source: sign only a zip whose hash the release manager reproduced.
// UploadAndSign re-checks the zip's SHA-256 against the manifest before
// uploading and sends it as the S3 checksum, so the object signed is the
// object verified.
package release
