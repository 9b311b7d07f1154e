// Command testsummary reads `go test -json` on stdin and prints what a
// plain `go test` run prints (each package's result line, and the full
// output of every failing test), then lists skipped tests and a closing
// count. It exits 1 when any test failed or was skipped: under make test
// every server a test needs is running, so a skip means a test did not run.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

func run(in io.Reader, out io.Writer) int {
	type key struct{ pkg, test string }
	buffered := map[key][]string{}
	var skipped []string
	passed, failed := 0, 0
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(out, sc.Text()) // not JSON: build output, print as is
			continue
		}
		k := key{e.Package, e.Test}
		switch {
		case e.Action == "build-output":
			fmt.Fprint(out, e.Output) // compiler and linker messages
		case e.Action == "build-fail":
			failed++
		case e.Test == "" && e.Action == "output":
			fmt.Fprint(out, e.Output) // package lines: ok, FAIL, build errors
		case e.Action == "output":
			buffered[k] = append(buffered[k], e.Output)
		case e.Test != "" && e.Action == "pass":
			passed++
			delete(buffered, k)
		case e.Test != "" && e.Action == "fail":
			failed++
			fmt.Fprint(out, strings.Join(buffered[k], ""))
			delete(buffered, k)
		case e.Test != "" && e.Action == "skip":
			skipped = append(skipped, e.Package+" "+e.Test+": "+skipReason(buffered[k]))
			delete(buffered, k)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "testsummary:", err)
		return 1
	}
	sort.Strings(skipped)
	for _, s := range skipped {
		fmt.Fprintln(out, "SKIPPED", s)
	}
	fmt.Fprintf(out, "tests: %d passed, %d failed, %d skipped\n", passed, failed, len(skipped))
	if failed > 0 || len(skipped) > 0 {
		return 1
	}
	return 0
}

func skipReason(lines []string) string {
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "=== ") && !strings.HasPrefix(l, "--- SKIP") {
			return l
		}
	}
	return "no reason given"
}
