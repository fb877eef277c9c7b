package did

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did/webvh"
)

// webvhHost serves did:webvh files from a real HTTPS server; its fetcher
// sends the DID's host (id.example.org) there.
type webvhHost struct {
	mu    sync.Mutex
	files map[string][]byte
	srv   *httptest.Server
}

func newWebVHHost(t *testing.T) *webvhHost {
	h := &webvhHost{files: map[string][]byte{}}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		b, ok := h.files[r.URL.Path]
		h.mu.Unlock()
		if !ok {
			http.NotFound(rw, r)
			return
		}
		_, _ = rw.Write(b)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *webvhHost) put(path string, b []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[path] = b
}

func (h *webvhHost) fetch(ctx context.Context, u string) ([]byte, error) {
	pu, err := url.Parse(u)
	if err != nil || pu.Host != "id.example.org" {
		return nil, fmt.Errorf("no route to %s", u)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+pu.EscapedPath(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, webvh.ErrNotFound
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

// TestResolveWebVH: did.Resolver resolves did:webvh through the caller's
// fetcher, and JWS signed with a key of the document verify.
func TestResolveWebVH(t *testing.T) {
	h := newWebVHHost(t)
	_, update, _ := ed25519.GenerateKey(rand.Reader)
	signPub, signKey, _ := ed25519.GenerateKey(rand.Reader)
	doc := `{"@context":["https://www.w3.org/ns/did/v1","https://w3id.org/security/multikey/v1"],` +
		`"id":"did:webvh:{SCID}:id.example.org:users:alice",` +
		`"verificationMethod":[{"id":"#key-1","type":"Multikey","publicKeyMultibase":"` + webvh.Multikey(signPub) + `"},` +
		`{"id":"#x25519","type":"X25519KeyAgreementKey2020","publicKeyMultibase":"z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc"}],` +
		`"authentication":["#key-1"],"assertionMethod":["#key-1"],` +
		`"service":[{"id":"#hub","type":["Hub"],"serviceEndpoint":"https://hub.example"},{"id":"#map","type":"M","serviceEndpoint":{"a":"b"}}]}`
	l, err := webvh.Create(webvh.CreateOptions{
		HostPath:   "id.example.org:users:alice",
		Document:   json.RawMessage(doc),
		UpdateKeys: []ed25519.PublicKey{update.Public().(ed25519.PublicKey)},
		Portable:   true,
		Time:       time.Now().Add(-time.Hour),
		Signer:     update,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.put("/users/alice/did.jsonl", l.Bytes())
	id := l.Result().DID
	r := &Resolver{WebVH: h.fetch}

	got, err := r.Resolve(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || len(got.VerificationMethod) != 1 || got.VerificationMethod[0].ID != id+"#key-1" {
		t.Fatalf("document %+v", got)
	}
	if len(got.Service) != 3 || got.Service[0].Type != "Hub" || got.Service[1].ID != id+"#files" ||
		got.Service[1].ServiceEndpoint != "https://id.example.org/users/alice" || got.Service[2].ServiceEndpoint != "https://id.example.org/users/alice/whois.vp" {
		t.Fatalf("services %+v", got.Service)
	}
	jws, err := Sign(signKey, id+"#key-1", []byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := r.Verify(context.Background(), jws)
	if err != nil || string(v.Payload) != "hello" || v.DID != id {
		t.Fatalf("Verify = %+v, %v", v, err)
	}
	// The update key is not a key of the document: it cannot sign JWS.
	forged, _ := Sign(update, id+"#key-1", []byte("hello"), nil)
	if _, err := r.Verify(context.Background(), forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("JWS by the update key: %v", err)
	}

	// A tampered log (the key swapped for the attacker's) is refused: the
	// first entry no longer hashes to its SCID.
	_, evil, _ := ed25519.GenerateKey(rand.Reader)
	tampered := bytes.ReplaceAll(l.Bytes(), []byte(webvh.Multikey(signPub)), []byte(webvh.Multikey(evil.Public().(ed25519.PublicKey))))
	h.put("/users/alice/did.jsonl", tampered)
	if _, err := r.Resolve(context.Background(), id); !errors.Is(err, webvh.ErrSCID) {
		t.Fatalf("tampered log: %v", err)
	}

	// Moved: the old DID no longer resolves to a document of its own.
	moved, err := l.Update(webvh.UpdateOptions{MoveTo: "id.example.org:users:alice2", Time: time.Now().Add(-time.Minute), Signer: update})
	if err != nil {
		t.Fatal(err)
	}
	h.put("/users/alice/did.jsonl", moved.Bytes())
	if _, err := r.Resolve(context.Background(), id); err == nil {
		t.Fatal("moved DID resolved under its old name")
	}
	h.put("/users/alice2/did.jsonl", moved.Bytes())
	if d, err := r.Resolve(context.Background(), moved.Result().DID); err != nil || len(d.AlsoKnownAs) != 1 || d.AlsoKnownAs[0] != id {
		t.Fatalf("moved DID: %+v, %v", d, err)
	}

	// Deactivated.
	gone, err := moved.Update(webvh.UpdateOptions{Deactivate: true, Time: time.Now().Add(-time.Second), Signer: update})
	if err != nil {
		t.Fatal(err)
	}
	h.put("/users/alice2/did.jsonl", gone.Bytes())
	if _, err := r.Resolve(context.Background(), gone.Result().DID); !errors.Is(err, ErrDeactivated) {
		t.Fatalf("deactivated: %v", err)
	}

	// Not found, invalid DIDs, no fetcher.
	if _, err := r.Resolve(context.Background(), "did:webvh:"+l.Result().Metadata.SCID+":id.example.org:nobody"); !errors.Is(err, webvh.ErrNotFound) {
		t.Fatalf("missing log: %v", err)
	}
	if _, err := r.Resolve(context.Background(), "did:webvh:"+l.Result().Metadata.SCID+":10.0.0.1"); !errors.Is(err, ErrInvalidDID) {
		t.Fatalf("IP host: %v", err)
	}
	if _, err := (&Resolver{}).Resolve(context.Background(), id); !errors.Is(err, ErrUnsupportedMethod) {
		t.Fatalf("no fetcher: %v", err)
	}
}

// TestResolveWebVHTimeout: a fetch that does not answer is cut off by the
// resolver's timeout.
func TestResolveWebVHTimeout(t *testing.T) {
	slow := func(ctx context.Context, u string) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	r := &Resolver{WebVH: slow, Timeout: 50 * time.Millisecond}
	start := time.Now()
	_, err := r.Resolve(context.Background(), "did:webvh:QmNdazvnrgei4agYFMVJjYduyZSYHcYWnHEgNW7A1sMUoU:id.example.org")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("Resolve = %v after %v", err, time.Since(start))
	}
}
