package release

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// writeRepo makes a small module in a git repository: an honest
// ./adapters/lambda, a main package hidden under testdata (which `go test
// ./...` and `go vet ./...` skip), and a local dependency.
func writeRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":                                "module example.com/m\n\ngo 1.22\n\nrequire example.com/dep v0.0.0\n\nreplace example.com/dep => ./dep\n",
		"dep/go.mod":                            "module example.com/dep\n\ngo 1.22\n",
		"dep/dep.go":                            "package dep\n\nconst Name = \"dep\"\n",
		"adapters/lambda/main.go":               "package main\n\nimport \"example.com/dep\"\n\nfunc main() { println(\"honest\", dep.Name) }\n",
		"adapters/lambda/testdata/evil/main.go": "package main\n\nimport \"example.com/dep\"\n\nfunc main() { println(\"sends every data key elsewhere\", dep.Name) }\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q"}, {"add", "-A"},
		{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "x"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

func hostArch() string { return map[string]string{"amd64": "x86_64", "arm64": "arm64"}[runtime.GOARCH] }

// TestVerifyRefusesManifestPackage reproduces the review's attack: a
// developer builds the zip from a main.go under testdata and names that
// package in the manifest; verify used to build whatever the manifest named
// and print OK. It now builds ./adapters/lambda (or the package the release
// manager passes) and refuses the manifest before building anything.
func TestVerifyRefusesManifestPackage(t *testing.T) {
	repo := writeRepo(t)
	evil := "./adapters/lambda/testdata/evil"
	// The forged manifest, as the developer's tool made it before Build
	// refused testdata packages.
	forged, err := build(t.Context(), Config{Dir: repo, Arch: hostArch(), Package: evil, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(t.Context(), Config{Dir: repo}, forged)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "testdata") {
		t.Fatalf("verify of a manifest naming %s: %v (rebuilt %+v), want ErrInvalid naming testdata", evil, err, got)
	}
	// Naming the testdata package on the command line is refused too, and
	// so is building it.
	if _, err := Verify(t.Context(), Config{Dir: repo, Package: evil}, forged); !errors.Is(err, ErrInvalid) {
		t.Fatalf("verify -pkg %s: %v", evil, err)
	}
	if _, err := Build(t.Context(), Config{Dir: repo, Arch: hostArch(), Package: evil, OutDir: t.TempDir()}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("build of %s: %v", evil, err)
	}
	// A manifest for another (clean) package than the one verify builds.
	other := *forged
	other.Package = "./dep"
	if _, err := Verify(t.Context(), Config{Dir: repo}, &other); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "release manager chooses") {
		t.Fatalf("verify of a manifest naming ./dep: %v", err)
	}

	// The honest manifest verifies, and OK names the package, the commit
	// and the module versions.
	honest, err := Build(t.Context(), Config{Dir: repo, Arch: hostArch(), OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := Verify(t.Context(), Config{Dir: repo}, honest)
	if err != nil {
		t.Fatal(err)
	}
	report := VerifiedReport(ok)
	for _, want := range []string{"OK package ./adapters/lambda (example.com/m/adapters/lambda) commit " + honest.Commit, "module example.com/dep@v0.0.0 => ./dep"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// TestCheckPackage: the packages ./... skips, and anything but a clean
// relative path, are refused.
func TestCheckPackage(t *testing.T) {
	for _, ok := range []string{"./adapters/lambda", "./x"} {
		if err := CheckPackage(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "./", "adapters/lambda", "./adapters/lambda/", "./a/../b", "../x", "./x/testdata/y",
		"./testdata", "./vendor/x", "./_x", "./.hidden/x", "github.com/ethkeygen/ethkeygen/adapters/lambda", "./a//b", "./a/*"} {
		if err := CheckPackage(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted", bad)
		}
	}
}
