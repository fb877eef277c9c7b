package did

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/internal/safehttp"
)

func TestKeyRoundTrip(t *testing.T) {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.DID, "did:key:z6Mk") {
		t.Fatalf("did:key for Ed25519 should start with z6Mk, got %s", k.DID)
	}
	var r Resolver
	doc, err := r.Resolve(context.Background(), k.DID)
	if err != nil {
		t.Fatal(err)
	}
	if doc.ID != k.DID {
		t.Fatalf("doc id %s, want %s", doc.ID, k.DID)
	}
	jws, err := Sign(k.Private, k.KeyID, []byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := r.Verify(context.Background(), jws)
	if err != nil {
		t.Fatal(err)
	}
	if string(v.Payload) != "hello" || v.DID != k.DID || v.KeyID != k.KeyID {
		t.Fatalf("verified = %+v", v)
	}
	k2, err := KeyFromPrivate(k.Private)
	if err != nil || k2.DID != k.DID {
		t.Fatalf("KeyFromPrivate = %v, %v", k2, err)
	}
}

func TestVerifyRejects(t *testing.T) {
	ctx := context.Background()
	var r Resolver
	alice, _ := NewKey()
	mallory, _ := NewKey()
	good, _ := Sign(alice.Private, alice.KeyID, []byte(`{"a":1}`), nil)
	parts := strings.Split(good, ".")
	forged, _ := Sign(mallory.Private, alice.KeyID, []byte(`{"a":1}`), nil)
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"` + alice.KeyID + `"}`))
	cases := []struct {
		name string
		jws  string
	}{
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"a":2}`)) + "." + parts[2]},
		{"signed by another key under alice's kid", forged},
		{"alg none", noneHeader + "." + parts[1] + "."},
		{"not a jws", "hello"},
		{"kid not a DID URL", mustSign(t, alice, "key-1")},
		{"kid of an unknown method", mustSign(t, alice, "did:example:123#k")},
		{"truncated signature", good[:len(good)-10]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := r.Verify(ctx, c.jws); err == nil {
				t.Fatal("verified, want an error")
			}
		})
	}
}

func mustSign(t *testing.T, k *Key, kid string) string {
	t.Helper()
	s, err := Sign(k.Private, kid, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestResolveJWK(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id, err := JWKDID(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var r Resolver
	doc, err := r.Resolve(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := Sign(priv, id+"#0", []byte("p"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyWithDocument(doc, jws); err != nil {
		t.Fatal(err)
	}
	// A did:jwk that carries a private key is refused.
	b, _ := json.Marshal(&jose.JSONWebKey{Key: priv})
	if _, err := r.Resolve(context.Background(), "did:jwk:"+base64.RawURLEncoding.EncodeToString(b)); err == nil {
		t.Fatal("did:jwk with a private key resolved")
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestResolveInvalid(t *testing.T) {
	var r Resolver
	for _, id := range []string{
		"", "did:", "did:key:", "did:key:zzzz", "did:jwk:%%%", "did:jwk:" + b64([]byte("{}")),
		"did:example:abc", "not-a-did", "did:KEY:z6Mk", "did:web:", "did:web:exa%2Fmple.org",
	} {
		if _, err := r.Resolve(context.Background(), id); err == nil {
			t.Errorf("Resolve(%q) succeeded, want an error", id)
		}
	}
}

func TestResolveWeb(t *testing.T) {
	cloud, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// What the server answers; set by each case under mu.
	var (
		mu      sync.Mutex
		docJSON []byte
		delay   time.Duration
		size    int
	)
	set := func(doc []byte, d time.Duration, n int) {
		mu.Lock()
		docJSON, delay, size = doc, d, n
		mu.Unlock()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/did.json" && r.URL.Path != "/users/alice/did.json" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		doc, d, n := docJSON, delay, size
		mu.Unlock()
		time.Sleep(d)
		if n > 0 {
			w.Write([]byte(strings.Repeat(" ", n)))
		}
		w.Write(doc)
	}))
	defer srv.Close()
	id, err := WebDID(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(id, "%3A") {
		t.Fatalf("port not encoded as %%3A: %s", id)
	}
	jwk, _ := jwkFromPublic(&cloud.PublicKey)
	mk := func(docID string) []byte {
		b, _ := json.Marshal(&Document{
			Context: []string{ContextV1, ContextJWS2020}, ID: docID,
			VerificationMethod: []VerificationMethod{{ID: docID + "#k1", Type: "JsonWebKey2020", Controller: docID, PublicKeyJWK: jwk}},
			AssertionMethod:    []string{docID + "#k1"},
		})
		return b
	}
	ctx := context.Background()
	r := &Resolver{Timeout: 300 * time.Millisecond}

	set(mk(id), 0, 0)
	doc, err := r.Resolve(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	jws, _ := Sign(cloud, id+"#k1", []byte("feed"), nil)
	if v, err := r.Verify(ctx, jws); err != nil || string(v.Payload) != "feed" {
		t.Fatalf("verify = %v, %v", v, err)
	}
	if len(doc.VerificationMethod) != 1 {
		t.Fatalf("doc = %+v", doc)
	}

	t.Run("path", func(t *testing.T) {
		pid, _ := WebDID(srv.URL + "/users/alice")
		set(mk(pid), 0, 0)
		if _, err := r.Resolve(ctx, pid); err != nil {
			t.Fatal(err)
		}
		if p, _ := WebDocumentPath(srv.URL + "/users/alice"); p != "/users/alice/did.json" {
			t.Fatalf("path = %s", p)
		}
	})
	t.Run("id mismatch", func(t *testing.T) {
		set(mk("did:web:evil.example"), 0, 0)
		if _, err := r.Resolve(ctx, id); err == nil {
			t.Fatal("resolved a document with another id")
		}
	})
	t.Run("too large", func(t *testing.T) {
		set(mk(id), 0, WebMaxDocument)
		if _, err := r.Resolve(ctx, id); !errors.Is(err, safehttp.ErrTooLarge) {
			t.Fatalf("err = %v, want a size-limit error", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		set(mk(id), time.Second, 0)
		if _, err := r.Resolve(ctx, id); !errors.Is(err, safehttp.ErrTimeout) {
			t.Fatalf("err = %v, want a timeout", err)
		}
	})
	t.Run("plain http only for localhost", func(t *testing.T) {
		// did:web of a non-loopback host is fetched over https; with a
		// transport that records the scheme we can see it without a network.
		var scheme string
		rr := &Resolver{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
			scheme = req.URL.Scheme
			return nil, errors.New("offline")
		})}
		rr.Resolve(ctx, "did:web:example.org")
		if scheme != "https" {
			t.Fatalf("scheme = %q, want https", scheme)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestWebDID(t *testing.T) {
	for in, want := range map[string]string{
		"http://localhost:8080":         "did:web:localhost%3A8080",
		"https://id.example.org":        "did:web:id.example.org",
		"https://Example.org/tenants/a": "did:web:example.org:tenants:a",
	} {
		got, err := WebDID(in)
		if err != nil || got != want {
			t.Errorf("WebDID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"localhost:8080", "ftp://x", "https://x/?q=1", "https://u@x"} {
		if _, err := WebDID(bad); err == nil {
			t.Errorf("WebDID(%q) succeeded", bad)
		}
	}
}

func FuzzResolve(f *testing.F) {
	k, _ := NewKey()
	f.Add(k.DID)
	f.Add("did:jwk:eyJrdHkiOiJPS1AiLCJjcnYiOiJFZDI1NTE5IiwieCI6IjExcVlBWUt4Q3JmVlNfN1R5V1FIT2c3aGN2UGFwaU1scndJYWFQY0hVUm8ifQ")
	f.Add("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
	f.Add("did:web:")
	f.Fuzz(func(t *testing.T, id string) {
		r := offlineResolver(t)
		doc, err := r.Resolve(context.Background(), id)
		if err == nil && doc.ID != id {
			t.Fatalf("doc id %q for %q", doc.ID, id)
		}
	})
}

// FuzzWebDocument feeds arbitrary bytes to did:web resolution as the
// fetched document.
func FuzzWebDocument(f *testing.F) {
	f.Add([]byte(`{"@context":["https://www.w3.org/ns/did/v1"],"id":"did:web:example.org","verificationMethod":[{"id":"did:web:example.org#k","type":"JsonWebKey2020","controller":"did:web:example.org","publicKeyJwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}]}`))
	f.Add([]byte(`{"id":"did:web:example.org","verificationMethod":[{"id":"#a","type":"Ed25519VerificationKey2018","publicKeyBase58":"zzz"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := &Resolver{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 200, Body: io.NopCloser(bytes.NewReader(body)), Header: http.Header{}, Request: req}, nil
		})}
		doc, err := r.Resolve(context.Background(), "did:web:example.org")
		if err == nil {
			if doc.ID != "did:web:example.org" {
				t.Fatalf("doc id %q", doc.ID)
			}
			for i := range doc.VerificationMethod {
				doc.VerificationMethod[i].PublicKey()
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	k, _ := NewKey()
	good, _ := Sign(k.Private, k.KeyID, []byte("x"), nil)
	f.Add(good)
	f.Add("a.b.c")
	// A kid naming did:web: resolution goes to the offline resolver.
	web, _ := Sign(k.Private, "did:web:127.0.0.1%3A1#k", []byte("x"), nil)
	f.Add(web)
	f.Fuzz(func(t *testing.T, s string) {
		fuzzVerifyOne(t, offlineResolver(t), good, k.DID, s)
	})
}

func BenchmarkNewKey(b *testing.B) {
	for b.Loop() {
		if _, err := NewKey(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResolveKey(b *testing.B) {
	k, _ := NewKey()
	var r Resolver
	ctx := context.Background()
	for b.Loop() {
		if _, err := r.Resolve(ctx, k.DID); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	k, _ := NewKey()
	payload := []byte(`{"iss":"did:web:example.org","sub":"alice"}`)
	for b.Loop() {
		if _, err := Sign(k.Private, k.KeyID, payload, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	k, _ := NewKey()
	var r Resolver
	doc, _ := r.Resolve(context.Background(), k.DID)
	jws, _ := Sign(k.Private, k.KeyID, []byte(`{"iss":"did:web:example.org"}`), nil)
	for b.Loop() {
		if _, err := VerifyWithDocument(doc, jws); err != nil {
			b.Fatal(err)
		}
	}
}
