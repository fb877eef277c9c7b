package loadtest

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func series(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = ms(i + 1)
	}
	return out
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value p50", []time.Duration{ms(7)}, 50, ms(7)},
		{"one value p99", []time.Duration{ms(7)}, 99, ms(7)},
		{"1..10 p50", series(10), 50, ms(5)},
		{"1..10 p99", series(10), 99, ms(10)},
		{"1..100 p50", series(100), 50, ms(50)},
		{"1..100 p99", series(100), 99, ms(99)},
		{"1..100 p100", series(100), 100, ms(100)},
		{"1..1000 p99", series(1000), 99, ms(990)},
		{"1..1001 p99", series(1001), 99, ms(991)},
		{"two values p50", []time.Duration{ms(1), ms(9)}, 50, ms(1)},
		{"two values p99", []time.Duration{ms(1), ms(9)}, 99, ms(9)},
		{"tiny p", series(10), 0.001, ms(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%d values, %v) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

func TestParseConcurrency(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"16,64", []int{16, 64}, false},
		{" 1 , 2 ,", []int{1, 2}, false},
		{"8", []int{8}, false},
		{"", nil, true},
		{",", nil, true},
		{"0", nil, true},
		{"-3", nil, true},
		{"16,x", nil, true},
		{"100000", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseConcurrency(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseConcurrency(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseConcurrency(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseScenarios(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"all", Scenarios(), false},
		{"", Scenarios(), false},
		{"discovery,jwks", []string{"jwks", "discovery"}, false},
		{"jwks, jwks", []string{"jwks"}, false},
		{"refresh,all", Scenarios(), false},
		{"jwks,nope", nil, true},
		{"password", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseScenarios(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseScenarios(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseScenarios(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{URL: DefaultURL, Concurrency: []int{1}, Duration: time.Second}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bad := Config{URL: "ftp://x", Concurrency: []int{0}, Duration: 0, Warmup: -1, Scenarios: []string{"nope"}}
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"url", "concurrency 0", "duration", "warmup", `"nope"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	for _, raw := range []string{"", "127.0.0.1:8080", "http://", "http://h/?q=1", "http://u:p@h/"} {
		if _, err := parseBase(raw); err == nil {
			t.Errorf("parseBase(%q) accepted", raw)
		}
	}
	if u, err := parseBase("http://h:1/prefix/"); err != nil || u.String() != "http://h:1/prefix" {
		t.Errorf("parseBase with a trailing slash = %v, %v", u, err)
	}
}

func TestParseRSS(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		want   int64
		wantOK bool
	}{
		{"plain", "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 4.5678592e+07\n", 45678592, true},
		{"integer", "go_goroutines 12\nprocess_resident_memory_bytes 1048576\n", 1 << 20, true},
		{"labels and timestamp", `process_resident_memory_bytes{instance="a"} 2048 1700000000000` + "\n", 2048, true},
		{"prefix of another metric", "process_resident_memory_bytes_peak 99\nprocess_resident_memory_bytes 7\n", 7, true},
		{"missing", "process_virtual_memory_bytes 1e+09\n", 0, false},
		{"garbage value", "process_resident_memory_bytes many\n", 0, false},
		{"empty", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRSS(strings.NewReader(tt.text))
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseRSS = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	h := basicAuth("id:with space", "s/e+c=r&t")
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic "))
	if err != nil || !strings.HasPrefix(h, "Basic ") {
		t.Fatalf("basicAuth = %q, %v", h, err)
	}
	if got, want := string(raw), "id%3Awith+space:s%2Fe%2Bc%3Dr%26t"; got != want {
		t.Errorf("credentials = %q, want %q", got, want)
	}
	id, secret, _ := strings.Cut(string(raw), ":")
	if id, _ = url.QueryUnescape(id); id != "id:with space" {
		t.Errorf("id round trip = %q", id)
	}
	if secret, _ = url.QueryUnescape(secret); secret != "s/e+c=r&t" {
		t.Errorf("secret round trip = %q", secret)
	}
}

func TestPKCE(t *testing.T) {
	v, c := pkce()
	if len(v) < 43 || len(v) > 128 {
		t.Errorf("verifier length %d, want 43..128", len(v))
	}
	if len(c) != 43 || strings.ContainsAny(c, "+/=") {
		t.Errorf("challenge %q is not base64url of a SHA-256", c)
	}
	if v2, _ := pkce(); v2 == v {
		t.Error("two verifiers are equal")
	}
}

func TestRebase(t *testing.T) {
	base, _ := parseBase("http://127.0.0.1:8080")
	e := &env{base: base}
	tests := []struct{ in, want string }{
		{"http://localhost:8080/token", "http://127.0.0.1:8080/token"},
		{"https://id.example.org/jwks.json", "http://127.0.0.1:8080/jwks.json"},
		{"https://id.example.org/a/b?x=1", "http://127.0.0.1:8080/a/b?x=1"},
		{"", ""},
	}
	for _, tt := range tests {
		if got, err := e.rebase(tt.in); err != nil || got != tt.want {
			t.Errorf("rebase(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := e.rebase("/token"); err == nil {
		t.Error("rebase of a relative URL accepted")
	}
}

func TestRunPhase(t *testing.T) {
	var calls atomic.Int64
	fast := func(context.Context) error { calls.Add(1); return nil }
	failing := func(context.Context) error { time.Sleep(time.Millisecond); return errors.New("boom") }
	slow := func(context.Context) error { time.Sleep(20 * time.Millisecond); return nil }

	t.Run("bounded by the duration", func(t *testing.T) {
		start := time.Now()
		ph := runPhase(context.Background(), []op{slow, slow, slow}, 100*time.Millisecond)
		if took := time.Since(start); took > time.Second {
			t.Errorf("100ms phase took %v", took)
		}
		if ph.ops < 3 || ph.errs != 0 || len(ph.samples) != int(ph.ops) {
			t.Errorf("ops %d, errors %d, samples %d", ph.ops, ph.errs, len(ph.samples))
		}
		if p50 := percentile(ph.samples, 50); p50 < 20*time.Millisecond {
			t.Errorf("p50 %v below the op's own 20ms", p50)
		}
	})
	t.Run("errors counted, not timed", func(t *testing.T) {
		ph := runPhase(context.Background(), []op{failing, slow}, 60*time.Millisecond)
		if ph.errs == 0 || ph.ops == 0 || len(ph.samples) != int(ph.ops) {
			t.Errorf("ops %d, errors %d, samples %d", ph.ops, ph.errs, len(ph.samples))
		}
		if diff := cmp.Diff([]string{"boom"}, ph.errSamples); diff != "" {
			t.Errorf("error samples (-want +got):\n%s", diff)
		}
	})
	t.Run("samples bounded", func(t *testing.T) {
		ph := runPhase(context.Background(), []op{fast}, 150*time.Millisecond)
		if ph.ops != calls.Load() || ph.ops == 0 {
			t.Fatalf("ops %d, calls %d", ph.ops, calls.Load())
		}
		if len(ph.samples) > maxSamples {
			t.Errorf("%d samples kept, more than %d", len(ph.samples), maxSamples)
		}
		for i := 1; i < len(ph.samples); i++ {
			if ph.samples[i] < ph.samples[i-1] {
				t.Fatal("samples not sorted")
			}
		}
	})
	t.Run("cancelled context stops at once", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		ph := runPhase(ctx, []op{slow}, time.Minute)
		if time.Since(start) > time.Second || ph.ops != 0 || ph.errs != 0 {
			t.Errorf("cancelled phase: %+v after %v", ph, time.Since(start))
		}
	})
}

func TestRunUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = Run(context.Background(), Config{URL: "http://" + addr, Concurrency: []int{1}, Duration: 10 * time.Millisecond, Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Errorf("Run against a closed port: %v", err)
	}
}
