package federation_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// serve mounts s's federation routes on a test server.
func (s *side) serve(t *testing.T) *httptest.Server {
	t.Helper()
	r := chi.NewRouter()
	s.fed.Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

// secretForms are the encodings in which a leaked secret would show.
func secretForms(secret []byte) []string {
	return []string{base64.RawURLEncoding.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret),
		base64.RawStdEncoding.EncodeToString(secret), base64.URLEncoding.EncodeToString(secret), hex.EncodeToString(secret)}
}

// checkNoSecret decodes both signatures' payloads of an item and fails if
// either carries a pairwise secret.
func checkNoSecret(t *testing.T, where string, it federation.Item, secrets [][]byte) {
	t.Helper()
	for _, jws := range []string{it.JWS, it.PersonJWS} {
		if jws == "" {
			continue
		}
		parts := strings.Split(jws, ".")
		if len(parts) != 3 {
			t.Fatalf("%s: not a compact JWS: %q", where, jws)
		}
		raw, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatalf("%s: payload: %v", where, err)
		}
		var pl federation.Payload
		if err := json.Unmarshal(raw, &pl); err != nil {
			t.Fatalf("%s: payload: %v", where, err)
		}
		if bytes.Contains(raw, []byte("pairwise_secret")) {
			t.Fatalf("%s: event %d (%s) names a pairwise secret: %s", where, pl.Seq, pl.Type, raw)
		}
		for _, s := range secrets {
			for _, form := range secretForms(s) {
				if bytes.Contains(raw, []byte(form)) {
					t.Fatalf("%s: event %d (%s) carries the pairwise secret", where, pl.Seq, pl.Type)
				}
			}
		}
	}
}

// TestFeedCarriesNoSecret: no page and no stream event of the feed, for
// every peer and every sharing level, carries a pairwise secret; the
// replicas a peer makes of them hold none.
func TestFeedCarriesNoSecret(t *testing.T) {
	a, b := newSide(t, "https://a.example"), newSide(t, "https://b.example")
	peerA := a.peerOf(t, b)
	b.peerOf(t, a)
	var secrets [][]byte
	var accts []*identity.Account
	for i, level := range []string{federation.ShareAll, federation.SharePublicProfile, federation.ShareNone} {
		acct, err := a.fed.Accounts.Create(ctx, identity.CreateParams{Handle: "person" + string(rune('a'+i)), Email: "p@example.org", Name: "P", Password: "a fine password"})
		if err != nil {
			t.Fatal(err)
		}
		a.db.PutConsent(ctx, &privacy.Consent{AccountDID: acct.DID, ClientID: "forum", Scopes: []string{"openid"}, GrantedAt: time.Now(), UpdatedAt: time.Now()})
		setSharing(t, a, acct.DID, level)
		secret, err := a.fed.Accounts.PairwiseSecret(acct)
		if err != nil {
			t.Fatal(err)
		}
		secrets, accts = append(secrets, secret), append(accts, acct)
	}
	for _, peer := range []string{"", b.fed.Issuer} {
		items, err := a.fed.PageFor(ctx, peer, 0, federation.MaxPage)
		if err != nil || len(items) < 6 {
			t.Fatalf("page: %d items, %v", len(items), err)
		}
		for _, it := range items {
			checkNoSecret(t, "page for "+peer, it, secrets)
		}
	}
	srv := a.serve(t)
	tok, _ := b.fed.PeerToken(ctx, a.fed.Issuer)
	req, _ := http.NewRequest("GET", srv.URL+"/federation/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	last, _ := a.db.LastEventSeq(ctx)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var it federation.Item
		if err := json.Unmarshal([]byte(data), &it); err != nil {
			t.Fatal(err)
		}
		checkNoSecret(t, "stream", it, secrets)
		if n++; it.Seq >= last {
			break
		}
	}
	if n == 0 {
		t.Fatal("the stream sent nothing")
	}
	syncOnce(t, a, b, peerA)
	for _, acct := range accts[:2] {
		got, err := b.db.GetAccount(ctx, acct.DID)
		if err != nil || len(got.PairwiseSecretSealed) != 0 {
			t.Fatalf("replica on the peer: %+v %v", got, err)
		}
	}
}

// TestReplicaIgnoresOldSecret: an event of an older home that still
// carries the pairwise secret (signed by the home and the person) is
// applied, and the secret is not kept.
func TestReplicaIgnoresOldSecret(t *testing.T) {
	a, b := newSide(t, "https://a.example"), newSide(t, "https://b.example")
	peerA := a.peerOf(t, b)
	acct, err := a.fed.Accounts.Create(ctx, identity.CreateParams{Handle: "olga", Name: "Olga", Password: "a fine password"})
	if err != nil {
		t.Fatal(err)
	}
	setSharing(t, a, acct.DID, federation.ShareAll)
	items, err := a.fed.Page(ctx, 0, federation.MaxPage)
	if err != nil {
		t.Fatal(err)
	}
	it := items[len(items)-1]
	pl := payload(t, it)
	var data map[string]any
	json.Unmarshal(pl.Data, &data)
	secret, _ := a.fed.Accounts.PairwiseSecret(acct)
	data["pairwise_secret"] = base64.RawURLEncoding.EncodeToString(secret)
	pl.Data, _ = json.Marshal(data)
	raw, _ := json.Marshal(pl)
	k, err := a.fed.Keys.Active(ctx, keys.DefaultAlg)
	if err != nil {
		t.Fatal(err)
	}
	if it.JWS, err = did.Sign(k.Key, k.KID, raw, map[string]any{"typ": federation.EventType}); err != nil {
		t.Fatal(err)
	}
	pk, err := a.fed.Accounts.SigningKey(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	if it.PersonJWS, err = did.Sign(pk.Private, pk.KeyID, raw, map[string]any{"typ": federation.EventType}); err != nil {
		t.Fatal(err)
	}
	if err := b.fed.ApplyBatch(ctx, peerA, []federation.Item{it}); err != nil {
		t.Fatal(err)
	}
	got, err := b.db.GetAccount(ctx, acct.DID)
	if err != nil || got.Name != "Olga" || len(got.PairwiseSecretSealed) != 0 {
		t.Fatalf("replica: %+v %v", got, err)
	}
}

// subjectsWorld is a home A serving the subjects endpoint, a peer B that
// asks it, and a third cloud C whose services A knows.
type subjectsWorld struct {
	a, b   *side
	srv    *httptest.Server
	acct   *identity.Account
	secret []byte
}

func newSubjectsWorld(t *testing.T) *subjectsWorld {
	t.Helper()
	w := &subjectsWorld{a: newSide(t, "https://a.example"), b: newSide(t, "https://b.example")}
	w.b.peerOf(t, w.a) // A authenticates B
	w.srv = w.a.serve(t)
	// B reaches A at the test server.
	pa := w.a.peerOf(t, w.b)
	pa.Endpoint = w.srv.URL
	if err := w.b.db.PutPeer(ctx, pa); err != nil {
		t.Fatal(err)
	}
	w.b.fed.HTTP = w.srv.Client()
	// C is a peer of A whose services A kept.
	if err := w.a.db.PutPeer(ctx, &federation.Peer{Issuer: "https://c.example", DID: "did:web:c.example", JWKSURI: "https://c.example/jwks.json",
		Metadata: []byte(`{}`), AddedAt: time.Now(), KeysAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	announce := func(issuer, id, md string) {
		if err := w.a.db.PutRemoteService(ctx, issuer, id, []byte(md), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	announce("https://c.example", "diary", `{"client_id":"diary","client_name":"Diary","redirect_uris":["https://diary.c.example/cb"],"x_sector":"diary.c.example"}`)
	announce(w.b.fed.Issuer, "notes", `{"client_id":"notes","client_name":"Notes","redirect_uris":["https://notes.b.example/cb"],"x_sector":"notes.b.example"}`)
	// A fork on B of A's forum, and of C's diary.
	if err := w.a.db.CreateClient(ctx, &oidc.StoredClient{ClientID: "forum", Metadata: []byte(`{"client_name":"Forum","redirect_uris":["https://forum.a.example/cb"],"x_sector":"forum.a.example"}`),
		CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	announce(w.b.fed.Issuer, "forum-fork", `{"client_id":"forum-fork","client_name":"Forum fork","redirect_uris":["https://fork.b.example/cb"],"x_sector":"fork.b.example",
		"x_family_root":"https://a.example#forum","x_family_sector":"forum.a.example"}`)
	announce(w.b.fed.Issuer, "diary-fork", `{"client_id":"diary-fork","client_name":"Diary fork","redirect_uris":["https://dfork.b.example/cb"],"x_sector":"dfork.b.example",
		"x_family_root":"https://c.example#diary","x_family_sector":"diary.c.example"}`)
	// Hostile announcements: a "fork" claiming C's sector under a root
	// with another sector, one under a root unknown here, and a service
	// claiming C's sector as its own.
	announce(w.b.fed.Issuer, "fake-fork", `{"client_id":"fake-fork","client_name":"Fake","redirect_uris":["https://fake.b.example/cb"],"x_sector":"fake.b.example",
		"x_family_root":"notes","x_family_sector":"diary.c.example"}`)
	announce(w.b.fed.Issuer, "orphan-fork", `{"client_id":"orphan-fork","client_name":"Orphan","redirect_uris":["https://orphan.b.example/cb"],"x_sector":"orphan.b.example",
		"x_family_root":"https://nowhere.example#x","x_family_sector":"diary.c.example"}`)
	announce(w.b.fed.Issuer, "liar", `{"client_id":"liar","client_name":"Liar","redirect_uris":["https://liar.b.example/cb"],"x_sector":"diary.c.example"}`)
	acct, err := w.a.fed.Accounts.Create(ctx, identity.CreateParams{Handle: "sam", Name: "Sam", Password: "a fine password"})
	if err != nil {
		t.Fatal(err)
	}
	setSharing(t, w.a, acct.DID, federation.ShareAll)
	w.acct = acct
	if w.secret, err = w.a.fed.Accounts.PairwiseSecret(acct); err != nil {
		t.Fatal(err)
	}
	return w
}

// ask posts a request to A's subjects endpoint as token's cloud.
func (w *subjectsWorld) ask(t *testing.T, token string, body any) (int, map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	if s, ok := body.(string); ok {
		raw = []byte(s)
	}
	req, _ := http.NewRequest("POST", w.srv.URL+federation.SubjectsPath, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// TestSubjectsEndpoint: the home gives a peer the sub of a person it
// shares with that peer at a sector of that peer's own service (or of
// a fork's verified family), and nothing else; each disclosure is in the
// person's activity log.
func TestSubjectsEndpoint(t *testing.T) {
	w := newSubjectsWorld(t)
	tok, _ := w.b.fed.PeerToken(ctx, w.a.fed.Issuer)
	req := func(account, sector, client string) map[string]string {
		return map[string]string{"account": account, "sector": sector, "client_id": client}
	}
	// Allowed: the peer's own service at its sector, and forks whose
	// family root is known here with the claimed sector.
	for _, tc := range []struct{ client, sector string }{
		{"notes", "notes.b.example"}, {"forum-fork", "forum.a.example"}, {"forum-fork", "fork.b.example"}, {"diary-fork", "diary.c.example"},
	} {
		st, out := w.ask(t, tok, req(w.acct.DID, tc.sector, tc.client))
		if want := oidc.PairwiseSubject(w.secret, tc.sector); st != 200 || out["sub"] != want {
			t.Fatalf("%s at %s: %d %v, want sub %s", tc.client, tc.sector, st, out, want)
		}
	}
	acts, err := w.a.db.ListActivity(ctx, w.acct.DID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	logged := map[string]bool{}
	for _, a := range acts {
		if a.Kind == federation.ActivitySubjectDisclosed {
			logged[a.ClientID] = true
			if a.Detail["cloud"] != "b.example" {
				t.Fatalf("disclosure entry: %+v", a)
			}
		}
	}
	if !logged["https://b.example#notes"] || !logged["https://b.example#forum-fork"] || !logged["https://b.example#diary-fork"] {
		t.Fatalf("disclosures logged: %v", logged)
	}

	bob, _ := w.a.fed.Accounts.Create(ctx, identity.CreateParams{Handle: "bob", Name: "Bob", Password: "a fine password"})
	notSharedOut := ""
	for name, tc := range map[string]struct {
		body any
		want int
	}{
		"another cloud's sector under own client": {req(w.acct.DID, "diary.c.example", "notes"), 403},
		"another cloud's service":                 {req(w.acct.DID, "diary.c.example", "diary"), 403},
		"this cloud's service":                    {req(w.acct.DID, "forum.a.example", "forum"), 403},
		"fork claiming a sector its root lacks":   {req(w.acct.DID, "diary.c.example", "fake-fork"), 403},
		"fork of a root unknown here":             {req(w.acct.DID, "diary.c.example", "orphan-fork"), 403},
		"own sector not its redirect URIs' host":  {req(w.acct.DID, "diary.c.example", "liar"), 403},
		"account not shared":                      {req(bob.DID, "notes.b.example", "notes"), 403},
		"unknown account":                         {req("did:key:z6MkunknownAccount", "notes.b.example", "notes"), 403},
		"not JSON":                                {"{", 400},
		"missing sector":                          {req(w.acct.DID, "", "notes"), 400},
		"oversized field":                         {req(w.acct.DID, strings.Repeat("x", 600), "notes"), 400},
		"oversized body":                          {`{"account":"` + strings.Repeat("x", 5000) + `"}`, 400},
	} {
		st, out := w.ask(t, tok, tc.body)
		if st != tc.want || out["sub"] != nil || out["error"] == nil {
			t.Errorf("%s: %d %v, want %d and an error", name, st, out, tc.want)
		}
		if st == 403 && out["error"] != "access_denied" {
			t.Errorf("%s: error %v", name, out["error"])
		}
		if strings.HasPrefix(name, "account not shared") || strings.HasPrefix(name, "unknown account") {
			// The same answer: the peer learns nothing of the account.
			d, _ := out["error_description"].(string)
			if notSharedOut != "" && d != notSharedOut {
				t.Errorf("%s: %q, other answer %q", name, d, notSharedOut)
			}
			notSharedOut = d
		}
	}
	// The person's fork policy "never": no family sector for forks.
	st := privacy.DefaultSettings()
	st.FederationSharing, st.ForkPolicy = federation.ShareAll, privacy.PolicyNever
	if err := (&privacy.Service{Store: w.a.db, Grants: w.a.db, Now: time.Now}).UpdateSettings(ctx, w.acct.DID, st, privacy.ActivityMeta{}); err != nil {
		t.Fatal(err)
	}
	if code, out := w.ask(t, tok, req(w.acct.DID, "forum.a.example", "forum-fork")); code != 403 || out["sub"] != nil {
		t.Fatalf("family sector under fork policy never: %d %v", code, out)
	}
	// Only peers ask.
	if code, _ := w.ask(t, "", req(w.acct.DID, "notes.b.example", "notes")); code != 401 {
		t.Fatalf("without a peer token: %d", code)
	}
	stranger := newSide(t, "https://s.example")
	stok, _ := stranger.fed.PeerToken(ctx, w.a.fed.Issuer)
	if code, out := w.ask(t, stok, req(w.acct.DID, "notes.b.example", "notes")); code != 401 || out["sub"] != nil {
		t.Fatalf("a cloud that is not a peer: %d %v", code, out)
	}
}

// TestSubjectsUnannounced: a client_id the peer never announced is
// refused (after the short wait for an announcement in flight).
func TestSubjectsUnannounced(t *testing.T) {
	w := newSubjectsWorld(t)
	tok, _ := w.b.fed.PeerToken(ctx, w.a.fed.Issuer)
	start := time.Now()
	code, out := w.ask(t, tok, map[string]string{"account": w.acct.DID, "sector": "ghost.b.example", "client_id": "ghost"})
	if code != 403 || out["sub"] != nil || time.Since(start) > 10*time.Second {
		t.Fatalf("unannounced service: %d %v after %s", code, out, time.Since(start))
	}
}

// TestSubjectsRateLimit: one peer's requests are bounded; over the budget
// the answer is 429 with Retry-After, refused requests included.
func TestSubjectsRateLimit(t *testing.T) {
	w := newSubjectsWorld(t)
	tok, _ := w.b.fed.PeerToken(ctx, w.a.fed.Issuer)
	body := map[string]string{"account": "did:key:z6Mknobody", "sector": "notes.b.example", "client_id": "notes"}
	limited := 0
	for range 400 {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", w.srv.URL+federation.SubjectsPath, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			limited++
		}
	}
	if limited < 50 {
		t.Fatalf("%d of 400 requests limited", limited)
	}
}

// TestReplicaSubject: the peer learns a sub from the home once, keeps it,
// and serves it while the home is down; a new sector then fails with
// ErrHomeUnavailable, and a refusal with ErrHomeRefused.
func TestReplicaSubject(t *testing.T) {
	w := newSubjectsWorld(t)
	peerA, _ := w.b.db.GetPeer(ctx, w.a.fed.Issuer)
	syncOnce(t, w.a, w.b, peerA)
	rep, err := w.b.db.GetAccount(ctx, w.acct.DID)
	if err != nil || len(rep.PairwiseSecretSealed) != 0 {
		t.Fatalf("replica: %+v %v", rep, err)
	}
	want := oidc.PairwiseSubject(w.secret, "notes.b.example")
	if sub, err := w.b.fed.ReplicaSubject(ctx, rep, "notes", "notes.b.example"); err != nil || sub != want {
		t.Fatalf("learned %q %v, want %q", sub, err, want)
	}
	if sub, err := w.b.db.ReplicaSubject(ctx, rep.DID, "notes.b.example"); err != nil || sub != want {
		t.Fatalf("kept %q %v", sub, err)
	}
	if _, err := w.b.fed.ReplicaSubject(ctx, rep, "notes", "diary.c.example"); !errors.Is(err, federation.ErrHomeRefused) {
		t.Fatalf("refused sector: %v", err)
	}
	if _, err := w.b.db.ReplicaSubject(ctx, rep.DID, "diary.c.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused sub was kept: %v", err)
	}
	w.srv.Close()
	if sub, err := w.b.fed.ReplicaSubject(ctx, rep, "notes", "notes.b.example"); err != nil || sub != want {
		t.Fatalf("with the home down: %q %v", sub, err)
	}
	if _, err := w.b.fed.ReplicaSubject(ctx, rep, "forum-fork", "fork.b.example"); !errors.Is(err, federation.ErrHomeUnavailable) {
		t.Fatalf("a new sector with the home down: %v", err)
	}
}
