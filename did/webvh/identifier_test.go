package webvh

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

const testSCID = "QmNdazvnrgei4agYFMVJjYduyZSYHcYWnHEgNW7A1sMUoU"

// TestWebVHURLs: the DID-to-HTTPS transformation, with the examples of the
// specification.
func TestWebVHURLs(t *testing.T) {
	cases := []struct{ did, log, witness, web string }{
		{"example.com", "https://example.com/.well-known/did.jsonl", "https://example.com/.well-known/did-witness.json", "did:web:example.com"},
		{"issuer.example.com", "https://issuer.example.com/.well-known/did.jsonl", "https://issuer.example.com/.well-known/did-witness.json", "did:web:issuer.example.com"},
		{"example.com:dids:issuer", "https://example.com/dids/issuer/did.jsonl", "https://example.com/dids/issuer/did-witness.json", "did:web:example.com:dids:issuer"},
		{"example.com%3A3000:dids:issuer", "https://example.com:3000/dids/issuer/did.jsonl", "https://example.com:3000/dids/issuer/did-witness.json", "did:web:example.com%3A3000:dids:issuer"},
		{"example.com%3a3000", "https://example.com:3000/.well-known/did.jsonl", "https://example.com:3000/.well-known/did-witness.json", "did:web:example.com%3A3000"},
		{"jp納豆.例.jp:用户", "https://xn--jp-cd2fp15c.xn--fsq.jp/%E7%94%A8%E6%88%B7/did.jsonl", "https://xn--jp-cd2fp15c.xn--fsq.jp/%E7%94%A8%E6%88%B7/did-witness.json", "did:web:xn--jp-cd2fp15c.xn--fsq.jp:%E7%94%A8%E6%88%B7"},
		{"Example.COM:a%20b", "https://example.com/a%20b/did.jsonl", "https://example.com/a%20b/did-witness.json", "did:web:example.com:a%20b"},
	}
	for _, c := range cases {
		id, err := ParseDID("did:webvh:" + testSCID + ":" + c.did)
		if err != nil {
			t.Errorf("%s: %v", c.did, err)
			continue
		}
		if id.SCID != testSCID || id.LogURL() != c.log || id.WitnessURL() != c.witness || id.WebDID() != c.web {
			t.Errorf("%s: log %s witness %s web %s", c.did, id.LogURL(), id.WitnessURL(), id.WebDID())
		}
		// The canonical form parses to the same identifier.
		again, err := ParseDID(id.String())
		if err != nil || again.LogURL() != id.LogURL() {
			t.Errorf("%s: canonical %s: %v", c.did, id.String(), err)
		}
	}
}

// TestWebVHInvalidDIDs: identifiers that must fail with ErrInvalidDID
// before anything is fetched.
func TestWebVHInvalidDIDs(t *testing.T) {
	bad := []string{
		"did:web:example.com",
		"did:webvh:example.com",
		"did:webvh:" + testSCID,
		"did:webvh:Qm0000000000000000000000000000000000000000000000:example.com", // '0' is not base58
		"did:webvh:{SCID}:example.com",
		"did:webvh:" + testSCID[:45] + ":example.com",
		"did:webvh:" + testSCID + ":localhost",
		"did:webvh:" + testSCID + ":localhost%3A8000",
		"did:webvh:" + testSCID + ":127.0.0.1",
		"did:webvh:" + testSCID + ":127%2E0%2E0%2E1",
		"did:webvh:" + testSCID + ":169.254.169.254%3A80",
		"did:webvh:" + testSCID + ":127.1",
		"did:webvh:" + testSCID + ":0x7f.0.0.1",
		"did:webvh:" + testSCID + ":%5B%3A%3A1%5D",
		"did:webvh:" + testSCID + ":example.com%3A0",
		"did:webvh:" + testSCID + ":example.com%3A65536",
		"did:webvh:" + testSCID + ":example.com%3A80%3A80",
		"did:webvh:" + testSCID + ":example.com%3Ahttp",
		"did:webvh:" + testSCID + ":exa%3Ample.com",
		"did:webvh:" + testSCID + ":example.com%",
		"did:webvh:" + testSCID + ":example..com",
		"did:webvh:" + testSCID + ":-example.com",
		"did:webvh:" + testSCID + ":" + strings.Repeat("a", 64) + ".com",
		"did:webvh:" + testSCID + ":ex_ample.com",
		"did:webvh:" + testSCID + ":user@example.com",
		"did:webvh:" + testSCID + ":example.com#frag",
		"did:webvh:" + testSCID + ":example.com/path",
		"did:webvh:" + testSCID + ":example.com?q=1",
		"did:webvh:" + testSCID + ":example.com::x",
		"did:webvh:" + testSCID + ":example.com:..",
		"did:webvh:" + testSCID + ":example.com:%2e",
		"did:webvh:" + testSCID + ":example.com:a%2Fb",
		"did:webvh:" + testSCID + ":example.com:a%5Cb",
		"did:webvh:" + testSCID + ":example.com:a%00b",
		"did:webvh:" + testSCID + ":example.com:%20a",
		"did:webvh:" + testSCID + ":example.com:a%zz",
		"did:webvh:" + testSCID + ":example.com:a b",
		"did:webvh:" + testSCID + ":example.com:" + strings.Repeat("a", MaxDIDLength),
	}
	for _, d := range bad {
		if id, err := ParseDID(d); !errors.Is(err, ErrInvalidDID) {
			t.Errorf("ParseDID(%q) = %+v, %v; want ErrInvalidDID", d, id, err)
		}
	}
}

// TestWebVHResolve serves a log and its witness file from a real HTTPS
// server and resolves the DID through a caller-supplied fetcher.
func TestWebVHResolve(t *testing.T) {
	a, w := newKey(t), newKey(t)
	cfg := &Witness{Threshold: 1, Witnesses: []WitnessMember{{ID: witnessID(w)}}}
	l := mustCreate(t, CreateOptions{HostPath: "id.example.org:users:alice", UpdateKeys: []ed25519.PublicKey{pub(a)}, Witness: cfg, Time: at(0), Signer: a})
	files := map[string][]byte{"/users/alice/did.jsonl": l.Bytes()}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(rw, r)
			return
		}
		_, _ = rw.Write(b)
	}))
	defer srv.Close()
	var asked []string
	// The fetcher a deployment would supply, here pointing the DID's host
	// at the test server.
	fetch := func(ctx context.Context, u string) ([]byte, error) {
		asked = append(asked, u)
		pu, err := url.Parse(u)
		if err != nil || pu.Host != "id.example.org" {
			return nil, fmt.Errorf("unexpected URL %s", u)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+pu.Path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return nil, ErrNotFound
		}
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return []byte(b.String()), nil
	}
	did := l.Result().DID
	if _, err := Resolve(context.Background(), did, fetch, Options{}); !errors.Is(err, ErrWitness) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("without the witness file: %v", err)
	}
	p, _ := WitnessProof(w, l.Result().Metadata.VersionID, at(0))
	files["/users/alice/did-witness.json"] = []byte(`[{"versionId":"` + l.Result().Metadata.VersionID + `","proof":[` + string(p) + `]}]`)
	asked = nil
	res, err := Resolve(context.Background(), did, fetch, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.DID != did || len(asked) != 2 || asked[0] != "https://id.example.org/users/alice/did.jsonl" || asked[1] != "https://id.example.org/users/alice/did-witness.json" {
		t.Fatalf("resolved %s, asked %v", res.DID, asked)
	}
	// A log served for another DID (same host, other SCID) is refused.
	other := mustCreate(t, CreateOptions{HostPath: "id.example.org:users:alice", UpdateKeys: []ed25519.PublicKey{pub(a)}, Time: at(1), Signer: a})
	files["/users/alice/did.jsonl"] = other.Bytes()
	if _, err := Resolve(context.Background(), did, fetch, Options{}); !errors.Is(err, ErrDIDMismatch) {
		t.Fatalf("substituted log: %v", err)
	}
	// Invalid DIDs are refused before any fetch.
	asked = nil
	if _, err := Resolve(context.Background(), "did:webvh:"+testSCID+":127.0.0.1", fetch, Options{}); !errors.Is(err, ErrInvalidDID) || len(asked) != 0 {
		t.Fatalf("IP DID: %v, asked %v", err, asked)
	}
}

// FuzzWebVHDID: ParseDID never panics, and what it accepts has a canonical
// form that parses to the same locations.
func FuzzWebVHDID(f *testing.F) {
	for _, s := range []string{"example.com", "example.com%3A3000:dids:issuer", "jp納豆.例.jp:用户", "127%2E0%2E0%2E1", "example.com:%2E%2E", "a.b%3a1:%20x"} {
		f.Add("did:webvh:" + testSCID + ":" + s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseDID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidDID) {
				t.Fatalf("error %v is not ErrInvalidDID", err)
			}
			return
		}
		again, err := ParseDID(id.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", id.String(), s, err)
		}
		if again.LogURL() != id.LogURL() || again.String() != id.String() {
			t.Fatalf("%q → %q → %q", s, id.String(), again.String())
		}
		if u, err := url.Parse(id.LogURL()); err != nil || u.Hostname() != id.Host {
			t.Fatalf("log URL %q: %v", id.LogURL(), err)
		}
	})
}
