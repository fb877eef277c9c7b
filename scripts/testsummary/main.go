// Command testsummary reads `go test -json` on standard input, writes what
// plain `go test` would (each package's result, and the output of the tests
// that fail; that of the tests that pass or skip is dropped), and ends with
// the slowest top-level tests of the run (scripts/test.sh). The output of a
// test that never finished (the test binary crashed or timed out) is
// written at the end. It never fails the run: go test's own exit status
// does.
//
//	go test -json ./... | go run ./scripts/testsummary -n 10
package main

import (
	"bufio"
	"encoding/json"
	"flag"
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
	Elapsed float64
	Output  string
}

type timing struct {
	pkg, test, result string
	seconds           float64
}

func main() {
	n := flag.Int("n", 10, "how many of the slowest tests to list")
	flag.Parse()
	if err := summarize(os.Stdin, os.Stdout, *n); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
	}
}

func summarize(in io.Reader, out io.Writer, n int) error {
	var times []timing
	held := map[string]string{} // output of the tests still running
	var order []string
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	w := bufio.NewWriter(out)
	defer w.Flush()
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not an event (a build error printed as is): pass it on.
			w.Write(line)
			w.WriteByte('\n')
			w.Flush()
			continue
		}
		key := e.Package + "\x00" + e.Test
		switch {
		case e.Test == "" && e.Output != "":
			if e.Output != "PASS\n" {
				w.WriteString(e.Output)
				w.Flush() // a package's result: show progress
			}
		case e.Output != "":
			if _, ok := held[key]; !ok {
				order = append(order, key)
			}
			held[key] += e.Output
		case e.Action == "fail":
			w.WriteString(held[key])
			w.Flush()
			delete(held, key)
		case e.Action == "pass" || e.Action == "skip":
			delete(held, key)
		}
		if e.Test != "" && !strings.Contains(e.Test, "/") && (e.Action == "pass" || e.Action == "fail") {
			times = append(times, timing{pkg: e.Package, test: e.Test, result: e.Action, seconds: e.Elapsed})
		}
	}
	for _, key := range order {
		if out, ok := held[key]; ok {
			w.WriteString(out)
		}
	}
	sort.SliceStable(times, func(i, j int) bool { return times[i].seconds > times[j].seconds })
	if len(times) > n {
		times = times[:n]
	}
	if len(times) > 0 {
		fmt.Fprintf(w, "\nslowest %d tests:\n", len(times))
		for _, t := range times {
			fmt.Fprintf(w, "%8.1f s  %s  %s.%s\n", t.seconds, t.result, t.pkg, t.test)
		}
	}
	return sc.Err()
}
