package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/privacy"
)

// sectorOf is the pairwise sector of a test service: its redirect host.
func sectorOf(t *testing.T, app *rp) string {
	t.Helper()
	u, err := url.Parse(app.conf.RedirectURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// noSecretIn fails if an item's payloads (cloud and person signatures)
// carry the pairwise secret in any encoding, or a pairwise_secret field.
func noSecretIn(t *testing.T, where string, it federation.Item, secret []byte) {
	t.Helper()
	forms := []string{"pairwise_secret", base64.RawURLEncoding.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret),
		base64.RawStdEncoding.EncodeToString(secret), base64.URLEncoding.EncodeToString(secret), hex.EncodeToString(secret)}
	for _, jws := range []string{it.JWS, it.PersonJWS} {
		if jws == "" {
			continue
		}
		parts := strings.Split(jws, ".")
		if len(parts) != 3 {
			t.Fatalf("%s: event %d is not a compact JWS", where, it.Seq)
		}
		raw, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil || !json.Valid(raw) {
			t.Fatalf("%s: event %d: payload does not decode: %v", where, it.Seq, err)
		}
		for _, f := range forms {
			if bytes.Contains(raw, []byte(f)) {
				t.Fatalf("%s: event %d carries the pairwise secret (%q):\n%s", where, it.Seq, f[:min(len(f), 16)], raw)
			}
		}
	}
}

// askSubjects posts to a cloud's subjects endpoint with a peer token.
func askSubjects(t *testing.T, base, token string, body map[string]string) (int, map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+federation.SubjectsPath, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestSubjectsOnPeers runs a home A, a peer B and a peer C and checks that peers never receive the pairwise secret:
// no feed page or stream event of A carries it and replicas hold none; B
// signs the person in to its own service with the sub A computes for that
// sector; C, hostile, gets nothing for B's sector or for an account not
// shared with it; with A down a service used before keeps working and a
// new one gets a clear error page; a replica that held a secret (older
// versions) keeps its subs after the upgrade at start.
// It runs with the home on SQLite and the peer on PostgreSQL, and the
// other way round.
func TestSubjectsOnPeers(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped with -short: runs three clouds and restarts two")
	}
	t.Run("home SQLite, peer PostgreSQL", func(t *testing.T) { testSubjectsOnPeers(t, sqliteEnv(t), postgresEnv(t)) })
	t.Run("home PostgreSQL, peer SQLite", func(t *testing.T) { testSubjectsOnPeers(t, postgresEnv(t), sqliteEnv(t)) })
}

func testSubjectsOnPeers(t *testing.T, homeEnv, peerEnv env) {
	ctx := context.Background()
	a, b, c := startCloud(t, homeEnv), startCloud(t, peerEnv), startCloud(t, sqliteEnv(t))
	for _, pair := range [][2]*cloudProc{{a, b}, {b, a}, {a, c}, {c, a}} {
		pair[0].env.must(t, "", "peer", "add", pair[1].base)
	}
	clA, clB, clC := openTestCloud(t, a.live()), openTestCloud(t, b.live()), openTestCloud(t, c.live())
	disc, err := http.Get(a.base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	json.NewDecoder(disc.Body).Decode(&meta)
	disc.Body.Close()
	if meta["federation_subjects_endpoint"] != a.base+federation.SubjectsPath {
		t.Fatalf("discovery: federation_subjects_endpoint = %v", meta["federation_subjects_endpoint"])
	}

	const pw = "correct horse battery"
	did := lastLine(a.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--name", "Alice", "--password-stdin"))
	bob := lastLine(a.env.must(t, pw+"\n", "user", "create", "--username", "bob", "--password-stdin"))
	home := newFedBrowser(t)
	if p := home.signIn(a.base, "alice", pw); p.url.Path != "/account" {
		t.Fatalf("sign in on A: %d %s", p.status, p.url)
	}
	if st, _, _ := home.api("PUT", a.base+"/account/api/privacy", map[string]any{"subject_mode": "pairwise", "fork_policy": "ask",
		"federation_sharing": "all", "activity_retention_days": 365, "consent_lifetime_days": 0, "claim_policy": map[string]string{}}); st != 200 {
		t.Fatalf("share on A: %d", st)
	}
	// A service on A the person uses: consents travel with "all".
	forum := newRP(t, a.live(), "forum", nil)
	v := oauth2.GenerateVerifier()
	p := home.authorize(forum.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v)), "alice", pw, nil)
	exchangeSub(t, forum, p, v)
	acctA, err := clA.db.GetAccount(ctx, did)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := clA.accounts.PairwiseSecret(acctA)
	if err != nil {
		t.Fatal(err)
	}
	for name, cl := range map[string]*cloud{"B": clB, "C": clC} {
		eventually(t, 5*time.Second, "the replica on "+name, func() bool {
			acc, err := cl.db.GetAccount(ctx, did)
			return err == nil && acc.Email == "alice@example.org"
		})
		if acc, _ := cl.db.GetAccount(ctx, did); len(acc.PairwiseSecretSealed) != 0 {
			t.Fatalf("the replica on %s holds a pairwise secret", name)
		}
	}

	// 1. No page of A's feed, as any peer reads it, and no event of its
	// live stream carries the secret.
	last, _ := clA.db.LastEventSeq(ctx)
	for name, cl := range map[string]*cloud{"B": clB, "C": clC} {
		tok, err := cl.federation().PeerToken(ctx, a.base)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for after, more := int64(0), true; more; {
			req, _ := http.NewRequest("GET", a.base+"/federation/v1/events?limit=1000&after="+strconv.FormatInt(after, 10), nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("feed page as %s: %v %v", name, resp, err)
			}
			var page struct {
				Events []federation.Item `json:"events"`
				Next   int64             `json:"next"`
				More   bool              `json:"more"`
			}
			json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			for _, it := range page.Events {
				noSecretIn(t, "page as "+name, it, secret)
				n++
			}
			after, more = page.Next, page.More
		}
		if int64(n) < last/2 {
			t.Fatalf("%d events paged as %s, the log holds %d", n, name, last)
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		req, _ := http.NewRequestWithContext(sctx, "GET", a.base+"/federation/v1/stream", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream as %s: %v %v", name, resp, err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 2<<20)
		seen := 0
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var it federation.Item
			if err := json.Unmarshal([]byte(data), &it); err != nil {
				t.Fatal(err)
			}
			noSecretIn(t, "stream as "+name, it, secret)
			if seen++; it.Seq >= last {
				break
			}
		}
		resp.Body.Close()
		cancel()
		if seen == 0 {
			t.Fatalf("the stream as %s sent nothing", name)
		}
	}

	// 2. B signs the person in to its own service: the sub is the one A
	// computes for that sector, learned once and kept on B; A's activity
	// log says B learned it.
	notes := newRP(t, b.live(), "notes", nil)
	notesSector := sectorOf(t, notes)
	eventually(t, 5*time.Second, "A keeps B's notes", func() bool {
		_, err := clA.db.RemoteService(ctx, b.base, notes.conf.ClientID)
		return err == nil
	})
	visitor := newFedBrowser(t)
	v = oauth2.GenerateVerifier()
	p = brokeredSignIn(t, visitor, notes.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v)), a.base, "alice", pw, nil)
	subNotes, _ := exchangeSub(t, notes, p, v)
	if want := oidc.PairwiseSubject(secret, notesSector); subNotes != want {
		t.Fatalf("notes sub on B %s, A computes %s", subNotes, want)
	}
	if kept, err := clB.db.ReplicaSubject(ctx, did, notesSector); err != nil || kept != subNotes {
		t.Fatalf("B keeps %q %v", kept, err)
	}
	acts, _ := clA.db.ListActivity(ctx, did, 0, 200)
	disclosed := false
	for _, e := range acts {
		disclosed = disclosed || e.Kind == federation.ActivitySubjectDisclosed && e.ClientID == b.base+"#"+notes.conf.ClientID
	}
	if !disclosed {
		t.Fatalf("A's activity log does not say B learned the identifier: %+v", acts)
	}
	if pg := home.get(a.base + "/account/activity"); !strings.Contains(pg.body, "Another cloud learned your identifier") {
		t.Fatalf("the activity page on A does not show the disclosure:\n%s", pg.body)
	}

	// 3. C, a peer gone hostile, asks A for the person's sub at B's
	// notes, under its own service and under B's; and for bob, who shares
	// nothing: 403, no sub.
	diary := newRP(t, c.live(), "diary", nil)
	eventually(t, 5*time.Second, "A keeps C's diary", func() bool {
		_, err := clA.db.RemoteService(ctx, c.base, diary.conf.ClientID)
		return err == nil
	})
	tokC, err := clC.federation().PeerToken(ctx, a.base)
	if err != nil {
		t.Fatal(err)
	}
	descs := map[string]string{}
	for name, body := range map[string]map[string]string{
		"B's sector under C's service": {"account": did, "sector": notesSector, "client_id": diary.conf.ClientID},
		"B's service":                  {"account": did, "sector": notesSector, "client_id": notes.conf.ClientID},
		"A's forum":                    {"account": did, "sector": sectorOf(t, forum), "client_id": forum.conf.ClientID},
		"not shared":                   {"account": bob, "sector": sectorOf(t, diary), "client_id": diary.conf.ClientID},
		"unknown account":              {"account": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "sector": sectorOf(t, diary), "client_id": diary.conf.ClientID},
	} {
		st, out := askSubjects(t, a.base, tokC, body)
		if st != 403 || out["sub"] != nil || out["error"] != "access_denied" {
			t.Fatalf("C asks for %s: %d %v", name, st, out)
		}
		descs[name], _ = out["error_description"].(string)
	}
	if descs["not shared"] != descs["unknown account"] {
		t.Fatalf("C tells a closed account from an unknown one: %q, %q", descs["not shared"], descs["unknown account"])
	}
	// Its own service, for a person who shares: allowed.
	if st, out := askSubjects(t, a.base, tokC, map[string]string{"account": did, "sector": sectorOf(t, diary), "client_id": diary.conf.ClientID}); st != 200 ||
		out["sub"] != oidc.PairwiseSubject(secret, sectorOf(t, diary)) {
		t.Fatalf("C asks for its own service: %d %v", st, out)
	}

	// 4. A is down: the notes on B keep working with the same sub; a new
	// service on B gets a clear error page, and works once A is back.
	journal := newRP(t, b.live(), "journal", nil)
	a.stop()
	v = oauth2.GenerateVerifier()
	p = visitor.authorize(notes.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v)), "alice", pw, nil)
	if sub, _ := exchangeSub(t, notes, p, v); sub != subNotes {
		t.Fatalf("notes sub with A down %s, before %s", sub, subNotes)
	}
	p = visitor.authorize(journal.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", pw, nil)
	if p.status != http.StatusServiceUnavailable || !strings.Contains(p.body, "Your home cloud cannot be reached") || !strings.Contains(p.body, a.base) ||
		!strings.Contains(p.body, "Services you already use here keep working") {
		t.Fatalf("a new service with A down: %d %s\n%s", p.status, p.url, p.body)
	}
	if _, err := clB.db.ReplicaSubject(ctx, did, sectorOf(t, journal)); err == nil {
		t.Fatal("B holds a sub for the journal that A never gave")
	}
	a.start()
	v = oauth2.GenerateVerifier()
	p = visitor.authorize(journal.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v)), "alice", pw, nil)
	if sub, _ := exchangeSub(t, journal, p, v); sub != oidc.PairwiseSubject(secret, sectorOf(t, journal)) {
		t.Fatalf("journal sub once A is back: %s", sub)
	}

	// 5. Upgrade: a replica as older versions made it (the secret sealed
	// on B, a consent at B's service, no sub learned) keeps its sub after
	// B restarts, holds no secret any more, and the service works with A
	// down.
	legacy := newRP(t, b.live(), "legacy", nil)
	legacySector := sectorOf(t, legacy)
	rep, err := clB.db.GetAccount(ctx, did)
	if err != nil {
		t.Fatal(err)
	}
	if rep.PairwiseSecretSealed, err = clB.accounts.SealPairwiseSecret(did, secret); err != nil {
		t.Fatal(err)
	}
	if err := clB.db.PutReplica(ctx, rep); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := clB.db.PutConsent(ctx, &privacy.Consent{AccountDID: did, ClientID: legacy.conf.ClientID, Scopes: []string{"openid"}, GrantedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	b.stop()
	b.start()
	if acc, _ := clB.db.GetAccount(ctx, did); len(acc.PairwiseSecretSealed) != 0 {
		t.Fatal("the upgraded replica still holds the secret")
	}
	want := oidc.PairwiseSubject(secret, legacySector)
	for _, sector := range []string{legacySector, notesSector} {
		if kept, err := clB.db.ReplicaSubject(ctx, did, sector); err != nil || kept != oidc.PairwiseSubject(secret, sector) {
			t.Fatalf("after the upgrade B keeps %q at %s: %v", kept, sector, err)
		}
	}
	a.stop()
	v = oauth2.GenerateVerifier()
	p = visitor.authorize(legacy.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v)), "alice", pw, nil)
	if sub, _ := exchangeSub(t, legacy, p, v); sub != want {
		t.Fatalf("legacy sub after the upgrade %s, want %s", sub, want)
	}
	// A second start changes nothing.
	b.stop()
	b.start()
	if kept, err := clB.db.ReplicaSubject(ctx, did, legacySector); err != nil || kept != want {
		t.Fatalf("after a second start: %q %v", kept, err)
	}
	a.start()
}
