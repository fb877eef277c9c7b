package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/oidfed"
	"github.com/onecommons/commonsid/store"
)

// commonsEnv is a cloud with a short statement lifetime and a quick
// commons refresh.
func commonsEnv(e env) env {
	e["COMMONSID_OIDFED_STATEMENT_TTL"] = "8s"
	e["COMMONSID_OIDFED_REFRESH"] = "300ms"
	return e
}

// entityConfiguration fetches and verifies a cloud's entity configuration.
func entityConfiguration(t *testing.T, base string) *oidfed.Statement {
	t.Helper()
	resp, err := http.Get(base + oidfed.WellKnownPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != oidfed.ContentTypeEntityStatement {
		t.Fatalf("entity configuration of %s: %d %s", base, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	st, err := oidfed.VerifyConfiguration(raw, base, time.Now())
	if err != nil {
		t.Fatalf("entity configuration of %s: %v", base, err)
	}
	return st
}

func peerIssuers(t *testing.T, c *cloud) map[string]jose.JSONWebKeySet {
	t.Helper()
	ps, err := c.db.ListPeers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]jose.JSONWebKeySet{}
	for _, p := range ps {
		out[p.Issuer] = p.JWKS
	}
	return out
}

// TestCommonsOIDFed: three clouds, one of them the trust anchor; one
// `commons join` each and they all peer, with the keys their chains
// state; an account shared on one replicates to the others; a member
// removed at the anchor stops being trusted by the others within its
// statements' lifetime.
func TestCommonsOIDFed(t *testing.T) {
	ctx := context.Background()
	a := startCloud(t, commonsEnv(sqliteEnv(t)))
	b := startCloud(t, commonsEnv(postgresEnv(t)))
	c := startCloud(t, commonsEnv(sqliteEnv(t)))

	// Every cloud publishes its signed entity configuration with its
	// OpenID Provider metadata and its keys.
	ecB := entityConfiguration(t, b.base)
	if ecB.MetadataString(oidfed.EntityOP, "issuer") != b.base || ecB.MetadataString(oidfed.EntityOP, "federation_events_endpoint") == "" {
		t.Fatalf("openid_provider metadata: %v", ecB.Metadata[oidfed.EntityOP])
	}
	if len(ecB.AuthorityHints) != 0 || ecB.MetadataString(oidfed.EntityFederation, "federation_fetch_endpoint") != "" {
		t.Fatalf("a cloud in no commons: hints %v, %v", ecB.AuthorityHints, ecB.Metadata[oidfed.EntityFederation])
	}
	var jwks jose.JSONWebKeySet
	if resp, err := http.Get(b.base + "/jwks.json"); err != nil {
		t.Fatal(err)
	} else {
		json.NewDecoder(resp.Body).Decode(&jwks)
		resp.Body.Close()
	}
	if !sameKeys(&jwks, ecB.JWKS) {
		t.Fatal("the entity configuration's keys are not the cloud's published keys")
	}

	// Joining a cloud that is no anchor is refused.
	if r := b.env.run(t, "", "commons", "join", c.base); r.code == 0 || !strings.Contains(r.stderr, "not a trust anchor") {
		t.Fatalf("join of a cloud without members: %+v", r)
	}
	if r := a.env.run(t, "", "commons", "add-member", "ftp://x.example"); r.code == 0 || !strings.Contains(r.stderr, "https") {
		t.Fatalf("add-member ftp: %+v", r)
	}
	// A is the anchor.
	for _, m := range []*cloudProc{b, c} {
		if out := a.env.must(t, "", "commons", "add-member", m.base); !strings.Contains(out, "member "+m.base+" added") {
			t.Fatalf("add-member: %s", out)
		}
	}
	if out := a.env.must(t, "", "commons", "members"); !strings.Contains(out, b.base) || !strings.Contains(out, c.base) {
		t.Fatalf("members: %s", out)
	}
	if fe := entityConfiguration(t, a.base).MetadataString(oidfed.EntityFederation, "federation_fetch_endpoint"); fe != a.base+oidfed.FetchPath {
		t.Fatalf("the anchor's fetch endpoint: %q", fe)
	}
	// One command on each member.
	for _, m := range []*cloudProc{b, c} {
		if out := m.env.must(t, "", "commons", "join", a.base); !strings.Contains(out, "joined the commons of "+a.base) {
			t.Fatalf("join: %s", out)
		}
	}
	dbA, dbB, dbC := openTestCloud(t, a.live()), openTestCloud(t, b.live()), openTestCloud(t, c.live())
	want := map[*cloud][]*cloudProc{dbA: {b, c}, dbB: {a, c}, dbC: {a, b}}
	took := eventually(t, 10*time.Second, "every cloud peers with the others", func() bool {
		for db, others := range want {
			ps := peerIssuers(t, db)
			for _, o := range others {
				if _, ok := ps[o.base]; !ok {
					return false
				}
			}
		}
		return true
	})
	t.Logf("all peered %s after the joins", took.Round(time.Millisecond))
	// The keys pinned are those the chain states: the peer's own.
	if ks := peerIssuers(t, dbB)[c.base]; !sameKeys(&ks, entityConfiguration(t, c.base).JWKS) {
		t.Fatal("B pinned other keys for C than C's chain states")
	}
	// Members name the anchor and carry its "commons cloud" trust mark.
	eventually(t, 5*time.Second, "B carries the anchor's trust mark", func() bool {
		return len(entityConfiguration(t, b.base).TrustMarks) == 1
	})
	ecB = entityConfiguration(t, b.base)
	ecA := entityConfiguration(t, a.base)
	if len(ecB.AuthorityHints) != 1 || ecB.AuthorityHints[0] != a.base {
		t.Fatalf("B's authority_hints: %v", ecB.AuthorityHints)
	}
	if _, err := oidfed.VerifyTrustMark(ecB.TrustMarks[0].TrustMark, ecA.JWKS, b.base, time.Now()); err != nil {
		t.Fatalf("B's trust mark: %v", err)
	}
	if ecB.TrustMarks[0].Type != oidfed.TrustMarkType(a.base, oidfed.KindCommonsCloud) {
		t.Fatalf("trust mark type %q", ecB.TrustMarks[0].Type)
	}
	if out := b.env.must(t, "", "commons", "status"); !strings.Contains(out, "ANCHOR "+a.base) || !strings.Contains(out, c.base) {
		t.Fatalf("status on B: %s", out)
	}

	// B rotates its key: its configuration, still signed by the key A
	// recorded, carries the new one; A's statement about B then states
	// it, and C pins it from B's chain.
	before := map[string]bool{}
	for _, k := range ecB.JWKS.Keys {
		before[k.KeyID] = true
	}
	b.env.must(t, "", "keys", "rotate")
	var newKID string
	for _, k := range entityConfiguration(t, b.base).JWKS.Keys {
		if !before[k.KeyID] {
			newKID = k.KeyID
		}
	}
	if newKID == "" {
		t.Fatal("B's configuration does not carry its new key")
	}
	eventually(t, 5*time.Second, "C pins B's new key from the chain", func() bool {
		ks := peerIssuers(t, dbC)[b.base]
		return len(ks.Key(newKID)) == 1
	})

	// An account shared on B replicates to A and C.
	const pw = "correct horse battery"
	did := lastLine(b.env.must(t, pw+"\n", "user", "create", "--username", "carol", "--email", "carol@example.org", "--name", "Carol", "--password-stdin"))
	home := newFedBrowser(t)
	if p := home.signIn(b.base, "carol", pw); p.url.Path != "/account" {
		t.Fatalf("sign in on B: %d %s", p.status, p.url)
	}
	if st, _, _ := home.api("PUT", b.base+"/account/api/privacy", map[string]any{"subject_mode": "pairwise", "fork_policy": "ask",
		"federation_sharing": "all", "activity_retention_days": 365, "consent_lifetime_days": 0, "claim_policy": map[string]string{}}); st != 200 {
		t.Fatalf("share on B: %d", st)
	}
	for _, db := range []*cloud{dbA, dbC} {
		eventually(t, 10*time.Second, "the account on a member", func() bool {
			acc, err := db.db.GetAccount(ctx, did)
			return err == nil && acc.HomeIssuer == b.base && acc.Email == "carol@example.org"
		})
	}

	// C removed at the anchor: A and B stop trusting it within the
	// statement lifetime (8 s).
	removed := time.Now()
	if out := a.env.must(t, "", "commons", "remove-member", c.base); !strings.Contains(out, "member "+c.base+" removed") {
		t.Fatalf("remove-member: %s", out)
	}
	eventually(t, 8*time.Second, "A and B stop trusting C", func() bool {
		_, onA := peerIssuers(t, dbA)[c.base]
		_, onB := peerIssuers(t, dbB)[c.base]
		return !onA && !onB
	})
	t.Logf("C untrusted %s after its removal", time.Since(removed).Round(time.Millisecond))
	// The anchor answers 404 for it, and B keeps trusting A.
	if resp, err := http.Get(a.base + oidfed.FetchPath + "?sub=" + c.base); err != nil || resp.StatusCode != 404 {
		t.Fatalf("fetch of a removed member: %v %v", resp, err)
	}
	if _, ok := peerIssuers(t, dbB)[a.base]; !ok {
		t.Fatal("B dropped the anchor")
	}
	if r := a.env.run(t, "", "commons", "remove-member", c.base); r.code == 0 || !strings.Contains(r.stderr, "not a member") {
		t.Fatalf("second remove-member: %+v", r)
	}

	// The anchor goes away: B keeps trusting it while its last verified
	// configuration lives, then stops (8 s at most).
	a.stop()
	stopped := time.Now()
	eventually(t, 5*time.Second, "B records the failure", func() bool {
		return strings.Contains(b.env.must(t, "", "commons", "status"), "could not fetch")
	})
	if _, ok := peerIssuers(t, dbB)[a.base]; !ok {
		t.Fatal("B dropped the anchor at its first failure")
	}
	eventually(t, 10*time.Second, "B stops trusting the unreachable anchor", func() bool {
		_, ok := peerIssuers(t, dbB)[a.base]
		return !ok
	})
	if d := time.Since(stopped); d > 9*time.Second {
		t.Fatalf("B trusted the anchor %s after it stopped, past the statement lifetime", d)
	}
}

// fakeEntity is an OpenID Federation entity on 127.0.0.1 that the test
// controls: its hints, its subordinates, and what its fetch endpoint
// answers.
type fakeEntity struct {
	*oidfed.Entity
	key   oidfed.SigningKey
	pub   jose.JSONWebKeySet
	subs  *fakeSubs
	hints []string
	fetch http.HandlerFunc
}

type fakeSubs struct {
	m map[string]*oidfed.Subordinate
}

func (f *fakeSubs) GetSubordinate(_ context.Context, id string) (*oidfed.Subordinate, error) {
	if s, ok := f.m[id]; ok {
		return s, nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeSubs) ListSubordinates(context.Context) ([]*oidfed.Subordinate, error) {
	var out []*oidfed.Subordinate
	for _, s := range f.m {
		out = append(out, s)
	}
	return out, nil
}

func newFakeEntity(t *testing.T, kid string) *fakeEntity {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeEntity{key: oidfed.SigningKey{KID: kid, Alg: jose.ES256, Key: priv}, subs: &fakeSubs{m: map[string]*oidfed.Subordinate{}},
		pub: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}}}}
	srv := httptest.NewUnstartedServer(nil)
	f.Entity = &oidfed.Entity{ID: "http://" + srv.Listener.Addr().String(),
		Key:            func(context.Context) (oidfed.SigningKey, error) { return f.key, nil },
		JWKS:           func(context.Context) (jose.JSONWebKeySet, error) { return f.pub, nil },
		AuthorityHints: func(context.Context) ([]string, error) { return f.hints, nil },
		Subordinates:   f.subs,
		IsAuthority:    func(context.Context) bool { return len(f.subs.m) > 0 },
	}
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == oidfed.FetchPath && f.fetch != nil {
				f.fetch(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	f.Mount(r)
	srv.Config.Handler = r
	srv.Start()
	t.Cleanup(srv.Close)
	return f
}

func (f *fakeEntity) under(sup *fakeEntity) {
	f.hints = append(f.hints, sup.ID)
	sup.subs.m[f.ID] = &oidfed.Subordinate{EntityID: f.ID, JWKS: f.pub}
}

func serveStatement(t *testing.T, st *oidfed.Statement, k oidfed.SigningKey) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, err := oidfed.Sign(st, k)
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", oidfed.ContentTypeEntityStatement)
		io.WriteString(w, raw)
	}
}

// TestCommonsHostileChains: a cloud that joins an anchor peers with none
// of its listed members whose chain breaks a rule, and says why: a
// subordinate statement signed by a key not in the anchor's jwks, an
// expired one, authority hints that loop, an oversized statement, a chain
// that verifies but without the anchor's "commons cloud" trust mark (none,
// or one forged in the anchor's name).
func TestCommonsHostileChains(t *testing.T) {
	t.Parallel()
	anchor := newFakeEntity(t, "anchor-key")
	forged, expired, looped, oversized := newFakeEntity(t, "m1"), newFakeEntity(t, "m2"), newFakeEntity(t, "m3"), newFakeEntity(t, "m4")
	for _, m := range []*fakeEntity{forged, expired, oversized} {
		m.under(anchor)
	}
	// looped → i1 → i2 → i1; the anchor lists looped as well.
	i1, i2 := newFakeEntity(t, "i1"), newFakeEntity(t, "i2")
	looped.under(i1)
	i1.under(i2)
	i2.under(i1)
	anchor.subs.m[looped.ID] = &oidfed.Subordinate{EntityID: looped.ID, JWKS: looped.pub}
	attacker := newFakeEntity(t, "attacker")
	now := time.Now()
	// Two members whose chains verify but who show no valid "commons
	// cloud" trust mark of the anchor: none at all, and one signed by the
	// attacker in the anchor's name.
	unmarked, badMark := newFakeEntity(t, "m5"), newFakeEntity(t, "m6")
	for _, m := range []*fakeEntity{unmarked, badMark} {
		m.under(anchor)
	}
	markType := oidfed.TrustMarkType(anchor.ID, oidfed.KindCommonsCloud)
	forgedMark, err := oidfed.IssueTrustMark(attacker.key, anchor.ID, badMark.ID, markType, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	badMark.TrustMarks = func(context.Context) ([]oidfed.TrustMarkRef, error) {
		return []oidfed.TrustMarkRef{{Type: markType, TrustMark: forgedMark}}, nil
	}
	subordinate := func(m *fakeEntity) http.HandlerFunc {
		return serveStatement(t, &oidfed.Statement{Issuer: anchor.ID, Subject: m.ID, IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(), JWKS: &m.pub}, anchor.key)
	}
	byPath := map[string]http.HandlerFunc{
		unmarked.ID: subordinate(unmarked),
		badMark.ID:  subordinate(badMark),
		forged.ID:   serveStatement(t, &oidfed.Statement{Issuer: anchor.ID, Subject: forged.ID, IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(), JWKS: &forged.pub}, attacker.key),
		expired.ID: serveStatement(t, &oidfed.Statement{Issuer: anchor.ID, Subject: expired.ID, IssuedAt: now.Add(-3 * time.Hour).Unix(),
			Expiry: now.Add(-2 * time.Hour).Unix(), JWKS: &expired.pub}, anchor.key),
		oversized.ID: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", oidfed.ContentTypeEntityStatement)
			io.WriteString(w, strings.Repeat("x", oidfed.MaxStatementBytes+100))
		},
	}
	anchor.fetch = func(w http.ResponseWriter, r *http.Request) {
		if h, ok := byPath[r.URL.Query().Get("sub")]; ok {
			h(w, r)
			return
		}
		http.NotFound(w, r)
	}
	e := sqliteEnv(t)
	e["COMMONSID_ISSUER"] = "http://127.0.0.1:" + freePort(t)
	out := e.must(t, "", "commons", "join", anchor.ID)
	for id, want := range map[string]string{
		forged.ID:    "not in the issuer's jwks",
		expired.ID:   "expired at",
		looped.ID:    "authority hints loop",
		oversized.ID: "larger than 65536 bytes",
		unmarked.ID:  `no verified "commons cloud" trust mark`,
		badMark.ID:   `no verified "commons cloud" trust mark`,
	} {
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, id+": ") {
				line = l
			}
		}
		if !strings.Contains(line, "refused") || !strings.Contains(line, want) {
			t.Errorf("member %s: want refused with %q, got %q", id, want, line)
		}
	}
	cl := openTestCloud(t, &live{env: e, base: e["COMMONSID_ISSUER"]})
	if ps := peerIssuers(t, cl); len(ps) != 0 {
		t.Fatalf("peers added from hostile chains: %v", ps)
	}
	if ms, _ := cl.db.ListMembers(context.Background()); len(ms) != 0 {
		t.Fatalf("members recorded from hostile chains: %v", ms)
	}
	if out := e.must(t, "", "commons", "status"); !strings.Contains(out, "ANCHOR "+anchor.ID) || strings.Contains(out, "PEER") {
		t.Fatalf("status: %s", out)
	}
}
