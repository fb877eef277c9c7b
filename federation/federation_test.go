package federation_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/testdb"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store/sqlstore"
)

var ctx = context.Background()

// side is one cloud: its store and federation, without an HTTP server.
type side struct {
	fed  *federation.Federation
	db   *sqlstore.DB
	path string // the SQLite file
}

func newSide(t *testing.T, issuer string) *side {
	t.Helper()
	db, path := testdb.SQLite(t)
	km, kek := testdb.Keys(t, db)
	return &side{db: db, path: path, fed: &federation.Federation{Issuer: issuer, DID: "did:web:" + strings.TrimPrefix(issuer, "https://"),
		Store: db, Keys: km, Accounts: identity.NewService(db, kek, issuer)}}
}

// peerOf records s as a peer of other, with s's current keys pinned.
func (s *side) peerOf(t *testing.T, other *side) *federation.Peer {
	t.Helper()
	pub, err := s.fed.Keys.Published(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := &federation.Peer{Issuer: s.fed.Issuer, DID: s.fed.DID, JWKSURI: s.fed.Issuer + "/jwks.json", JWKS: jose.JSONWebKeySet{Keys: pub},
		Metadata: []byte(`{}`), AddedAt: time.Now(), KeysAt: time.Now()}
	if err := other.db.PutPeer(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, _ := other.db.GetPeer(ctx, p.Issuer)
	return got
}

func payload(t *testing.T, it federation.Item) federation.Payload {
	t.Helper()
	parts := strings.Split(it.JWS, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var p federation.Payload
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// sync pages everything new from home and applies it on peer.
func syncOnce(t *testing.T, home, peer *side, p *federation.Peer) []federation.Item {
	t.Helper()
	items, err := home.fed.Page(ctx, p.Cursor, federation.MaxPage)
	if err != nil {
		t.Fatal(err)
	}
	if err := peer.fed.ApplyBatch(ctx, p, items); err != nil {
		t.Fatal(err)
	}
	return items
}

func setSharing(t *testing.T, s *side, did, level string) {
	t.Helper()
	st := privacy.DefaultSettings()
	st.FederationSharing = level
	ps := &privacy.Service{Store: s.db, Grants: s.db, Now: time.Now}
	if err := ps.UpdateSettings(ctx, did, st, privacy.ActivityMeta{}); err != nil {
		t.Fatal(err)
	}
}

// TestSharingLevels: what leaves the home follows the person's
// federation-sharing setting, and peers apply exactly that.
func TestSharingLevels(t *testing.T) {
	a, b := newSide(t, "https://a.example"), newSide(t, "https://b.example")
	peerA := a.peerOf(t, b)
	acct, err := a.fed.Accounts.Create(ctx, identity.CreateParams{Handle: "dana", Email: "dana@example.org", Name: "Dana", Password: "a fine password"})
	if err != nil {
		t.Fatal(err)
	}
	// Default (none): the account's events say nothing and B holds nothing.
	items := syncOnce(t, a, b, peerA)
	if len(items) != 1 || payload(t, items[0]).Shared || items[0].PersonJWS != "" {
		t.Fatalf("unshared account.created: %+v %+v", items, payload(t, items[0]))
	}
	if _, err := b.db.GetAccount(ctx, acct.DID); err == nil {
		t.Fatal("an unshared account reached the peer")
	}
	// public_profile: handle and name, no email; signed by the person.
	setSharing(t, a, acct.DID, federation.SharePublicProfile)
	items = syncOnce(t, a, b, peerA)
	pl := payload(t, items[len(items)-1])
	if pl.Type != "privacy.updated" || !pl.Shared || items[len(items)-1].PersonJWS == "" || strings.Contains(string(pl.Data), "dana@example.org") {
		t.Fatalf("public_profile: %+v", pl)
	}
	got, err := b.db.GetAccount(ctx, acct.DID)
	if err != nil || got.Name != "Dana" || got.Email != "" || got.HomeIssuer != a.fed.Issuer || got.Handle != "dana@a.example" {
		t.Fatalf("replica at public_profile: %+v %v", got, err)
	}
	// The replica holds no pairwise secret: its subs come from the home
	// (subjects_test.go).
	if len(got.PairwiseSecretSealed) != 0 {
		t.Fatal("the replica holds the pairwise secret")
	}
	// all: email and consents too.
	a.db.PutConsent(ctx, &privacy.Consent{AccountDID: acct.DID, ClientID: "forum", Scopes: []string{"openid", "email"}, GrantedAt: time.Now(), UpdatedAt: time.Now()})
	setSharing(t, a, acct.DID, federation.ShareAll)
	syncOnce(t, a, b, peerA)
	if got, _ := b.db.GetAccount(ctx, acct.DID); got.Email != "dana@example.org" {
		t.Fatalf("email at all: %q", got.Email)
	}
	if c, err := b.db.GetConsent(ctx, acct.DID, a.fed.Issuer+"#forum"); err != nil || len(c.Scopes) != 2 {
		t.Fatalf("replicated consent: %+v %v", c, err)
	}
	// Back to none: the peer drops the replica and its consents.
	setSharing(t, a, acct.DID, federation.ShareNone)
	syncOnce(t, a, b, peerA)
	if _, err := b.db.GetAccount(ctx, acct.DID); err == nil {
		t.Fatal("the replica outlived the person's sharing")
	}
	if cs, _ := b.db.ListConsents(ctx, acct.DID); len(cs) != 0 {
		t.Fatalf("replicated consents kept: %+v", cs)
	}
}

// TestRejects: tampered payloads, swapped person signatures, events signed
// by a key that is not the peer's, and replays are refused and recorded;
// nothing changes and the cursor stays.
func TestRejects(t *testing.T) {
	a, b, c := newSide(t, "https://a.example"), newSide(t, "https://b.example"), newSide(t, "https://c.example")
	peerA := a.peerOf(t, b)
	acct, err := a.fed.Accounts.Create(ctx, identity.CreateParams{Handle: "erin", Name: "Erin", Password: "a fine password"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := a.fed.Accounts.Create(ctx, identity.CreateParams{Handle: "frank", Name: "Frank", Password: "a fine password"})
	setSharing(t, a, acct.DID, federation.ShareAll)
	setSharing(t, a, other.DID, federation.ShareAll)
	items, err := a.fed.Page(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var erin, frank federation.Item
	for _, it := range items {
		if pl := payload(t, it); pl.Type == "privacy.updated" && pl.Account == acct.DID {
			erin = it
		} else if pl.Type == "privacy.updated" {
			frank = it
		}
	}
	tamper := func(it federation.Item, from, to string) federation.Item {
		parts := strings.Split(it.JWS, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(raw), from, to, 1)))
		it.JWS = strings.Join(parts, ".")
		return it
	}
	// c signs an event claiming to be a's.
	forged, _ := c.fed.Page(ctx, 0, 1)
	cases := map[string]federation.Item{
		"payload changed":           tamper(erin, `"Erin"`, `"Mallory"`),
		"person signature of other": {Seq: erin.Seq, JWS: erin.JWS, PersonJWS: frank.PersonJWS},
		"person signature missing":  {Seq: erin.Seq, JWS: erin.JWS},
		"sequence changed":          {Seq: erin.Seq + 1000, JWS: erin.JWS, PersonJWS: erin.PersonJWS},
	}
	if len(forged) == 0 {
		c.fed.Accounts.Create(ctx, identity.CreateParams{Handle: "gina", Password: "a fine password"})
		forged, _ = c.fed.Page(ctx, 0, 1)
	}
	cases["signed by another cloud"] = forged[0]
	n := 0
	for name, it := range cases {
		err := b.fed.Apply(ctx, peerA, it)
		if !errors.Is(err, federation.ErrRejected) {
			t.Errorf("%s: %v", name, err)
		}
		n++
		if rs, _ := b.db.ListRejected(ctx, peerA.Issuer, 100); len(rs) != n {
			t.Errorf("%s: %d rejections recorded", name, len(rs))
		}
	}
	if _, err := b.db.GetAccount(ctx, acct.DID); err == nil {
		t.Fatal("a rejected event changed the replica")
	}
	if p, _ := b.db.GetPeer(ctx, peerA.Issuer); p.Cursor != 0 {
		t.Fatalf("cursor moved to %d", p.Cursor)
	}
	// The genuine events apply, once: a replay changes nothing.
	if err := b.fed.ApplyBatch(ctx, peerA, items); err != nil {
		t.Fatal(err)
	}
	if got, err := b.db.GetAccount(ctx, acct.DID); err != nil || got.Name != "Erin" {
		t.Fatalf("after the genuine events: %+v %v", got, err)
	}
	fresh, _ := b.db.GetPeer(ctx, peerA.Issuer)
	if err := b.fed.ApplyBatch(ctx, &federation.Peer{Issuer: fresh.Issuer, JWKS: fresh.JWKS}, items); err != nil {
		t.Fatal(err)
	}
	if applied, _ := b.db.ListApplied(ctx, peerA.Issuer, 0, 100); len(applied) != len(items) {
		t.Fatalf("applied %d for %d events", len(applied), len(items))
	}
}

// TestPeerAuthentication: the feed answers only requests carrying a fresh
// token of a peer, for this cloud.
func TestPeerAuthentication(t *testing.T) {
	a, b, c := newSide(t, "https://a.example"), newSide(t, "https://b.example"), newSide(t, "https://c.example")
	b.peerOf(t, a)
	r := chi.NewRouter()
	a.fed.Mount(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	get := func(path, token string) int {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good, _ := b.fed.PeerToken(ctx, a.fed.Issuer)
	otherAud, _ := b.fed.PeerToken(ctx, "https://elsewhere.example")
	notPeer, _ := c.fed.PeerToken(ctx, a.fed.Issuer)
	for name, tc := range map[string]struct {
		path, token string
		want        int
	}{
		"no token":          {"/federation/v1/events", "", 401},
		"not a JWT":         {"/federation/v1/events", "abc", 401},
		"another audience":  {"/federation/v1/events", otherAud, 401},
		"not a peer":        {"/federation/v1/events", notPeer, 401},
		"peer":              {"/federation/v1/events", good, 200},
		"bad cursor":        {"/federation/v1/events?after=x", good, 400},
		"limit too large":   {"/federation/v1/events?limit=5000", good, 400},
		"stream, no token":  {"/federation/v1/stream", "", 401},
		"members is public": {"/federation/v1/members", "", 200},
	} {
		if got := get(tc.path, tc.token); got != tc.want {
			t.Errorf("%s: %d, want %d", name, got, tc.want)
		}
	}
}

// TestServices: peers learn a cloud's services (public metadata and
// sectors, no contacts or secrets) and forget them when they go.
func TestServices(t *testing.T) {
	a, b := newSide(t, "https://a.example"), newSide(t, "https://b.example")
	peerA := a.peerOf(t, b)
	md := []byte(`{"client_name":"Forum","redirect_uris":["https://forum.example/cb"],"contacts":["ops@forum.example"],"x_sector":"forum.example"}`)
	if err := a.db.CreateClient(ctx, &oidc.StoredClient{ClientID: "forum", SecretHash: "secret-hash", Metadata: md, CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	syncOnce(t, a, b, peerA)
	got, err := b.db.RemoteService(ctx, a.fed.Issuer, "forum")
	if err != nil || !strings.Contains(string(got), `"x_sector":"forum.example"`) || strings.Contains(string(got), "ops@forum.example") || strings.Contains(string(got), "secret-hash") {
		t.Fatalf("replicated service: %s %v", got, err)
	}
	rs, err := oidc.ParseRemoteService(a.fed.Issuer, got)
	if err != nil || rs.Sector != "forum.example" || rs.ClientName != "Forum" {
		t.Fatalf("parsed: %+v %v", rs, err)
	}
	if err := a.db.DeleteClient(ctx, "forum"); err != nil {
		t.Fatal(err)
	}
	syncOnce(t, a, b, peerA)
	if _, err := b.db.RemoteService(ctx, a.fed.Issuer, "forum"); err == nil {
		t.Fatal("a deleted service is still known to the peer")
	}
}

// TestStreamSeesOtherWriters: an event committed by another process (the
// command line, on SQLite, wakes no stream) reaches a live stream within
// about a second.
func TestStreamSeesOtherWriters(t *testing.T) {
	a, b := newSide(t, "https://a.example"), newSide(t, "https://b.example")
	b.peerOf(t, a)
	acct, err := a.fed.Accounts.Create(ctx, identity.CreateParams{Handle: "erin", Email: "erin@example.org", Name: "Erin", Password: "a fine password"})
	if err != nil {
		t.Fatal(err)
	}
	last, err := a.db.LastEventSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	a.fed.Mount(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	tok, err := b.fed.PeerToken(ctx, a.fed.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(sctx, "GET", srv.URL+"/federation/v1/stream?after="+strconv.FormatInt(last, 10), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ids := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				ids <- id
			}
		}
		close(ids)
	}()
	time.Sleep(200 * time.Millisecond) // the stream is idle, waiting

	other, err := sqlstore.Open(ctx, "sqlite:"+a.path) // another writer of A's database
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.AppendEvent(ctx, "account.updated", acct.DID, time.Now().UTC(), nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case id := <-ids:
		if id != strconv.FormatInt(last+1, 10) {
			t.Fatalf("the stream sent event %s, want %d", id, last+1)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an event written by another process did not reach the live stream within 5 s")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the event took %v to reach the stream", d)
	}
}
