package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoPackageState: the function's packages declare no package-level
// variables, so nothing (secret or not) can survive from one invocation to
// the next except the Handler's configuration.
func TestNoPackageState(t *testing.T) {
	for _, dir := range []string{".", "handler"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.VAR {
					continue
				}
				for _, spec := range g.Specs {
					for _, n := range spec.(*ast.ValueSpec).Names {
						if n.Name != "_" { // interface assertions only
							t.Errorf("%s: package-level variable %s", name, n.Name)
						}
					}
				}
			}
		}
	}
}
