// Command ethkeygen-release builds, verifies, signs and deploys the ethkeygen
// Lambda function. See examples/deploy/README.md for the two roles' steps.
//
//	ethkeygen-release build -arch arm64 [-src .] [-out dist] [-pkg ./adapters/lambda]
//	ethkeygen-release verify -manifest dist/ethkeygen-lambda-arm64.manifest.json [-src DIR | -repo URL] [-pkg ./adapters/lambda]
//	ethkeygen-release upload-and-sign -manifest M -zip Z -bucket B -profile P [-key K] [-dest-prefix P] > signed.json
//	ethkeygen-release deploy -signed signed.json -manifest M -function F [-publish]
//	ethkeygen-release stack-params -signed signed.json
//
// Errors go to stderr on one line, with exit status 1 (2 for usage).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/signer"

	"github.com/ethkeygen/ethkeygen/release"
)

var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ethkeygen-release:", strings.ReplaceAll(err.Error(), "\n", " | "))
		os.Exit(1)
	}
}

const usage = `usage: ethkeygen-release build|verify|upload-and-sign|deploy|stack-params [flags]
run a command with -h for its flags`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch cmd {
	case "build":
		src := fs.String("src", ".", "module root (a git checkout)")
		arch := fs.String("arch", "arm64", "Lambda architecture: arm64 or x86_64")
		out := fs.String("out", "", "output directory (default SRC/dist)")
		pkg := fs.String("pkg", release.DefaultPackage, "main package")
		dirty := fs.Bool("allow-dirty", false, "build a tree with uncommitted changes (the manifest says so; verify refuses it)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		m, err := release.Build(ctx, release.Config{Dir: *src, Arch: *arch, OutDir: *out, Package: *pkg, AllowDirty: *dirty})
		if err != nil {
			return err
		}
		return printJSON(stdout, m)

	case "verify":
		manifest := fs.String("manifest", "", "the reviewed manifest")
		src := fs.String("src", "", "a clean checkout of the manifest's commit")
		repo := fs.String("repo", "", "or: a repository to clone at the manifest's commit into a temporary directory")
		pkg := fs.String("pkg", release.DefaultPackage, "main package to build (the release manager's choice; the manifest's must match it)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *manifest == "" || (*src == "") == (*repo == "") {
			fmt.Fprintln(stderr, "verify needs -manifest and one of -src, -repo")
			return errUsage
		}
		want, err := release.ReadManifest(*manifest)
		if err != nil {
			return err
		}
		dir := *src
		if *repo != "" {
			tmp, err := os.MkdirTemp("", "ethkeygen-verify-src-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dir = tmp + "/src"
			if err := release.Checkout(ctx, *repo, want.Commit, dir); err != nil {
				return err
			}
		}
		got, err := release.Verify(ctx, release.Config{Dir: dir, Package: *pkg}, want)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, release.VerifiedReport(got))
		return nil

	case "upload-and-sign":
		manifest := fs.String("manifest", "", "the verified manifest")
		zipPath := fs.String("zip", "", "the zip (default: the manifest's zip beside it)")
		bucket := fs.String("bucket", "", "versioned S3 bucket")
		key := fs.String("key", "", "S3 key of the unsigned zip (default unsigned/COMMIT/ZIP)")
		profile := fs.String("profile", "", "AWS Signer profile name (the stack's SigningProfileName output)")
		destBucket := fs.String("dest-bucket", "", "bucket for the signed zip (default -bucket)")
		destPrefix := fs.String("dest-prefix", "", "key prefix for the signed zip (default signed/COMMIT/)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *manifest == "" || *bucket == "" || *profile == "" {
			fmt.Fprintln(stderr, "upload-and-sign needs -manifest, -bucket and -profile")
			return errUsage
		}
		m, err := release.ReadManifest(*manifest)
		if err != nil {
			return err
		}
		if *zipPath == "" {
			*zipPath = strings.TrimSuffix(*manifest, release.ManifestName(m.Arch)) + m.Zip
		}
		if *key == "" {
			*key = "unsigned/" + m.Commit + "/" + m.Zip
		}
		if *destPrefix == "" {
			*destPrefix = "signed/" + m.Commit + "/"
		}
		z, err := os.ReadFile(*zipPath)
		if err != nil {
			return err
		}
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return err
		}
		signed, err := release.UploadAndSign(ctx, s3.NewFromConfig(cfg), signer.NewFromConfig(cfg), release.SignInput{
			Zip: z, Manifest: m, Bucket: *bucket, Key: *key, ProfileName: *profile,
			DestinationBucket: *destBucket, DestinationPrefix: *destPrefix,
		})
		if err != nil {
			return err
		}
		return printJSON(stdout, struct {
			*release.Signed
			Arch string `json:"Arch"`
		}{signed, m.Arch})

	case "deploy", "stack-params":
		signedPath := fs.String("signed", "", "the JSON upload-and-sign printed")
		function := fs.String("function", "", "function name (the stack's FunctionName output)")
		manifestPath := fs.String("manifest", "", "the verified manifest (deploy: the bootstrap and the deployed CodeSha256 are checked against it)")
		publish := fs.Bool("publish", true, "publish a new version")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *signedPath == "" || (cmd == "deploy" && (*function == "" || *manifestPath == "")) {
			fmt.Fprintf(stderr, "%s needs -signed%s\n", cmd, map[bool]string{true: ", -manifest and -function"}[cmd == "deploy"])
			return errUsage
		}
		b, err := os.ReadFile(*signedPath)
		if err != nil {
			return err
		}
		var s struct {
			release.Signed
			Arch string
		}
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("%w: %s: %w", release.ErrInvalid, *signedPath, err)
		}
		if cmd == "stack-params" {
			fmt.Fprintln(stdout, strings.Join(release.StackParameters(&s.Signed, s.Arch), " "))
			return nil
		}
		m, err := release.ReadManifest(*manifestPath)
		if err != nil {
			return err
		}
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return err
		}
		d, err := release.Deploy(ctx, lambda.NewFromConfig(cfg), s3.NewFromConfig(cfg),
			release.DeployInput{FunctionName: *function, Signed: &s.Signed, Manifest: m, Arch: s.Arch, Publish: *publish})
		if err != nil {
			return err
		}
		return printJSON(stdout, d)
	}
	fmt.Fprintln(stderr, usage)
	return errUsage
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
