package federation_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/server"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// servedSide is a cloud with its discovery document, JWKS, did:web
// document and federation routes served over HTTP on a loopback address.
func servedSide(t *testing.T) (*side, *httptest.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	s := newSide(t, issuer)
	cloudDID, _ := did.WebDID(issuer)
	s.fed.DID = cloudDID
	r := chi.NewRouter()
	s.fed.Mount(r)
	r.Get("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": issuer, "jwks_uri": issuer + "/jwks.json",
			"federation_events_endpoint": issuer + "/federation/v1/events", "federation_keys_endpoint": issuer + federation.KeysPath})
	})
	r.Get("/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		pub, _ := s.fed.Keys.Published(r.Context())
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: pub})
	})
	r.Get("/.well-known/did.json", func(w http.ResponseWriter, r *http.Request) {
		doc, _ := server.CloudDocument(r.Context(), cloudDID, s.fed.Keys)
		json.NewEncoder(w).Encode(doc)
	})
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: r}}
	srv.Start()
	t.Cleanup(srv.Close)
	return s, srv
}

// follower is a fresh federation service over b's store (its own
// 10-second refresh window), logging into log.
func follower(b *side, log *syncBuffer) *federation.Federation {
	return &federation.Federation{Issuer: b.fed.Issuer, DID: b.fed.DID, Store: b.db, Keys: b.fed.Keys, Accounts: b.fed.Accounts,
		HTTP: http.DefaultClient, Log: slog.New(slog.NewTextHandler(log, nil))}
}

func newEvents(t *testing.T, a *side, after int64, handle string) []federation.Item {
	t.Helper()
	if _, err := a.fed.Accounts.Create(ctx, identity.CreateParams{Handle: handle, Name: handle, Password: "a fine password"}); err != nil {
		t.Fatal(err)
	}
	items, err := a.fed.Page(ctx, after, 100)
	if err != nil || len(items) == 0 {
		t.Fatalf("feed after %d: %d events, %v", after, len(items), err)
	}
	return items
}

// TestKeyRotationTrust: a peer's key rotation is pinned when a pinned key
// vouches for the new set; a set that no pinned key signed (its web
// server taken over, or its old keys retired too early) changes nothing:
// its events are quarantined naming the key and `peer trust`, its request
// tokens are refused, the key is recorded as pending once; a kid the peer
// does not publish is refused and not recorded; TrustPeer then pins what
// the peer publishes and the quarantined events apply.
func TestKeyRotationTrust(t *testing.T) {
	a, _ := servedSide(t)
	b := newSide(t, "https://b.example")
	var logs syncBuffer
	fb := follower(b, &logs)
	p := a.peerOf(t, b)
	first, _ := a.fed.Keys.Published(ctx)

	items := newEvents(t, a, 0, "erin")
	if err := fb.ApplyBatch(ctx, p, items); err != nil {
		t.Fatal(err)
	}

	// 1. A rotates, keeping the old key published: vouched, pinned.
	rotated, err := a.fed.Keys.Rotate(ctx, keys.DefaultAlg)
	if err != nil {
		t.Fatal(err)
	}
	items = newEvents(t, a, items[len(items)-1].Seq, "frank")
	if err := fb.ApplyBatch(ctx, p, items); err != nil {
		t.Fatalf("events signed by the vouched key: %v", err)
	}
	if got, _ := b.db.GetPeer(ctx, a.fed.Issuer); len(got.JWKS.Key(rotated.KID)) == 0 || len(got.JWKS.Keys) != 2 {
		t.Fatalf("pinned after a vouched rotation: %v", got.JWKS.Keys)
	}
	if want := "peer " + a.fed.Issuer + " rotated keys, vouched by kid " + first[0].KeyID; !strings.Contains(logs.String(), want) {
		t.Fatalf("log lacks %q:\n%s", want, logs.String())
	}

	// 2. A's published keys replaced by one that no pinned key signs for.
	taken, err := a.fed.Keys.Rotate(ctx, keys.DefaultAlg)
	if err != nil {
		t.Fatal(err)
	}
	for _, kid := range []string{first[0].KeyID, rotated.KID} {
		if err := a.fed.Keys.Retire(ctx, kid); err != nil {
			t.Fatal(err)
		}
	}
	fb = follower(b, &logs)
	p, _ = b.db.GetPeer(ctx, a.fed.Issuer)
	last := items[len(items)-1].Seq
	items = newEvents(t, a, last, "grace")
	err = fb.ApplyBatch(ctx, p, items)
	if !errors.Is(err, federation.ErrQuarantined) {
		t.Fatalf("events signed by an unvouched key: %v", err)
	}
	if got, _ := b.db.GetPeer(ctx, a.fed.Issuer); len(got.JWKS.Key(taken.KID)) != 0 || got.Cursor != last {
		t.Fatalf("after an unvouched key: pinned %v, cursor %d (want %d)", got.JWKS.Keys, got.Cursor, last)
	}
	qs, _ := b.db.ListQuarantined(ctx, a.fed.Issuer, 100)
	if len(qs) != len(items) || !strings.Contains(qs[0].Reason, taken.KID) || !strings.Contains(qs[0].Reason, "commonsid peer trust "+a.fed.Issuer) {
		t.Fatalf("quarantine: %d events (want %d), first %+v", len(qs), len(items), qs[0])
	}
	pending, _ := b.db.ListPendingKeys(ctx, a.fed.Issuer)
	if len(pending) != 1 || pending[0].KID != taken.KID || !strings.Contains(pending[0].Reason, "not signed by a key pinned here") {
		t.Fatalf("pending keys: %+v", pending)
	}
	// A request token signed with it is refused, and the key is
	// logged once.
	// B's feed, served by a fresh follower each time (its own refresh
	// window).
	var bHandler atomic.Pointer[chi.Mux]
	serveB := func() {
		r := chi.NewRouter()
		follower(b, &logs).Mount(r)
		bHandler.Store(r)
	}
	serveB()
	bsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { bHandler.Load().ServeHTTP(w, r) }))
	defer bsrv.Close()
	feed := func(token string) int {
		req, _ := http.NewRequest("GET", bsrv.URL+"/federation/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tok, err := a.fed.PeerToken(ctx, b.fed.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	if st := feed(tok); st != http.StatusUnauthorized {
		t.Fatalf("feed with a request token of the unvouched key: %d", st)
	}
	if n := strings.Count(logs.String(), "kid="+taken.KID); n != 1 {
		t.Fatalf("the pending key logged %d times:\n%s", n, logs.String())
	}
	// A token naming a kid the peer does not publish: refused, not
	// recorded.
	stranger := newSide(t, "https://stranger.example")
	sk, _ := stranger.fed.Keys.Active(ctx, keys.DefaultAlg)
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: sk.Key, KeyID: "made-up"}}, nil)
	forged, _ := jwt.Signed(signer).Claims(jwt.Claims{Issuer: a.fed.Issuer, Subject: a.fed.Issuer, Audience: jwt.Audience{b.fed.Issuer}}).Serialize()
	serveB()
	if st := feed(forged); st != http.StatusUnauthorized {
		t.Fatalf("feed with a token of a made-up kid: %d", st)
	}
	if pending, _ := b.db.ListPendingKeys(ctx, a.fed.Issuer); len(pending) != 1 {
		t.Fatalf("a made-up kid was recorded: %+v", pending)
	}

	// 3. The operator trusts what A publishes now.
	ch, err := fb.TrustPeer(ctx, a.fed.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.New) != 1 || ch.New[0] != taken.KID || len(ch.Old) != 2 || len(ch.Pending) != 1 {
		t.Fatalf("trust: %+v", ch)
	}
	if pending, _ := b.db.ListPendingKeys(ctx, a.fed.Issuer); len(pending) != 0 {
		t.Fatalf("pending keys after trust: %+v", pending)
	}
	res, err := fb.RetryQuarantined(ctx, ch.Peer, 0)
	if err != nil || len(res.Applied) != len(items) || len(res.Failed) != 0 {
		t.Fatalf("retry after trust: %+v %v", res, err)
	}
	if st := feed(tok); st != http.StatusOK {
		t.Fatalf("feed with the trusted key's token: %d", st)
	}
	if _, err := fb.TrustPeer(ctx, "https://unknown.example"); !errors.Is(err, federation.ErrNotPeer) {
		t.Fatalf("trust of a cloud that is not a peer: %v", err)
	}
}

// TestKeySetServed: GET /federation/v1/keys is public and carries one
// signature per published key over the published set.
func TestKeySetServed(t *testing.T) {
	a, srv := servedSide(t)
	if _, err := a.fed.Keys.Rotate(ctx, keys.EdDSA); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL + federation.KeysPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var js struct {
		Payload    string           `json:"payload"`
		Signatures []map[string]any `json:"signatures"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&js); err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/jose+json" {
		t.Fatalf("%d %s %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	if len(js.Signatures) != 2 {
		t.Fatalf("%d signatures, want 2", len(js.Signatures))
	}
}
