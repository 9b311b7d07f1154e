package archtest

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/ethkeygen/ethkeygen"

// pkg is what this test reads of `go list -json`.
type pkg struct {
	ImportPath   string
	Name         string
	Dir          string
	Module       *struct{ Path string }
	Standard     bool
	Imports      []string
	Deps         []string
	GoFiles      []string
	CgoFiles     []string
	TestImports  []string
	XTestImports []string
}

var listOnce = sync.OnceValues(func() (map[string]*pkg, error) {
	// -deps gives every package of the module and, for each, its
	// transitive dependencies (Deps); -test is not needed: test-only
	// imports are read from TestImports/XTestImports.
	cmd := exec.Command("go", "list", "-deps", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, &listError{err, stderr.String()}
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		p := new(pkg)
		if err := dec.Decode(p); err != nil {
			return nil, err
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs, nil
})

type listError struct {
	err    error
	stderr string
}

func (e *listError) Error() string { return "go list: " + e.err.Error() + ": " + e.stderr }

// ours returns the module's packages (not their third-party dependencies).
func ours(t *testing.T) (all map[string]*pkg, mine []*pkg) {
	t.Helper()
	all, err := listOnce()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if p.Module != nil && p.Module.Path == module {
			mine = append(mine, p)
		}
	}
	slices.SortFunc(mine, func(a, b *pkg) int { return strings.Compare(a.ImportPath, b.ImportPath) })
	if len(mine) < 10 {
		t.Fatalf("go list found only %d packages of %s", len(mine), module)
	}
	return all, mine
}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

// under reports whether path is prefix or below it (prefix relative to the
// module).
func under(path, prefix string) bool {
	r := rel(path)
	return r == prefix || strings.HasPrefix(r, prefix+"/")
}

func get(t *testing.T, all map[string]*pkg, relPath string) *pkg {
	t.Helper()
	p := all[module+"/"+relPath]
	if p == nil {
		t.Fatalf("package %s not found", relPath)
	}
	return p
}

// forbidden is a rule on a dependency's import path.
type forbidden struct {
	why   string
	match func(dep string) bool
}

func prefixOf(prefixes ...string) func(string) bool {
	return func(dep string) bool {
		for _, p := range prefixes {
			if dep == p || strings.HasPrefix(dep, p+"/") {
				return true
			}
		}
		return false
	}
}

func exactly(paths ...string) func(string) bool {
	return func(dep string) bool { return slices.Contains(paths, dep) }
}

var (
	noAWS  = forbidden{"an AWS package", prefixOf("github.com/aws")}
	noHTTP = forbidden{"net/http", prefixOf("net/http")}
	noExec = forbidden{"os/exec", exactly("os/exec")}
	// database/sql/driver alone is allowed: github.com/google/uuid (the
	// keystore's uuid) implements its Scanner/Valuer interfaces.
	noDB = forbidden{"a database package", func(dep string) bool {
		return dep == "database/sql" || prefixOf("modernc.org/sqlite", "go.etcd.io/bbolt", "github.com/mattn/go-sqlite3")(dep)
	}}
	noLogPkg = forbidden{`"log"`, exactly("log")}
)

func checkDeps(t *testing.T, p *pkg, deps []string, rules ...forbidden) {
	t.Helper()
	for _, d := range deps {
		for _, r := range rules {
			if r.match(d) {
				t.Errorf("%s depends on %s (%s)", rel(p.ImportPath), d, r.why)
			}
		}
	}
}

// TestPurePackages: keygen, keygen/keystore and depositdata do pure
// computation. Nothing they pull in, directly or transitively, talks to
// AWS, HTTP, a database or a subprocess.
func TestPurePackages(t *testing.T) {
	all, _ := ours(t)
	for _, name := range []string{"keygen", "keygen/keystore", "depositdata", "ops"} {
		p := get(t, all, name)
		checkDeps(t, p, p.Deps, noAWS, noHTTP, noExec, noDB)
	}
}

// TestPureImportEachOther: keystore may use keygen (its secret types and
// key parsing); keygen imports no package of the module; depositdata
// imports nothing of keygen (it is handed public keys and a signer); ops
// uses keystore only to encrypt exits for Lido's validator ejector.
func TestPureImportEachOther(t *testing.T) {
	all, _ := ours(t)
	allowed := map[string][]string{
		"keygen":          {},
		"keygen/keystore": {"keygen", "internal/pyjson"},
		"depositdata":     {"internal/pyjson", "internal/version"},
		"ops":             {"depositdata", "internal/pyjson", "internal/version", "keygen/keystore", "keygen"},
	}
	for name, ok := range allowed {
		p := get(t, all, name)
		for _, d := range p.Deps {
			if strings.HasPrefix(d, module+"/") && !slices.Contains(ok, rel(d)) {
				t.Errorf("%s depends on %s (allowed: %v)", name, rel(d), ok)
			}
		}
	}
}

// TestEnvelopeAndStoreStayNarrow: envelope knows nothing of what it seals
// (no store, custody, keygen); the store knows nothing of keys (no keygen,
// envelope, custody, depositdata): it holds ciphertext and public data.
func TestEnvelopeAndStoreStayNarrow(t *testing.T) {
	all, mine := ours(t)
	internalOf := func(names ...string) forbidden {
		return forbidden{"a package it must not know: " + strings.Join(names, ", "), func(dep string) bool {
			for _, n := range names {
				if under(dep, n) && strings.HasPrefix(dep, module+"/") {
					return true
				}
			}
			return false
		}}
	}
	env := get(t, all, "envelope")
	checkDeps(t, env, env.Deps, internalOf("store", "custody", "keygen", "depositdata", "web3signer", "enclave", "adapters"))
	for _, p := range mine {
		if under(p.ImportPath, "store") && !strings.HasSuffix(p.ImportPath, "test") {
			checkDeps(t, p, p.Deps, internalOf("keygen", "envelope", "custody", "depositdata", "web3signer", "enclave", "adapters"))
		}
	}
}

// TestMains: adapters hold the mains; besides them only the release
// command and the examples are programs.
func TestMains(t *testing.T) {
	_, mine := ours(t)
	for _, p := range mine {
		if p.Name != "main" {
			if under(p.ImportPath, "adapters") && !strings.HasSuffix(rel(p.ImportPath), "/handler") {
				t.Errorf("%s: adapters holds mains only (and a main's logic package, like adapters/lambda/handler)", rel(p.ImportPath))
			}
			continue
		}
		if !under(p.ImportPath, "adapters") && !under(p.ImportPath, "release/cmd") && !under(p.ImportPath, "examples") && !under(p.ImportPath, "scripts") {
			t.Errorf("%s is a package main outside adapters, release/cmd, examples and scripts (build tools)", rel(p.ImportPath))
		}
	}
}

// TestNothingImportsAdapters: library code never depends on an adapter.
// Tests may (fanout's tests run the real Lambda handler in process).
func TestNothingImportsAdapters(t *testing.T) {
	_, mine := ours(t)
	for _, p := range mine {
		if under(p.ImportPath, "adapters") {
			continue
		}
		for _, d := range p.Deps {
			if strings.HasPrefix(d, module+"/adapters") {
				t.Errorf("%s depends on the adapter %s", rel(p.ImportPath), rel(d))
			}
		}
	}
}

// loggers are the library packages that take a *slog.Logger from their
// caller (they run as long-lived services inside protected compute); they
// never build one of their own.
var loggers = []string{"enclave", "enclave/parent"}

// slogTypeOnly are the packages that import log/slog only to make their
// secret types redact themselves in logs (slog.LogValuer; keymanager: its
// bearer Token); they never log.
var slogTypeOnly = []string{"keygen", "custody", "web3signer/keymanager"}

// TestLibraryNeverLogs: no library package imports "log"; log/slog is
// imported only by the adapters, by the packages in loggers, and by
// keygen for LogValue; and in none of the library packages is there a call
// that logs or builds a logger of its own.
func TestLibraryNeverLogs(t *testing.T) {
	_, mine := ours(t)
	for _, p := range mine {
		r := rel(p.ImportPath)
		if under(p.ImportPath, "adapters") || p.Name == "main" {
			continue
		}
		checkDeps(t, p, p.Imports, noLogPkg)
		if slices.Contains(p.Imports, "log/slog") && !slices.Contains(loggers, r) && !slices.Contains(slogTypeOnly, r) {
			t.Errorf("%s imports log/slog: the library never logs (add it to loggers only if it takes a *slog.Logger)", r)
		}
		checkNoLogging(t, p, slices.Contains(loggers, r))
	}
}

// checkNoLogging parses p's non-test files and refuses the slog functions
// that log through the default logger or create loggers (a library that
// logs must use the *slog.Logger its caller passed; a logger-taking package
// may fall back to slog.New(slog.DiscardHandler)).
func checkNoLogging(t *testing.T, p *pkg, takesLogger bool) {
	t.Helper()
	banned := map[string]bool{
		"Debug": true, "Info": true, "Warn": true, "Error": true, "Log": true, "LogAttrs": true,
		"DebugContext": true, "InfoContext": true, "WarnContext": true, "ErrorContext": true,
		"Default": true, "SetDefault": true, "SetLogLoggerLevel": true, "NewLogLogger": true,
		"NewTextHandler": true, "NewJSONHandler": true, "New": true,
	}
	fset := token.NewFileSet()
	for _, name := range append(slices.Clone(p.GoFiles), p.CgoFiles...) {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		local := ""
		for _, imp := range f.Imports {
			if imp.Path.Value == `"log/slog"` {
				local = "slog"
				if imp.Name != nil {
					local = imp.Name.Name
				}
			}
		}
		if local == "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			id, ok := sel.X.(*ast.Ident)
			if !ok || id.Name != local || !banned[sel.Sel.Name] {
				return true
			}
			if takesLogger && sel.Sel.Name == "New" && discardFallback(f, sel) {
				return true
			}
			t.Errorf("%s: %s.%s in a library package", fset.Position(sel.Pos()), local, sel.Sel.Name)
			return true
		})
	}
}

// discardFallback reports whether sel (slog.New) is in the call
// slog.New(slog.DiscardHandler).
func discardFallback(f *ast.File, sel *ast.SelectorExpr) bool {
	found := false
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || call.Fun != sel || len(call.Args) != 1 {
			return true
		}
		if arg, ok := call.Args[0].(*ast.SelectorExpr); ok && arg.Sel.Name == "DiscardHandler" {
			found = true
		}
		return false
	})
	return found
}

// TestVetIsCI documents that `go vet` is not repeated here: scripts/test.sh
// runs gofmt, go vet and staticcheck over the whole module in its lint
// stage, and fails the suite on any finding. This test checks that the
// script still does.
func TestVetIsCI(t *testing.T) {
	b, err := readRepoFile("scripts/test.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"go vet ./...", "staticcheck\" ./...", "gofmt -l"} {
		if !strings.Contains(b, want) {
			t.Errorf("scripts/test.sh no longer runs %q", want)
		}
	}
}
