package safehttp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onecommons/commonsid/internal/testnet"
)

// secret is what the internal listeners answer; no error may show it.
const secret = "MYSQL-GREETING 5.7.42"

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func checkGeneric(t *testing.T, err error, url string, kind error) {
	t.Helper()
	if err == nil {
		t.Fatalf("fetch of %s succeeded", url)
	}
	if err.Error() != "could not fetch "+url {
		t.Fatalf("error text %q, want %q", err.Error(), "could not fetch "+url)
	}
	if strings.Contains(err.Error(), "MYSQL") {
		t.Fatalf("error shows what answered: %q", err)
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Fatalf("error %v is not %v", err, kind)
	}
}

func TestAllowed(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1":              false,
		"127.8.9.10":             false,
		"::1":                    false,
		"::ffff:127.0.0.1":       false,
		"10.1.2.3":               false,
		"172.16.0.1":             false,
		"172.31.255.255":         false,
		"192.168.1.1":            false,
		"169.254.169.254":        false,
		"::ffff:169.254.169.254": false,
		"fe80::1":                false,
		"fe80::1%eth0":           false,
		"fc00::1":                false,
		"fd12:3456::1":           false,
		"0.0.0.0":                false,
		"::":                     false,
		"224.0.0.1":              false,
		"ff02::1":                false,
		"100.64.0.1":             false,
		"100.127.255.254":        false,
		"255.255.255.255":        false,
		"::127.0.0.1":            false, // IPv4-compatible
		"64:ff9b::a9fe:a9fe":     false, // NAT64 of 169.254.169.254
		"2002:7f00:1::1":         false, // 6to4 of 127.0.0.1
		"93.184.215.14":          true,
		"172.32.0.1":             true,
		"100.128.0.1":            true,
		"2606:4700::1111":        true,
		"64:ff9b::5db8:d70e":     true, // NAT64 of a public address
		"::ffff:93.184.215.14":   true,
	} {
		if got := Allowed(netip.MustParseAddr(addr), false); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", addr, got, want)
		}
	}
	for _, addr := range []string{"127.0.0.1", "::1", "::ffff:127.0.0.1"} {
		if !Allowed(netip.MustParseAddr(addr), true) {
			t.Errorf("Allowed(%s, loopback allowed) = false", addr)
		}
	}
	for _, addr := range []string{"10.0.0.1", "169.254.169.254", "fe80::1", "192.168.0.1"} {
		if Allowed(netip.MustParseAddr(addr), true) {
			t.Errorf("Allowed(%s, loopback allowed) = true", addr)
		}
	}
}

// TestRefusedAfterResolution: loopback refused whether named by literal or
// by a name that resolves to it; the internal listener sees no connection.
func TestRefusedAfterResolution(t *testing.T) {
	addr, conns := testnet.Internal(t, secret+"\r\n")
	_, port, _ := net.SplitHostPort(addr)
	c := New(Options{Log: quiet()})
	ctx := context.Background()
	for _, u := range []string{
		"https://" + addr + "/x",
		"https://localhost:" + port + "/x",
		"https://[::ffff:127.0.0.1]:" + port + "/x",
		"https://169.254.169.254/latest/meta-data/",
		"https://10.0.0.1/",
	} {
		_, err := c.Get(ctx, u, "", 0)
		checkGeneric(t, err, u, ErrRefused)
	}
	// A public-looking name that resolves to loopback.
	c.lookup = func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("127.0.0.1")}, nil
	}
	u := "https://public.example:" + port + "/x"
	_, err := c.Get(ctx, u, "", 0)
	checkGeneric(t, err, u, ErrRefused)
	// The library client applies the same rules.
	resp, err := c.HTTPClient().Get("https://localhost:" + port + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatal("the http.Client reached loopback")
	}
	if !errors.Is(err, ErrRefused) || strings.Contains(err.Error(), "MYSQL") {
		t.Fatalf("http.Client error %v", err)
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("the internal listener got %d connections", n)
	}
	if c.Refused() < 7 {
		t.Fatalf("Refused() = %d, want at least 7", c.Refused())
	}
}

// TestLoopbackAllowed: with AllowLoopback plain http reaches 127.0.0.1,
// but private and link-local stay refused.
func TestLoopbackAllowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`["ok"]`)) }))
	defer srv.Close()
	c := New(Options{AllowLoopback: true, Log: quiet()})
	body, err := c.Get(context.Background(), srv.URL, "application/json", 0)
	if err != nil || string(body) != `["ok"]` {
		t.Fatalf("get = %q, %v", body, err)
	}
	_, err = c.Get(context.Background(), "http://169.254.169.254/", "", 0)
	checkGeneric(t, err, "http://169.254.169.254/", ErrRefused)
	// Without AllowLoopback, plain http is refused before any dial.
	strict := New(Options{Log: quiet()})
	_, err = strict.Get(context.Background(), srv.URL, "", 0)
	checkGeneric(t, err, srv.URL, ErrRefused)
}

// TestRedirects: a redirect to another host (even an allowed one) is
// refused, and a same-origin redirect whose name now resolves to an
// internal address (DNS rebinding) is refused at the second dial.
func TestRedirects(t *testing.T) {
	internal, conns := testnet.Internal(t, secret+"\r\n")
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("other")) }))
	defer other.Close()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Connection", "close")
		switch r.URL.Path {
		case "/to-internal":
			http.Redirect(w, r, "http://"+internal+"/", http.StatusFound)
		case "/to-other":
			http.Redirect(w, r, other.URL+"/", http.StatusFound)
		case "/same":
			http.Redirect(w, r, "/final", http.StatusFound)
		case "/final":
			w.Write([]byte("final"))
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		}
	}))
	defer srv.Close()
	c := New(Options{AllowLoopback: true, Log: quiet()})
	ctx := context.Background()
	for _, path := range []string{"/to-internal", "/to-other", "/loop"} {
		_, err := c.Get(ctx, srv.URL+path, "", 0)
		checkGeneric(t, err, srv.URL+path, ErrRefused)
	}
	if body, err := c.Get(ctx, srv.URL+"/same", "", 0); err != nil || string(body) != "final" {
		t.Fatalf("same-origin redirect: %q %v", body, err)
	}
	if conns.Load() != 0 {
		t.Fatal("a redirect reached the internal listener")
	}

	// DNS rebinding: the name resolves to the test server for the first
	// hop and to the metadata address for the second (the server closes
	// each connection, so the second hop dials again).
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	var lookups atomic.Int64
	c2 := New(Options{AllowLoopback: true, Log: quiet()})
	c2.lookup = func(context.Context, string) ([]netip.Addr, error) {
		if lookups.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
	}
	before := hits.Load()
	u := "http://rebind.localhost:" + port + "/same"
	_, err := c2.Get(ctx, u, "", 0)
	checkGeneric(t, err, u, ErrRefused)
	if hits.Load() != before+1 || lookups.Load() != 2 {
		t.Fatalf("hits %d lookups %d: want the first hop served and the second refused after resolution", hits.Load()-before, lookups.Load())
	}
}

func TestSizeLimit(t *testing.T) {
	big := bytes.Repeat([]byte("a"), 2000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length
		}
		w.Write(big)
	}))
	defer srv.Close()
	c := New(Options{AllowLoopback: true, MaxBytes: 1000, Log: quiet()})
	ctx := context.Background()
	for _, p := range []string{"/", "/chunked"} {
		_, err := c.Get(ctx, srv.URL+p, "", 0)
		checkGeneric(t, err, srv.URL+p, ErrTooLarge)
		if body, err := c.Get(ctx, srv.URL+p, "", 4000); err != nil || len(body) != 2000 {
			t.Fatalf("per-call limit 4000: %d bytes, %v", len(body), err)
		}
		// The library client stops reading at the limit.
		resp, err := c.HTTPClient().Get(srv.URL + p)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("http.Client read of %s: %v, want too large", p, err)
		}
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := New(Options{AllowLoopback: true, Timeout: 200 * time.Millisecond, Log: quiet()})
	start := time.Now()
	_, err := c.Get(context.Background(), srv.URL, "", 0)
	checkGeneric(t, err, srv.URL, ErrTimeout)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s", d)
	}
}

// TestErrorsGeneric: a status, a refused connection and a server that
// answers garbage all give the same text.
func TestErrorsGeneric(t *testing.T) {
	internal, _ := testnet.Internal(t, secret+"\r\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, secret, http.StatusTeapot)
	}))
	defer srv.Close()
	c := New(Options{AllowLoopback: true, Log: quiet()})
	ctx := context.Background()
	_, err := c.Get(ctx, srv.URL, "", 0)
	checkGeneric(t, err, srv.URL, ErrStatus)
	_, err = c.Get(ctx, "http://"+internal+"/", "", 0) // not HTTP at all
	checkGeneric(t, err, "http://"+internal+"/", ErrFailed)
	_, err = c.Get(ctx, "http://user:pw@"+strings.TrimPrefix(srv.URL, "http://")+"/", "", 0)
	if err == nil || strings.Contains(err.Error(), "pw") || !errors.Is(err, ErrRefused) {
		t.Fatalf("user info: %v", err)
	}
	_, err = c.Get(ctx, "ftp://example.org/", "", 0)
	checkGeneric(t, err, "ftp://example.org/", ErrRefused)
}

func TestIsLoopbackHost(t *testing.T) {
	for h, want := range map[string]bool{"localhost": true, "a.localhost": true, "127.0.0.1": true, "[::1]": true, "::1": true,
		"LOCALHOST.": true, "example.org": false, "10.0.0.1": false, "localhost.example": false} {
		if IsLoopbackHost(h) != want {
			t.Errorf("IsLoopbackHost(%q) = %v", h, !want)
		}
	}
}

// TestAllowNets: a network the operator allows is reached, nothing beside
// it; ParseNets refuses what is not CIDR.
func TestAllowNets(t *testing.T) {
	nets, err := ParseNets(" 10.1.0.0/16, fd00:1::/48 ,")
	if err != nil || len(nets) != 2 {
		t.Fatalf("ParseNets: %v %v", nets, err)
	}
	if _, err := ParseNets("10.1.0.0"); err == nil {
		t.Fatal("an address without a prefix length was taken for a network")
	}
	c := New(Options{AllowNets: nets, Log: quiet()})
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "::ffff:10.1.2.3": true, "fd00:1::5": true,
		"10.2.0.1": false, "127.0.0.1": false, "169.254.169.254": false, "fd00:2::1": false,
	} {
		if got := c.allowed(netip.MustParseAddr(addr)); got != want {
			t.Errorf("allowed(%s) = %v, want %v", addr, got, want)
		}
	}
}
