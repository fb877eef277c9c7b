package federation

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/onecommons/commonsid/internal/testnet"
)

// TestSectorDocumentNotFetchedFromInternalAddress: a peer's service whose
// sector_identifier_uri is on a loopback host makes a cloud on a public
// issuer connect nowhere, and the sector stays unverified.
func TestSectorDocumentNotFetchedFromInternalAddress(t *testing.T) {
	addr, conns := testnet.Internal(t, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[\"https://app.example/cb\"]")
	_, port, _ := net.SplitHostPort(addr)
	f := &Federation{Issuer: "https://cloud.example"}
	md := map[string]any{"redirect_uris": []any{"https://app.example/cb"}, "sector_identifier_uri": "http://127.0.0.1:" + port + "/s.json"}
	sector, reason := f.impliedSector(context.Background(), md)
	if sector != "" || !strings.Contains(reason, "could not be fetched") {
		t.Fatalf("sector %q, reason %q", sector, reason)
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("the internal listener got %d connections", n)
	}
}

// TestSectorDocumentBounds: sector documents are bounded in size, must be
// JSON arrays listing every redirect URI, and are fetched once while
// remembered.
func TestSectorDocumentBounds(t *testing.T) {
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		switch r.URL.Path {
		case "/ok":
			fmt.Fprint(w, `["https://a.example/cb","https://b.example/cb"]`)
		case "/big":
			fmt.Fprint(w, `["`+strings.Repeat("x", maxSectorDocument)+`"]`)
		case "/text":
			fmt.Fprint(w, `<html>`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	f := &Federation{Issuer: "https://cloud.example", HTTP: srv.Client()}
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, c := range []struct {
		path, redirect, sector, reason string
	}{
		{"/ok", "https://b.example/cb", host, ""},
		{"/ok", "https://c.example/cb", "", "does not list redirect URI"},
		{"/big", "https://a.example/cb", "", "larger than 64 KiB"},
		{"/text", "https://a.example/cb", "", "not a JSON array"},
		{"/gone", "https://a.example/cb", "", "answered 404"},
	} {
		md := map[string]any{"redirect_uris": []any{"https://a.example/cb", c.redirect}, "sector_identifier_uri": srv.URL + c.path}
		sector, reason := f.impliedSector(context.Background(), md)
		if sector != c.sector || (c.reason == "") != (reason == "") || !strings.Contains(reason, c.reason) {
			t.Errorf("%s with %s: sector %q, reason %q", c.path, c.redirect, sector, reason)
		}
	}
	if n := fetches.Load(); n != 4 {
		t.Fatalf("%d fetches for 4 documents: a remembered one was fetched again", n)
	}
	// Without a sector_identifier_uri: the one host of the redirect URIs.
	if s, r := f.impliedSector(context.Background(), map[string]any{"redirect_uris": []any{"https://a.example/1", "https://a.example/2"}}); s != "a.example" || r != "" {
		t.Fatalf("one host: %q %q", s, r)
	}
	if _, r := f.impliedSector(context.Background(), map[string]any{"redirect_uris": []any{"https://a.example/1", "https://b.example/2"}}); !strings.Contains(r, "several hosts") {
		t.Fatalf("two hosts: %q", r)
	}
	if _, r := f.impliedSector(context.Background(), map[string]any{}); !strings.Contains(r, "without redirect URIs") {
		t.Fatalf("no redirect URIs: %q", r)
	}
}
