package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"verify"}, {"upload-and-sign", "-bucket", "b"}, {"deploy", "-signed", "x"}} {
		var out, errb bytes.Buffer
		if err := run(t.Context(), args, &out, &errb); !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want usage", args, err)
		}
	}
}

func TestStackParams(t *testing.T) {
	p := filepath.Join(t.TempDir(), "signed.json")
	if err := os.WriteFile(p, []byte(`{"Bucket":"b","Key":"signed/c/job-1.zip","Arch":"arm64"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"stack-params", "-signed", p}, &out, &errb); err != nil {
		t.Fatal(err, errb.String())
	}
	if got, want := strings.TrimSpace(out.String()), "Architecture=arm64 CodeBucket=b CodeKey=signed/c/job-1.zip"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestVerifyRejectsBadManifest(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.json")
	if err := os.WriteFile(p, []byte(`{"schema":1,"commit":"abc"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"verify", "-manifest", p, "-src", "."}, &out, &errb); err == nil || errors.Is(err, errUsage) {
		t.Fatalf("err = %v, want a manifest error", err)
	}
}
