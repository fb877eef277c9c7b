package did

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/onecommons/commonsid/internal/safehttp"
)

// offlineResolver is the resolver of the fuzz targets: its transport
// refuses every request, so that no input can make a test reach the
// network (not even a DNS lookup).
func offlineResolver(t testing.TB) *Resolver {
	return &Resolver{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		return nil, errors.New("offline")
	})}
}

// fuzzVerifyOne is the body of FuzzVerify.
func fuzzVerifyOne(t *testing.T, r *Resolver, good, signer, s string) {
	v, err := r.Verify(context.Background(), s)
	if err == nil && s != good && v.DID == signer && string(v.Payload) != "x" {
		t.Fatalf("forged payload %q verified", v.Payload)
	}
}

// countingListener accepts TCP connections, counts them, and writes what
// an internal service would.
func countingListener(t *testing.T) (net.Listener, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nMYSQL-GREETING"))
			c.Close()
		}
	}()
	return ln, &n
}

// TestFuzzVerifyOffline: the fuzz target's resolver never connects, even
// for a signature whose kid names a did:web host that is listening.
func TestFuzzVerifyOffline(t *testing.T) {
	ln, conns := countingListener(t)
	k, _ := NewKey()
	id := "did:web:" + strings.ReplaceAll(ln.Addr().String(), ":", "%3A")
	jws, _ := Sign(k.Private, id+"#k", []byte("x"), nil)
	r := offlineResolver(t)
	fuzzVerifyOne(t, r, "", k.DID, jws)
	if _, err := r.Verify(context.Background(), jws); err == nil {
		t.Fatal("verified through an offline resolver")
	}
	if conns.Load() != 0 {
		t.Fatalf("the fuzz resolver connected %d times", conns.Load())
	}
}

// TestResolveWebGuarded: a resolver with a guarded client that denies
// loopback does not connect to a did:web on 127.0.0.1, and no error shows
// what answered.
func TestResolveWebGuarded(t *testing.T) {
	ln, conns := countingListener(t)
	id := "did:web:" + strings.ReplaceAll(ln.Addr().String(), ":", "%3A")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sc := safehttp.New(safehttp.Options{Log: quiet})
	r := &Resolver{HTTP: sc}
	_, err := r.Resolve(context.Background(), id)
	if !errors.Is(err, safehttp.ErrRefused) {
		t.Fatalf("err = %v, want refused", err)
	}
	want := "could not fetch http://" + ln.Addr().String() + "/.well-known/did.json"
	if !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("err = %q, want it to end with %q", err, want)
	}
	if conns.Load() != 0 || sc.Refused() == 0 {
		t.Fatalf("connections %d, refusals %d", conns.Load(), sc.Refused())
	}

	// Where loopback is allowed, what answered is still not repeated: not
	// the body of a document that does not parse, not a status text.
	allowed := &Resolver{HTTP: safehttp.New(safehttp.Options{AllowLoopback: true, Log: quiet})}
	_, err = allowed.Resolve(context.Background(), id)
	if err == nil || strings.Contains(err.Error(), "MYSQL") || strings.Contains(err.Error(), "invalid character") {
		t.Fatalf("err = %v", err)
	}
	if conns.Load() != 1 {
		t.Fatalf("connections %d, want 1", conns.Load())
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "internal admin console", http.StatusForbidden)
	}))
	defer srv.Close()
	sid, _ := WebDID(srv.URL)
	_, err = allowed.Resolve(context.Background(), sid)
	if !errors.Is(err, safehttp.ErrStatus) || strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "admin") {
		t.Fatalf("err = %v", err)
	}
}
