package oidfed_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/oidfed"
	"github.com/onecommons/commonsid/store"
)

type key struct {
	sk  oidfed.SigningKey
	pub jose.JSONWebKey
}

func newKey(t testing.TB, kid string) key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key{sk: oidfed.SigningKey{KID: kid, Alg: jose.ES256, Key: priv},
		pub: jose.JSONWebKey{Key: &priv.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}}
}

func (k key) set() jose.JSONWebKeySet { return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.pub}} }

type memSubs struct {
	mu   sync.Mutex
	subs map[string]*oidfed.Subordinate
}

func (m *memSubs) GetSubordinate(_ context.Context, id string) (*oidfed.Subordinate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.subs[id]; ok {
		return s, nil
	}
	return nil, store.ErrNotFound
}

func (m *memSubs) ListSubordinates(context.Context) ([]*oidfed.Subordinate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*oidfed.Subordinate
	for _, s := range m.subs {
		out = append(out, s)
	}
	return out, nil
}

func (m *memSubs) add(id string, ks jose.JSONWebKeySet) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs[id] = &oidfed.Subordinate{EntityID: id, JWKS: ks}
}

func (m *memSubs) remove(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.subs, id)
}

// node is an entity served on 127.0.0.1; override, when set, answers the
// fetch endpoint instead of the entity.
type node struct {
	*oidfed.Entity
	key      key
	subs     *memSubs
	hints    []string
	marks    []oidfed.TrustMarkRef
	srv      *httptest.Server
	override http.HandlerFunc
	mu       sync.Mutex
}

func newNode(t *testing.T, authority bool) *node {
	t.Helper()
	n := &node{key: newKey(t, "k-"+strings.ReplaceAll(t.Name(), "/", "-")), subs: &memSubs{subs: map[string]*oidfed.Subordinate{}}}
	n.srv = httptest.NewUnstartedServer(nil)
	n.Entity = &oidfed.Entity{
		ID:   "http://" + n.srv.Listener.Addr().String(),
		Key:  func(context.Context) (oidfed.SigningKey, error) { return n.key.sk, nil },
		JWKS: func(context.Context) (jose.JSONWebKeySet, error) { return n.key.set(), nil },
		Metadata: func(context.Context) (map[string]map[string]any, error) {
			return map[string]map[string]any{oidfed.EntityOP: {"issuer": n.ID}}, nil
		},
		AuthorityHints: func(context.Context) ([]string, error) { n.mu.Lock(); defer n.mu.Unlock(); return n.hints, nil },
		TrustMarks:     func(context.Context) ([]oidfed.TrustMarkRef, error) { return n.marks, nil },
	}
	if authority {
		n.Subordinates = n.subs
	}
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.mu.Lock()
			o := n.override
			n.mu.Unlock()
			if o != nil && r.URL.Path == oidfed.FetchPath {
				o(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	n.Entity.Mount(r)
	n.srv.Config.Handler = r
	n.srv.Start()
	t.Cleanup(n.srv.Close)
	return n
}

func (n *node) setOverride(h http.HandlerFunc) { n.mu.Lock(); n.override = h; n.mu.Unlock() }

// join makes n a subordinate of sup.
func (n *node) join(sup *node) {
	n.mu.Lock()
	n.hints = append(n.hints, sup.ID)
	n.mu.Unlock()
	sup.subs.add(n.ID, n.key.set())
}

func resolver(anchors ...*node) *oidfed.Resolver {
	r := &oidfed.Resolver{HTTP: http.DefaultClient, Anchors: map[string]*jose.JSONWebKeySet{}}
	for _, a := range anchors {
		ks := a.key.set()
		r.Anchors[a.ID] = &ks
	}
	return r
}

func TestResolveChain(t *testing.T) {
	t.Parallel()
	anchor, mid, leaf := newNode(t, true), newNode(t, true), newNode(t, false)
	mid.join(anchor)
	leaf.join(mid)
	mark, err := anchor.IssueTrustMark(context.Background(), oidfed.TrustMarkType(anchor.ID, oidfed.KindCommonsCloud), mid.ID)
	if err != nil {
		t.Fatal(err)
	}
	mid.marks = []oidfed.TrustMarkRef{{Type: oidfed.TrustMarkType(anchor.ID, oidfed.KindCommonsCloud), TrustMark: mark}}
	ctx := context.Background()
	c, err := resolver(anchor).Resolve(ctx, leaf.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Statements) != 4 || c.Anchor != anchor.ID || c.Leaf.Subject != leaf.ID {
		t.Fatalf("chain: anchor %s, %d statements", c.Anchor, len(c.Statements))
	}
	if c.Statements[1].Issuer != mid.ID || c.Statements[2].Issuer != anchor.ID || c.Statements[3].Subject != anchor.ID {
		t.Fatalf("chain order: %s %s %s", c.Statements[1].Issuer, c.Statements[2].Issuer, c.Statements[3].Subject)
	}
	if c.JWKS == nil || len(c.JWKS.Key(leaf.key.pub.KeyID)) != 1 {
		t.Fatal("the chain does not carry the leaf's keys as its superior states them")
	}
	if got := c.Metadata[oidfed.EntityOP]["issuer"]; got != leaf.ID {
		t.Fatalf("metadata: %v", got)
	}
	if d := time.Until(c.Expiry); d <= 0 || d > oidfed.DefaultStatementTTL+time.Minute {
		t.Fatalf("chain expiry is not the subordinate statements' (in %s)", d)
	}
	// The intermediate carries the anchor's trust mark.
	cm, err := resolver(anchor).Resolve(ctx, mid.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !cm.HasTrustMark(oidfed.TrustMarkType(anchor.ID, oidfed.KindCommonsCloud)) {
		t.Fatal("the anchor's trust mark was not kept")
	}
	if c.HasTrustMark(oidfed.TrustMarkType(anchor.ID, oidfed.KindCommonsCloud)) {
		t.Fatal("a trust mark the leaf does not carry")
	}
	// The anchor resolves to itself, with its configured keys.
	if ca, err := resolver(anchor).Resolve(ctx, anchor.ID); err != nil || len(ca.Statements) != 1 {
		t.Fatalf("anchor as leaf: %v", err)
	}
	// The list endpoint names the subordinates.
	ec, err := resolver(anchor).FetchConfiguration(ctx, anchor.ID)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := resolver(anchor).ListSubordinates(ctx, ec)
	if err != nil || len(ids) != 1 || ids[0] != mid.ID {
		t.Fatalf("list: %v %v", ids, err)
	}
	tm, err := resolver(anchor).FetchTrustMark(ctx, ec, oidfed.TrustMarkType(anchor.ID, oidfed.KindCommonsCloud), mid.ID)
	if err != nil || tm.Subject != mid.ID {
		t.Fatalf("trust mark endpoint: %v", err)
	}
	if _, err := resolver(anchor).FetchTrustMark(ctx, ec, oidfed.TrustMarkType(anchor.ID, oidfed.KindCommonsCloud), leaf.ID); !errors.Is(err, oidfed.ErrNotSubordinate) {
		t.Fatalf("trust mark for a non-member: %v", err)
	}
}

func TestResolveRemovedMember(t *testing.T) {
	t.Parallel()
	anchor, leaf := newNode(t, true), newNode(t, false)
	leaf.join(anchor)
	if _, err := resolver(anchor).Resolve(context.Background(), leaf.ID); err != nil {
		t.Fatal(err)
	}
	anchor.subs.remove(leaf.ID)
	_, err := resolver(anchor).Resolve(context.Background(), leaf.ID)
	if !errors.Is(err, oidfed.ErrNotSubordinate) {
		t.Fatalf("a removed member: %v", err)
	}
}

func TestResolveRefusesForgedStatement(t *testing.T) {
	t.Parallel()
	anchor, leaf := newNode(t, true), newNode(t, false)
	leaf.join(anchor)
	attacker := newKey(t, "attacker")
	sameKID := newKey(t, anchor.key.pub.KeyID)
	for _, tc := range []struct {
		name string
		k    key
		want string
	}{
		{"unknown kid", attacker, "not in the issuer's jwks"},
		{"anchor's kid, other key", sameKID, "signature does not verify"},
	} {
		anchor.setOverride(func(w http.ResponseWriter, r *http.Request) {
			now := time.Now()
			ks := leaf.key.set()
			raw, err := oidfed.Sign(&oidfed.Statement{Issuer: anchor.ID, Subject: leaf.ID, IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(), JWKS: &ks}, tc.k.sk)
			if err != nil {
				t.Error(err)
			}
			w.Header().Set("Content-Type", oidfed.ContentTypeEntityStatement)
			w.Write([]byte(raw))
		})
		_, err := resolver(anchor).Resolve(context.Background(), leaf.ID)
		if !errors.Is(err, oidfed.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
}

func TestResolveRefusesExpired(t *testing.T) {
	t.Parallel()
	anchor, leaf := newNode(t, true), newNode(t, false)
	leaf.join(anchor)
	anchor.Now = func() time.Time { return time.Now().Add(-3 * time.Hour) }
	_, err := resolver(anchor).Resolve(context.Background(), leaf.ID)
	if !errors.Is(err, oidfed.ErrExpired) || !strings.Contains(err.Error(), "expired at") {
		t.Fatalf("expired statements: %v", err)
	}
	// A resolver whose clock passed the chain's expiry refuses it too.
	anchor.Now = nil
	r := resolver(anchor)
	r.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := r.Resolve(context.Background(), leaf.ID); !errors.Is(err, oidfed.ErrExpired) {
		t.Fatalf("after the statement's lifetime: %v", err)
	}
}

func TestResolveRefusesLoop(t *testing.T) {
	t.Parallel()
	anchor, i1, i2, leaf := newNode(t, true), newNode(t, true), newNode(t, true), newNode(t, false)
	leaf.join(i1)
	i1.join(i2)
	i2.join(i1)
	_, err := resolver(anchor).Resolve(context.Background(), leaf.ID)
	if !errors.Is(err, oidfed.ErrLoop) {
		t.Fatalf("a loop: %v", err)
	}
}

func TestResolveRefusesOversized(t *testing.T) {
	t.Parallel()
	anchor, leaf := newNode(t, true), newNode(t, false)
	leaf.join(anchor)
	anchor.setOverride(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", oidfed.ContentTypeEntityStatement)
		w.Write([]byte(strings.Repeat("a", oidfed.MaxStatementBytes+10)))
	})
	_, err := resolver(anchor).Resolve(context.Background(), leaf.ID)
	if !errors.Is(err, oidfed.ErrTooLarge) {
		t.Fatalf("an oversized statement: %v", err)
	}
}

func TestResolveRefusesLeafKeyNotStated(t *testing.T) {
	t.Parallel()
	anchor, leaf := newNode(t, true), newNode(t, false)
	leaf.join(anchor)
	// The leaf signs with a key the anchor does not state for it.
	anchor.subs.add(leaf.ID, newKey(t, "other").set())
	_, err := resolver(anchor).Resolve(context.Background(), leaf.ID)
	if !errors.Is(err, oidfed.ErrInvalid) || !strings.Contains(err.Error(), "does not verify with the keys") {
		t.Fatalf("leaf key not stated: %v", err)
	}
}

func TestResolveRefusesImpostorAnchor(t *testing.T) {
	t.Parallel()
	anchor, leaf := newNode(t, true), newNode(t, false)
	leaf.join(anchor)
	r := resolver(anchor)
	other := newKey(t, anchor.key.pub.KeyID).set()
	r.Anchors[anchor.ID] = &other
	if _, err := r.Resolve(context.Background(), leaf.ID); !errors.Is(err, oidfed.ErrInvalid) {
		t.Fatalf("an anchor with other keys than configured: %v", err)
	}
	// No path to an anchor accepted here.
	stranger := newNode(t, true)
	if _, err := resolver(stranger).Resolve(context.Background(), leaf.ID); !errors.Is(err, oidfed.ErrNotSubordinate) && !errors.Is(err, oidfed.ErrNoChain) {
		t.Fatalf("no chain: %v", err)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerifyRules(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k1")
	ks := k.set()
	now := time.Now()
	good := func() *oidfed.Statement {
		return &oidfed.Statement{Issuer: "https://a.example", Subject: "https://b.example", IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(), JWKS: &ks}
	}
	raw, err := oidfed.Sign(good(), k.sk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oidfed.Verify([]byte(raw), &ks, now); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(raw, ".")
	payloadOf := func(s string) string { return b64(s) }
	cases := map[string]string{
		"alg none":        b64(`{"alg":"none","typ":"entity-statement+jwt","kid":"k1"}`) + "." + parts[1] + ".",
		"wrong typ":       b64(`{"alg":"ES256","typ":"JWT","kid":"k1"}`) + "." + parts[1] + "." + parts[2],
		"no kid":          b64(`{"alg":"ES256","typ":"entity-statement+jwt"}`) + "." + parts[1] + "." + parts[2],
		"crit header":     b64(`{"alg":"ES256","typ":"entity-statement+jwt","kid":"k1","crit":["x"],"x":1}`) + "." + parts[1] + "." + parts[2],
		"tampered claims": parts[0] + "." + payloadOf(`{"iss":"https://a.example","sub":"https://evil.example","iat":1,"exp":99999999999,"jwks":{"keys":[]}}`) + "." + parts[2],
		"json form":       `{"payload":"` + parts[1] + `"}`,
		"oversized":       strings.Repeat("a", oidfed.MaxStatementBytes+1),
	}
	for name, bad := range cases {
		if _, err := oidfed.Verify([]byte(bad), &ks, now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Claims refused even when properly signed.
	for name, mut := range map[string]func(*oidfed.Statement){
		"exp before iat": func(s *oidfed.Statement) { s.Expiry = s.IssuedAt - 1 },
		"http iss":       func(s *oidfed.Statement) { s.Issuer = "http://a.example" },
		"no jwks":        func(s *oidfed.Statement) { s.JWKS = nil },
		"crit claim":     func(s *oidfed.Statement) { s.Crit = []string{"x"} },
	} {
		s := good()
		mut(s)
		if _, err := oidfed.Sign(s, k.sk); !errors.Is(err, oidfed.ErrInvalid) {
			t.Errorf("%s: signed: %v", name, err)
		}
	}
	future := good()
	future.IssuedAt, future.Expiry = now.Add(time.Hour).Unix(), now.Add(2*time.Hour).Unix()
	raw, _ = oidfed.Sign(future, k.sk)
	if _, err := oidfed.Verify([]byte(raw), &ks, now); !errors.Is(err, oidfed.ErrExpired) {
		t.Errorf("issued in the future: %v", err)
	}
	// metadata_policy is refused rather than ignored.
	jws, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.sk.Key},
		(&jose.SignerOptions{}).WithType("entity-statement+jwt").WithHeader("kid", "k1"))
	obj, _ := jws.Sign([]byte(`{"iss":"https://a.example","sub":"https://b.example","iat":` + itoa(now.Unix()) + `,"exp":` + itoa(now.Add(time.Hour).Unix()) +
		`,"jwks":` + string(mustJSON(t, ks)) + `,"metadata_policy":{"openid_provider":{"scopes_supported":{"subset_of":["openid"]}}}}`))
	mp, _ := obj.CompactSerialize()
	if _, err := oidfed.Verify([]byte(mp), &ks, now); !errors.Is(err, oidfed.ErrInvalid) || !strings.Contains(err.Error(), "metadata_policy") {
		t.Errorf("metadata_policy: %v", err)
	}
}

func TestTrustMarks(t *testing.T) {
	t.Parallel()
	k := newKey(t, "tm")
	ks := k.set()
	now := time.Now()
	typ := oidfed.TrustMarkType("https://anchor.example", oidfed.KindCommonsService)
	raw, err := oidfed.IssueTrustMark(k.sk, "https://anchor.example", "https://rp.example", typ, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tm, err := oidfed.VerifyTrustMark(raw, &ks, "https://rp.example", now)
	if err != nil || tm.Type != typ || tm.Issuer != "https://anchor.example" {
		t.Fatalf("verify: %+v %v", tm, err)
	}
	if _, err := oidfed.VerifyTrustMark(raw, &ks, "https://other.example", now); err == nil {
		t.Error("a trust mark about another entity was accepted")
	}
	if _, err := oidfed.VerifyTrustMark(raw, &ks, "https://rp.example", now.Add(2*time.Hour)); !errors.Is(err, oidfed.ErrExpired) {
		t.Errorf("an expired trust mark: %v", err)
	}
	other := newKey(t, "tm").set()
	if _, err := oidfed.VerifyTrustMark(raw, &other, "https://rp.example", now); err == nil {
		t.Error("a trust mark verified with another key")
	}
	// An entity statement is not a trust mark.
	st := &oidfed.Statement{Issuer: "https://anchor.example", Subject: "https://rp.example", IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(), JWKS: &ks}
	es, _ := oidfed.Sign(st, k.sk)
	if _, err := oidfed.VerifyTrustMark(es, &ks, "https://rp.example", now); err == nil {
		t.Error("an entity statement passed as a trust mark")
	}
}
