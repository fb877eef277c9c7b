package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects the server's output for the failure log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServer builds commonsid and serves a fresh data folder on a free
// port; it returns the base URL once /readyz answers 200.
// testAdminToken is the admin token of the server startServer runs; its
// resident memory is read from the admin listener's /metrics with it.
const testAdminToken = "loadtest-admin-token-0123456789abcdef"

func startServer(t *testing.T) (base, metrics string) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD: %q, %v", gomod, err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "commonsid")
	build := exec.Command("go", "build", "-o", bin, "./cmd/commonsid")
	build.Dir = filepath.Dir(gomod)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := al.Addr().String()
	l.Close()
	al.Close()
	base = "http://" + addr
	metrics = "http://" + adminAddr + "/metrics"

	logs := &lockedBuffer{}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "COMMONSID_DATA="+filepath.Join(dir, "data"), "COMMONSID_ADDR="+addr,
		"COMMONSID_ISSUER="+base, "COMMONSID_LOG_LEVEL=warn", "COMMONSID_RATE_LIMIT=off",
		"COMMONSID_ADMIN_ADDR="+adminAddr, "COMMONSID_ADMIN_TOKEN="+testAdminToken)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("server output:\n%s", logs.String())
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, metrics
			}
		}
		select {
		case <-done:
			t.Fatalf("serve exited before it was ready:\n%s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready after 30s:\n%s", logs.String())
		}
	}
}

// TestAgainstServer runs every scenario briefly against a real server.
func TestAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server; skipped with -short (testing.Short)")
	}
	base, metrics := startServer(t)
	var progress lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{URL: base, Concurrency: []int{2}, Duration: 300 * time.Millisecond,
		Warmup: 100 * time.Millisecond, Progress: &progress, MetricsURL: metrics, MetricsToken: testAdminToken})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	if len(rep.Results) != len(Scenarios()) {
		t.Fatalf("%d results, want one per scenario (%d)", len(rep.Results), len(Scenarios()))
	}
	for i, res := range rep.Results {
		t.Run(res.Scenario, func(t *testing.T) {
			if res.Scenario != Scenarios()[i] || res.Concurrency != 2 {
				t.Errorf("result %d is %s × %d", i, res.Scenario, res.Concurrency)
			}
			if res.SetupError != "" {
				t.Fatalf("setup failed: %s", res.SetupError)
			}
			if res.Ops <= 0 || res.Errors != 0 {
				t.Errorf("ops %d, errors %d %q", res.Ops, res.Errors, res.ErrorSamples)
			}
			if res.P50 <= 0 || res.P50 > res.P99 {
				t.Errorf("p50 %v, p99 %v: not ordered", res.P50, res.P99)
			}
			if res.Rate <= 0 || res.Elapsed < 300*time.Millisecond {
				t.Errorf("rate %v over %v", res.Rate, res.Elapsed)
			}
			if res.RSSBytes <= 0 {
				t.Errorf("RSS after warm-up %d, want the server's figure", res.RSSBytes)
			}
		})
	}
	if rep.Issuer != base || rep.RSSStartBytes <= 0 || rep.RSSEndBytes <= 0 || rep.Interrupted || rep.Failed() != 0 {
		t.Errorf("report: issuer %q, RSS %d → %d, interrupted %v, failed %d", rep.Issuer, rep.RSSStartBytes, rep.RSSEndBytes, rep.Interrupted, rep.Failed())
	}

	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, s := range Scenarios() {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table does not list %s:\n%s", s, table.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Results []struct {
			Scenario string  `json:"scenario"`
			Ops      int64   `json:"ops"`
			P50      float64 `json:"p50_ms"`
			P99      float64 `json:"p99_ms"`
			RSS      int64   `json:"rss_after_warmup_bytes"`
		} `json:"results"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Results) != len(rep.Results) {
		t.Fatalf("JSON report: %v\n%s", err, js.String())
	}
	for _, r := range back.Results {
		if r.Ops <= 0 || r.P50 <= 0 || r.P50 > r.P99 || r.RSS <= 0 {
			t.Errorf("JSON result %+v", r)
		}
	}

	// A second, interrupted run stops early and says so.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	rep2, err := Run(ctx2, Config{URL: base, Concurrency: []int{1}, Duration: time.Minute, Scenarios: []string{ScenarioJWKS}})
	if err == nil && !rep2.Interrupted {
		t.Errorf("cancelled run not marked interrupted: %+v", rep2)
	}
}
