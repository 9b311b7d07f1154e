package release

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// DefaultPackage is the Lambda adapter's main package: the one package
// Verify builds unless the release manager names another on its command
// line. The manifest's package is never trusted.
const DefaultPackage = "./adapters/lambda"

// CheckPackage refuses a main package that `go test ./...`, `go vet ./...`
// and linters never see: a path with a testdata, vendor, "." or "_" element
// (the go command skips those directories in ./... patterns), or anything
// but a clean "./dir/..." path inside the module.
func CheckPackage(pkg string) error {
	rest, ok := strings.CutPrefix(pkg, "./")
	if !ok || rest == "" || path.Clean(rest) != rest {
		return fmt.Errorf("%w: package %q: want a clean ./path inside the module", ErrInvalid, pkg)
	}
	for _, el := range strings.Split(rest, "/") {
		if el == "testdata" || el == "vendor" || el == ".." || strings.HasPrefix(el, ".") || strings.HasPrefix(el, "_") || strings.ContainsAny(el, "\\*") {
			return fmt.Errorf("%w: package %q: %q directories are not built, tested or vetted by ./...; a release is never built from one", ErrInvalid, pkg, el)
		}
	}
	return nil
}

// VersionVar is the linker variable that carries the commit into the binary.
const VersionVar = "github.com/ethkeygen/ethkeygen/internal/version.buildHash"

// ZipTime is the modification time of the zip's one entry: the earliest an
// MS-DOS timestamp can hold, so that the zip does not depend on the clock.
var ZipTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// zipLevel is the fixed Deflate level of the zip. The compressed bytes also
// depend on the Go version's compress/flate, which the manifest records.
const zipLevel = flate.BestCompression

// Config says what to build.
type Config struct {
	// Dir is the root of the module's source tree (a git checkout).
	Dir string
	// Package is the main package, relative to Dir (DefaultPackage if empty).
	Package string
	// Arch is the Lambda architecture: "arm64" or "x86_64".
	Arch string
	// OutDir receives the zip and the manifest (Dir/dist if empty).
	OutDir string
	// Commit is the commit built; if empty, Dir's HEAD. It is linked into
	// the binary as the build hash.
	Commit string
	// AllowDirty builds a tree with uncommitted changes; the manifest says
	// so, and Verify refuses such a manifest.
	AllowDirty bool
	// Go is the go command (default "go" on the PATH).
	Go string
	// CC is the C compiler (default: gcc for the host architecture,
	// aarch64-linux-gnu-gcc or x86_64-linux-gnu-gcc to cross-compile).
	CC string
	// Env is added to the build's environment last, e.g. GOCACHE=... .
	Env []string
}

// Manifest describes one release zip. The developer commits it for review;
// the release manager's rebuild must give the same hashes.
type Manifest struct {
	Schema          int      `json:"schema"`
	Commit          string   `json:"commit"`
	Dirty           bool     `json:"dirty,omitempty"`
	Package         string   `json:"package"`
	Arch            string   `json:"arch"`
	GOOS            string   `json:"goos"`
	GOARCH          string   `json:"goarch"`
	GoVersion       string   `json:"go_version"`
	CCVersion       string   `json:"cc_version"`
	Zip             string   `json:"zip"`
	ZipSHA256       string   `json:"zip_sha256"`
	BootstrapSHA256 string   `json:"bootstrap_sha256"`
	BuildFlags      []string `json:"build_flags"`
	BuildEnv        []string `json:"build_env"`
	// MainPath and Modules are read from the built binary's build info: the
	// import path of its main package and every module linked in
	// ("path@version"), as verify prints them.
	MainPath string   `json:"main_path,omitempty"`
	Modules  []string `json:"modules,omitempty"`
}

// ZipName is the zip's file name for a Lambda architecture.
func ZipName(arch string) string { return "ethkeygen-lambda-" + arch + ".zip" }

// ManifestName is the manifest's file name for a Lambda architecture.
func ManifestName(arch string) string { return "ethkeygen-lambda-" + arch + ".manifest.json" }

func goarch(arch string) (string, error) {
	switch arch {
	case "arm64":
		return "arm64", nil
	case "x86_64":
		return "amd64", nil
	}
	return "", fmt.Errorf("%w: architecture %q (want arm64 or x86_64)", ErrInvalid, arch)
}

func (c *Config) defaults() (string, error) {
	if c.Dir == "" {
		return "", fmt.Errorf("%w: no source directory", ErrInvalid)
	}
	abs, err := filepath.Abs(c.Dir)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	c.Dir = abs
	if c.Package == "" {
		c.Package = DefaultPackage
	}
	if c.OutDir == "" {
		c.OutDir = filepath.Join(c.Dir, "dist")
	}
	if c.Go == "" {
		c.Go = "go"
	}
	ga, err := goarch(c.Arch)
	if err != nil {
		return "", err
	}
	if c.CC == "" {
		c.CC = "gcc"
		if ga != runtime.GOARCH {
			c.CC = map[string]string{"arm64": "aarch64-linux-gnu-gcc", "amd64": "x86_64-linux-gnu-gcc"}[ga]
		}
	}
	return ga, nil
}

// gitState returns Dir's HEAD and whether its tree has uncommitted changes
// (untracked files included: they could be compiled in).
func gitState(ctx context.Context, dir string) (head string, dirty bool, err error) {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return "", false, fmt.Errorf("%w: git rev-parse HEAD in %s: %w", ErrInvalid, dir, err)
	}
	head = strings.TrimSpace(string(out))
	st, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=normal").Output()
	if err != nil {
		return "", false, fmt.Errorf("%w: git status in %s: %w", ErrInvalid, dir, err)
	}
	return head, len(bytes.TrimSpace(st)) > 0, nil
}

// buildFlags are the go build flags; the commit goes into the build hash.
func buildFlags(commit string) []string {
	return []string{
		"-trimpath",
		"-buildvcs=false",
		"-ldflags=-s -w -buildid= -X " + VersionVar + "=" + commit + " -extldflags=-Wl,-z,noexecstack",
	}
}

// buildEnv is the pinned environment, recorded in the manifest. The source
// directory is mapped to "." in C debug and __FILE__ strings, so that two
// checkouts in different places give the same bytes.
func buildEnv(ga, cc string) []string {
	return []string{
		"GOOS=linux",
		"GOARCH=" + ga,
		"GOAMD64=v1",
		"GOARM64=v8.0",
		"CGO_ENABLED=1",
		"CC=" + cc,
		"CGO_CFLAGS=-O2 -g0 -ffile-prefix-map=${DIR}=.",
		"CGO_LDFLAGS=-O2",
		"GOFLAGS=-mod=readonly",
		"GOTOOLCHAIN=local",
		"GOEXPERIMENT=",
		"GOWORK=off",
	}
}

func expand(env []string, dir string) []string {
	out := make([]string, len(env))
	for i, e := range env {
		out[i] = strings.ReplaceAll(e, "${DIR}", dir)
	}
	return out
}

// Build compiles the Lambda binary as bootstrap, packs it into
// OutDir/ethkeygen-lambda-<arch>.zip and writes the manifest beside it. It
// refuses a package CheckPackage refuses.
func Build(ctx context.Context, cfg Config) (*Manifest, error) {
	if cfg.Package == "" {
		cfg.Package = DefaultPackage
	}
	if err := CheckPackage(cfg.Package); err != nil {
		return nil, err
	}
	return build(ctx, cfg)
}

// build is Build without the package check.
func build(ctx context.Context, cfg Config) (*Manifest, error) {
	ga, err := cfg.defaults()
	if err != nil {
		return nil, err
	}
	head, dirty, err := gitState(ctx, cfg.Dir)
	if err != nil {
		return nil, err
	}
	if dirty && !cfg.AllowDirty {
		return nil, fmt.Errorf("%w: %s has uncommitted changes (commit them, or build with AllowDirty for a test build)", ErrDirty, cfg.Dir)
	}
	if cfg.Commit == "" {
		cfg.Commit = head
	} else if cfg.Commit != head {
		return nil, fmt.Errorf("%w: %s is at %s, not %s", ErrDirty, cfg.Dir, head, cfg.Commit)
	}

	tmp, err := os.MkdirTemp("", "ethkeygen-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bootstrap")

	flags := buildFlags(cfg.Commit)
	env := buildEnv(ga, cfg.CC)
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", bin, cfg.Package)
	cmd := exec.CommandContext(ctx, cfg.Go, args...)
	cmd.Dir = cfg.Dir
	cmd.Env = append(append(os.Environ(), expand(env, cfg.Dir)...), cfg.Env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: go %s: %w\n%s", ErrBuild, strings.Join(args, " "), err, stderr.String())
	}

	goVersion, err := toolVersion(ctx, cfg.Dir, cmd.Env, cfg.Go, "env", "GOVERSION")
	if err != nil {
		return nil, err
	}
	ccVersion, err := toolVersion(ctx, cfg.Dir, cmd.Env, cfg.CC, "--version")
	if err != nil {
		return nil, err
	}

	bootstrap, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	if err := CheckBinary(bootstrap, ga, cfg.Dir, tmp); err != nil {
		return nil, err
	}
	bi, err := buildinfo.Read(bytes.NewReader(bootstrap))
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap has no build info: %w", ErrBuild, err)
	}
	var modules []string
	for _, d := range bi.Deps {
		mod := d.Path + "@" + d.Version
		if r := d.Replace; r != nil {
			mod += " => " + r.Path
			if r.Version != "" {
				mod += "@" + r.Version
			}
		}
		modules = append(modules, mod)
	}
	var z bytes.Buffer
	if err := WriteZip(&z, bootstrap); err != nil {
		return nil, err
	}
	m := &Manifest{
		Schema:          1,
		Commit:          cfg.Commit,
		Dirty:           dirty,
		Package:         cfg.Package,
		Arch:            cfg.Arch,
		GOOS:            "linux",
		GOARCH:          ga,
		GoVersion:       goVersion,
		CCVersion:       ccVersion,
		Zip:             ZipName(cfg.Arch),
		ZipSHA256:       SHA256(z.Bytes()),
		BootstrapSHA256: SHA256(bootstrap),
		BuildFlags:      flags,
		BuildEnv:        env,
		MainPath:        bi.Path,
		Modules:         modules,
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.OutDir, m.Zip), z.Bytes(), 0o644); err != nil {
		return nil, err
	}
	if err := WriteManifest(filepath.Join(cfg.OutDir, ManifestName(cfg.Arch)), m); err != nil {
		return nil, err
	}
	return m, nil
}

func toolVersion(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s %s: %w", ErrBuild, name, strings.Join(args, " "), err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}

// WriteZip writes a zip holding one entry, bootstrap, with content b, mode
// 0755, modification time ZipTime and Deflate at a fixed level: the same b
// always gives the same bytes (with the same Go version).
func WriteZip(w io.Writer, b []byte) error {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, zipLevel)
	})
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: ZipTime}
	h.SetMode(0o755)
	f, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return err
	}
	return zw.Close()
}

// SHA256 is the lowercase hex SHA-256 of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// WriteManifest writes m as indented JSON.
func WriteManifest(path string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadManifest reads a manifest and checks that it is complete.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %w", ErrInvalid, path, err)
	}
	if m.Schema != 1 || !isHex(m.Commit, 40) || !isHex(m.ZipSHA256, 64) || !isHex(m.BootstrapSHA256, 64) || m.Arch == "" {
		return nil, fmt.Errorf("%w: manifest %s: missing or malformed schema, commit, arch or hashes", ErrInvalid, path)
	}
	if _, err := goarch(m.Arch); err != nil {
		return nil, err
	}
	return &m, nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// Compare checks a rebuild against the reviewed manifest: same commit, same
// zip and bootstrap hashes. On a mismatch the error names what differs,
// including toolchain versions, in one line.
func Compare(want, got *Manifest) error {
	if want.Dirty {
		return fmt.Errorf("%w: the manifest was built from a dirty tree", ErrDirty)
	}
	if want.Commit != got.Commit || want.Arch != got.Arch {
		return fmt.Errorf("%w: manifest is %s/%s, rebuild is %s/%s", ErrMismatch, want.Commit, want.Arch, got.Commit, got.Arch)
	}
	if want.ZipSHA256 == got.ZipSHA256 && want.BootstrapSHA256 == got.BootstrapSHA256 {
		return nil
	}
	var hint []string
	if want.GoVersion != got.GoVersion {
		hint = append(hint, fmt.Sprintf("go %s vs %s", want.GoVersion, got.GoVersion))
	}
	if want.CCVersion != got.CCVersion {
		hint = append(hint, fmt.Sprintf("cc %q vs %q", want.CCVersion, got.CCVersion))
	}
	detail := ""
	if len(hint) > 0 {
		detail = "; toolchains differ: " + strings.Join(hint, ", ")
	}
	return fmt.Errorf("%w: zip sha256 %s, rebuilt %s (bootstrap %s, rebuilt %s)%s",
		ErrMismatch, want.ZipSHA256, got.ZipSHA256, want.BootstrapSHA256, got.BootstrapSHA256, detail)
}

// Verify rebuilds the zip in cfg.Dir, which must be a clean checkout of the
// manifest's commit, into a temporary directory, and compares it with the
// manifest. The release manager signs only after Verify returns nil.
func Verify(ctx context.Context, cfg Config, want *Manifest) (*Manifest, error) {
	if want.Dirty {
		return nil, fmt.Errorf("%w: the manifest was built from a dirty tree", ErrDirty)
	}
	cfg.Arch = want.Arch
	cfg.Commit = want.Commit
	cfg.AllowDirty = false
	// The package built is the release manager's choice (DefaultPackage
	// unless given), never the manifest's: a manifest naming another
	// package is refused before anything is built.
	if cfg.Package == "" {
		cfg.Package = DefaultPackage
	}
	if err := CheckPackage(cfg.Package); err != nil {
		return nil, err
	}
	if err := CheckPackage(want.Package); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if want.Package != cfg.Package {
		return nil, fmt.Errorf("%w: the manifest names package %q; verify builds %q (the release manager chooses the package, not the manifest)",
			ErrInvalid, want.Package, cfg.Package)
	}
	out, err := os.MkdirTemp("", "ethkeygen-verify-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	cfg.OutDir = out
	got, err := Build(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(got.MainPath, "/"+strings.TrimPrefix(cfg.Package, "./")) {
		return got, fmt.Errorf("%w: the binary's main package is %q, not %s", ErrMismatch, got.MainPath, cfg.Package)
	}
	return got, Compare(want, got)
}

// VerifiedReport is what `ethkeygen-release verify` prints for a verified
// rebuild: the package, commit, architecture, hashes and every module
// version linked into the binary, one per line after the OK line.
func VerifiedReport(m *Manifest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "OK package %s (%s) commit %s %s zip sha256 %s bootstrap sha256 %s %s\n",
		m.Package, m.MainPath, m.Commit, m.Arch, m.ZipSHA256, m.BootstrapSHA256, m.GoVersion)
	for _, mod := range m.Modules {
		fmt.Fprintf(&b, "  module %s\n", mod)
	}
	return b.String()
}

// Checkout clones repo (a path or URL git understands) into dir and checks
// out commit, detached: the clean tree Verify wants.
func Checkout(ctx context.Context, repo, commit, dir string) error {
	if !isHex(commit, 40) {
		return fmt.Errorf("%w: commit %q is not a full 40-hex id", ErrInvalid, commit)
	}
	for _, args := range [][]string{
		{"clone", "--quiet", "--no-checkout", repo, dir},
		{"-C", dir, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit},
	} {
		if out, err := exec.CommandContext(ctx, "git", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%w: git %s: %w: %s", ErrInvalid, strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}
