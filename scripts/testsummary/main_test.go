package main

import (
	"strings"
	"testing"
)

// TestSummarize: package results and failing tests' output pass through,
// passing and skipped tests' output is dropped, a test that never finished
// is shown at the end, and the slowest top-level tests are listed (not
// subtests), slowest first, at most n.
func TestSummarize(t *testing.T) {
	t.Parallel()
	in := strings.Join([]string{
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA/sub","Output":"quiet log\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA/sub","Elapsed":9}`,
		`{"Action":"pass","Package":"p","Test":"TestA","Elapsed":1.5}`,
		`{"Action":"output","Package":"p","Test":"TestC","Output":"--- FAIL: TestC\n    x_test.go:3: boom\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestC","Elapsed":0.5}`,
		`{"Action":"output","Package":"p","Test":"TestS","Output":"skipped log\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestS","Elapsed":0}`,
		`{"Action":"pass","Package":"p","Test":"TestB","Elapsed":3}`,
		`{"Action":"pass","Package":"p","Test":"TestE","Elapsed":0.1}`,
		`{"Action":"output","Package":"p","Test":"TestD","Output":"panic: stuck\n"}`,
		`# p [p.test]`,
		`{"Action":"output","Package":"p","Output":"PASS\n"}`,
		`{"Action":"output","Package":"p","Output":"ok  \tp\t3.1s\n"}`,
	}, "\n") + "\n"
	var out strings.Builder
	if err := summarize(strings.NewReader(in), &out, 3); err != nil {
		t.Fatal(err)
	}
	want := "--- FAIL: TestC\n    x_test.go:3: boom\n# p [p.test]\nok  \tp\t3.1s\npanic: stuck\n" +
		"\nslowest 3 tests:\n     3.0 s  pass  p.TestB\n     1.5 s  pass  p.TestA\n     0.5 s  fail  p.TestC\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}
