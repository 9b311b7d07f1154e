package release_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ethkeygen/ethkeygen/release"
)

// repoRoot returns the repository the test runs in, and its HEAD.
func repoRoot(t *testing.T) (root, head string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	out, err := exec.Command("git", "rev-parse", "--show-toplevel", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	f := strings.Fields(string(out))
	return f[0], f[1]
}

// lambdaPackage is the Lambda adapter when the checkout has it, else the CLI
// (same dependencies, cgo included) so the build is still exercised.
func lambdaPackage(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "adapters", "lambda")); err == nil {
		return release.DefaultPackage
	}
	return "./adapters/ethkeygen"
}

func hostArch() string {
	if runtime.GOARCH == "arm64" {
		return "arm64"
	}
	return "x86_64"
}

// TestBuildIsReproducible builds the zip from two clones of HEAD in
// different directories and requires the same SHA-256: first in clone b
// from an empty build cache (a reviewer's build from scratch: nothing
// compiled is taken from anywhere), then in clone a with the cache b's
// build left (a developer's cached build; the cgo packages, whose flags
// name the directory, compile again). Then Verify, the release manager's
// step, accepts a's manifest from clone b and refuses a manifest with
// another hash. It takes minutes (the BLS library is cgo), so it runs only
// without -short.
func TestBuildIsReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Lambda binary twice from scratch; run without -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the release build runs on linux")
	}
	root, head := repoRoot(t)
	ctx := t.Context()
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "checkout-a"), filepath.Join(tmp, "elsewhere", "checkout-b")
	for _, d := range []string{a, b} {
		if err := release.Checkout(ctx, root, head, d); err != nil {
			t.Fatal(err)
		}
	}
	pkg := lambdaPackage(a)
	t.Logf("building %s at %s for %s", pkg, head, hostArch())

	cacheB := []string{"GOCACHE=" + filepath.Join(tmp, "gocache-b")}
	start := time.Now()
	mb, err := release.Build(ctx, release.Config{
		Dir: b, Package: lambdaPackage(b), Arch: hostArch(), OutDir: filepath.Join(tmp, "out-b"), Env: cacheB,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build b (empty cache) took %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	ma, err := release.Build(ctx, release.Config{Dir: a, Package: pkg, Arch: hostArch(), OutDir: filepath.Join(tmp, "out-a"), Env: cacheB})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build a (b's cache, another directory) took %v", time.Since(start).Round(time.Millisecond))
	t.Logf("zip sha256 %s / %s, bootstrap sha256 %s / %s", ma.ZipSHA256, mb.ZipSHA256, ma.BootstrapSHA256, mb.BootstrapSHA256)
	if err := release.Compare(ma, mb); err != nil {
		t.Fatalf("not reproducible: %v", err)
	}
	zipA, err := os.ReadFile(filepath.Join(tmp, "out-a", ma.Zip))
	if err != nil {
		t.Fatal(err)
	}
	if release.SHA256(zipA) != ma.ZipSHA256 {
		t.Fatal("the zip on disk is not the manifest's")
	}
	written, err := release.ReadManifest(filepath.Join(tmp, "out-a", release.ManifestName(hostArch())))
	if err != nil {
		t.Fatal(err)
	}

	// Verify rebuilds in b with b's cache: the cold build above already
	// showed that nothing compiled is needed from elsewhere.
	start = time.Now()
	if _, err := release.Verify(ctx, release.Config{Dir: b, Env: cacheB}, written); err != nil {
		t.Fatalf("Verify of the reviewed manifest: %v", err)
	}
	t.Logf("Verify took %v", time.Since(start).Round(time.Millisecond))
	forged := *written
	forged.ZipSHA256 = strings.Repeat("0", 64)
	if _, err := release.Verify(ctx, release.Config{Dir: b, Env: cacheB}, &forged); !errors.Is(err, release.ErrMismatch) {
		t.Fatalf("Verify of a forged manifest: err = %v, want ErrMismatch", err)
	}
	if err := os.WriteFile(filepath.Join(b, "stray.go"), []byte("package x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := release.Verify(ctx, release.Config{Dir: b}, written); !errors.Is(err, release.ErrDirty) {
		t.Fatalf("Verify in a dirty tree: err = %v, want ErrDirty", err)
	}
}
