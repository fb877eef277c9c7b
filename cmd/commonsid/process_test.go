package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onecommons/commonsid/identity"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// binary builds commonsid once per test run, stamped with the commit when
// the source is a git checkout (whatever GOFLAGS says: the Dockerfile and
// make build ask for it too; TestVersionOfBuiltBinary checks it).
func binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "commonsid-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "commonsid")
		out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

type proc struct {
	cmd  *exec.Cmd
	base string
	done chan struct{}
	err  error // exit status, valid after done is closed
}

// startServe starts the binary on a free port with the data folder dir.
func startServe(t testing.TB, dataDir string, extraEnv ...string) *proc {
	t.Helper()
	port := freePort(t)
	base := "http://127.0.0.1:" + port
	cmd := exec.Command(binary(t), "serve")
	cmd.Env = append(os.Environ(), "COMMONSID_DATA="+dataDir, "COMMONSID_ADDR=127.0.0.1:"+port,
		"COMMONSID_ISSUER="+base, "COMMONSID_LOG_LEVEL=warn", "COMMONSID_RATE_LIMIT=off", "COMMONSID_ADMIN_ADDR=off")
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, base: base, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

func signup(client *http.Client, base, handle string) (int, error) {
	resp, err := client.PostForm(base+"/signup", url.Values{"handle": {handle}, "password": {"correct horse battery"}})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// TestDurabilitySIGKILL: serve is killed while 200 account creations are in
// flight; after restart every acknowledged creation exists and the SQLite
// database passes its integrity check.
func TestDurabilitySIGKILL(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and kills the binary; skipped with -short (testing.Short)")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dataDir)
	waitReady(t, p.base, 20*time.Second)

	const n = 200
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: n}}
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	killAfter := make(chan struct{})
	var once sync.Once
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := fmt.Sprintf("durable%03d", i)
			code, err := signup(client, p.base, h)
			if err == nil && code == 200 {
				mu.Lock()
				acked = append(acked, h)
				if len(acked) == 40 {
					once.Do(func() { close(killAfter) })
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-killAfter:
	case <-time.After(60 * time.Second):
		t.Fatal("40 sign-ups were not acknowledged within 60 s")
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	wg.Wait()
	<-p.done
	mu.Lock()
	got := append([]string(nil), acked...)
	mu.Unlock()
	if len(got) >= n {
		t.Fatalf("all %d creations finished before the kill; the test proves nothing", n)
	}
	t.Logf("%d of %d creations acknowledged before SIGKILL", len(got), n)

	// Restart on the same data folder.
	p2 := startServe(t, dataDir, "COMMONSID_ISSUER="+p.base) // a restart keeps the cloud's issuer
	waitReady(t, p2.base, 20*time.Second)
	cfg := &Config{DataDir: dataDir, Issuer: p2.base, LogFormat: "text", LogLevel: "warn"}
	cl, err := openCloud(context.Background(), cfg, newLogger(cfg, io.Discard), false)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	for _, h := range got {
		a, err := cl.accounts.Lookup(ctx, h)
		if err != nil {
			t.Errorf("acknowledged account %s lost: %v", h, err)
			continue
		}
		if _, err := cl.accounts.SigningKey(ctx, a); err != nil {
			t.Errorf("account %s: custodial key unusable: %v", h, err)
		}
	}
	// Every account present is whole, acknowledged or not.
	all, err := cl.db.ListAccounts(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if a.Status != identity.StatusActive || a.PasswordHash == "" {
			t.Errorf("half-written account %+v", a)
		}
	}
	t.Logf("%d accounts present after restart", len(all))

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, dbFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
}

// TestGracefulShutdown: SIGTERM while sign-ups are in flight lets each of
// them finish with 200, then the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short (testing.Short)")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dataDir, "COMMONSID_PUBLIC_METRICS=on") // metricValue scrapes it
	waitReady(t, p.base, 20*time.Second)
	const n = 24
	client := &http.Client{Timeout: 60 * time.Second}
	codes := make(chan int, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, err := signup(client, p.base, fmt.Sprintf("drain%02d", i))
			if err != nil {
				errs <- err
				return
			}
			codes <- code
		}()
	}
	// Wait until the server has every request: in flight or answered.
	deadline := time.Now().Add(30 * time.Second)
	for {
		inFlight := metricValue(t, p.base, "commonsid_http_requests_in_flight") - 1 // this scrape
		answered := metricValue(t, p.base, `commonsid_http_requests_total{code="200",method="POST",route="/signup"}`)
		if inFlight+answered >= n {
			if inFlight < 2 {
				t.Fatalf("only %v requests in flight at SIGTERM: the test would prove nothing", inFlight)
			}
			t.Logf("SIGTERM with %v requests in flight, %v answered", inFlight, answered)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("requests never reached the server")
		}
		time.Sleep(2 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	wg.Wait()
	close(codes)
	close(errs)
	for err := range errs {
		t.Errorf("in-flight request failed during shutdown: %v", err)
	}
	ok := 0
	for c := range codes {
		if c != 200 {
			t.Errorf("in-flight request got %d", c)
		}
		ok++
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("serve exited with %v after SIGTERM", p.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
	e := env{"COMMONSID_DATA": dataDir}
	list := e.must(t, "", "user", "list")
	if got := len(splitNonEmpty(list)) - 1; got != ok {
		t.Fatalf("%d accounts stored, %d acknowledged", got, ok)
	}
}

// metricValue reads one sample from the public /metrics (0 when absent):
// the server must run with COMMONSID_PUBLIC_METRICS=on.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range filepathSplitLines(string(b)) {
		if rest, ok := strings.CutPrefix(l, name+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

func splitNonEmpty(s string) []string {
	var out []string
	for _, l := range filepathSplitLines(s) {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func filepathSplitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// BenchmarkServeStartup measures the time from exec to a 200 from /readyz on
// SQLite: "fresh" creates the data folder, the key-encryption key, the
// database and the signing key; "existing" restarts on a prepared folder.
func BenchmarkServeStartup(b *testing.B) {
	bin := binary(b)
	measure := func(b *testing.B, dataDir string) {
		port := freePort(b)
		base := "http://127.0.0.1:" + port
		start := time.Now()
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(os.Environ(), "COMMONSID_DATA="+dataDir, "COMMONSID_ADDR=127.0.0.1:"+port, "COMMONSID_ISSUER="+base, "COMMONSID_LOG_LEVEL=warn")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		client := &http.Client{Timeout: time.Second}
		for {
			resp, err := client.Get(base + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Since(start) > 20*time.Second {
				b.Fatal("not ready after 20 s")
			}
			time.Sleep(time.Millisecond)
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms-to-ready")
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
	b.Run("fresh", func(b *testing.B) {
		root := b.TempDir()
		i := 0
		for b.Loop() {
			measure(b, filepath.Join(root, fmt.Sprint(i)))
			i++
		}
	})
	b.Run("existing", func(b *testing.B) {
		dir := filepath.Join(b.TempDir(), "data")
		measure(b, dir)
		for b.Loop() {
			measure(b, dir)
		}
	})
}
