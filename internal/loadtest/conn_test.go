package loadtest

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func transportFor(t *testing.T, srv *httptest.Server) (*connTransport, *http.Client) {
	t.Helper()
	base, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tr := newConnTransport(base, 4, 2*time.Second)
	if srv.TLS != nil {
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		tr.tls.RootCAs = pool
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr, &http.Client{Transport: tr, CheckRedirect: noRedirect}
}

// countConns counts the connections srv accepts.
func countConns(srv *httptest.Server, n *atomic.Int32) {
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
}

// TestConnTransportReuse: answers of every framing are read whole, and one
// connection carries request after request.
func TestConnTransportReuse(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte(strings.Repeat("c", 5000))) // over net/http's buffer: sent chunked
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Length", "6")
			w.Write(append([]byte("echo:"), b[0]))
		case "/big":
			w.Header().Set("Content-Length", "2000000")
			w.Write(make([]byte, 2000000))
		default:
			w.Write([]byte("ok"))
		}
	}))
	countConns(srv, &conns)
	srv.Start()
	defer srv.Close()
	_, hc := transportFor(t, srv)
	ctx := context.Background()

	for range 5 {
		for _, c := range []struct{ path, want string }{{"/", "ok"}, {"/chunked", strings.Repeat("c", 5000)}} {
			req, _ := newGet(ctx, srv.URL+c.path)
			resp, err := send(hc, req)
			if err != nil || resp.status != 200 || string(resp.body) != c.want {
				t.Fatalf("GET %s: %v %+v", c.path, err, resp)
			}
		}
		req, _ := newForm(ctx, srv.URL+"/echo", url.Values{"a": {"b"}})
		resp, err := send(hc, req)
		if err != nil || string(resp.body) != "echo:a" {
			t.Fatalf("POST: %v %+v", err, resp)
		}
	}
	// A body over the limit is cut at maxBody and read to its end, so
	// the connection stays usable.
	req, _ := newGet(ctx, srv.URL+"/big")
	resp, err := send(hc, req)
	if err != nil || len(resp.body) != maxBody {
		t.Fatalf("big body: %v, %d bytes kept", err, len(resp.body))
	}
	req, _ = newGet(ctx, srv.URL+"/")
	if resp, err := send(hc, req); err != nil || string(resp.body) != "ok" {
		t.Fatalf("after the big body: %v %+v", err, resp)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for requests made one at a time, want 1", n)
	}
}

// TestConnTransportServerClosed: a kept connection the server has closed
// is replaced without the request failing, a form body included; an
// answer with Connection: close is not reused.
func TestConnTransportServerClosed(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		b, _ := io.ReadAll(r.Body)
		w.Write(append([]byte("got:"), b...))
	}))
	countConns(srv, &conns)
	srv.Start()
	defer srv.Close()
	_, hc := transportFor(t, srv)
	ctx := context.Background()
	post := func(path string) string {
		t.Helper()
		req, _ := newForm(ctx, srv.URL+path, url.Values{"x": {"1"}})
		resp, err := send(hc, req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		return string(resp.body)
	}
	if got := post("/"); got != "got:x=1" {
		t.Fatalf("first: %q", got)
	}
	srv.CloseClientConnections() // the server drops the idle connection
	time.Sleep(50 * time.Millisecond)
	if got := post("/"); got != "got:x=1" {
		t.Fatalf("after the server closed the connection: %q", got)
	}
	if got := post("/close"); got != "got:x=1" {
		t.Fatalf("close: %q", got)
	}
	if got := post("/"); got != "got:x=1" {
		t.Fatalf("after Connection: close: %q", got)
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (first, after the drop, after Connection: close)", n)
	}
}

// TestConnTransportLimits: a server that does not answer fails the request
// at the timeout, or as soon as the context is cancelled; requests go to
// the base URL's host only; https works.
func TestConnTransportLimits(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	tr, hc := transportFor(t, slow)
	tr.timeout = 200 * time.Millisecond

	start := time.Now()
	req, _ := newGet(context.Background(), slow.URL+"/")
	if _, err := send(hc, req); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("slow server: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the timeout took %v", d)
	}

	tr.timeout = 30 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	req, _ = newGet(ctx, slow.URL+"/")
	if _, err := send(hc, req); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("cancelled: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancelling took %v", d)
	}

	req, _ = newGet(context.Background(), "http://example.org/")
	if _, err := send(hc, req); err == nil || !strings.Contains(err.Error(), "only") {
		t.Fatalf("another host: %v", err)
	}

	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Proto))
	}))
	defer tlsSrv.Close()
	_, tc := transportFor(t, tlsSrv)
	req, _ = newGet(context.Background(), tlsSrv.URL+"/")
	if resp, err := send(tc, req); err != nil || string(resp.body) != "HTTP/1.1" {
		t.Fatalf("https: %v %+v", err, resp)
	}
}
