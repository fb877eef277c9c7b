package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/store"
)

// answerPeerConsent allows on the home's peer consent page (after consent
// edits the form) and returns where that leads; any other page is returned
// as it is.
func (b *browser) answerPeerConsent(p *page, consent func(url.Values)) *page {
	b.t.Helper()
	if p.url.Path != "/consent/peer" {
		return p
	}
	if p.status != 200 {
		b.t.Fatalf("peer consent page: %d %s", p.status, p.body)
	}
	form := formValues(p.body)
	form.Set("decision", "allow")
	if consent != nil {
		consent(form)
	}
	return b.post(p.url.Scheme+"://"+p.url.Host+"/consent/peer", form)
}

// silentPeerAuthorize sends, from br, the request a peer cloud would send
// to sign the person in at home without showing anything (prompt=none),
// with the peer's issuer as client_id, and returns where home answers.
func silentPeerAuthorize(t *testing.T, br *browser, home, peer string) *url.URL {
	t.Helper()
	sum := sha256.Sum256([]byte(randString(32)))
	q := url.Values{
		"response_type": {"code"}, "client_id": {peer}, "redirect_uri": {peer + federation.CallbackPath},
		"scope": {"openid"}, "state": {randString(12)}, "nonce": {randString(12)}, "prompt": {"none"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	cl := *br.client
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := cl.Get(home + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if resp.StatusCode/100 != 3 || err != nil {
		t.Fatalf("silent authorize from %s: %d, no redirect", peer, resp.StatusCode)
	}
	if !strings.HasPrefix(loc.String(), peer+federation.CallbackPath+"?") {
		t.Fatalf("silent authorize from %s answered at %s", peer, loc)
	}
	return loc
}

// refused checks that a silent request got error, and no code.
func refused(t *testing.T, what string, loc *url.URL, did, wantErr string) {
	t.Helper()
	if q := loc.Query(); q.Get("error") != wantErr || q.Has("code") || strings.Contains(loc.String(), url.QueryEscape(did)) {
		t.Fatalf("%s: answered %s, want error=%s and no code", what, loc, wantErr)
	}
}

// TestBrokeredSignInByConsent runs three clouds, A and C on SQLite and B on
// PostgreSQL, peered with each other. A person homed on A who shares
// nothing with other clouds signs in to a service on B through A: A asks
// them, naming B and the service; allowing makes a grant that shares their
// public profile with B alone, and B's service gets a token for them. A
// peer without a grant (C, and B before the grant and after its
// revocation) asking A silently (prompt=none) learns nothing: no code, no
// DID. Revoking B on A's dashboard makes B drop its replica.
func TestBrokeredSignInByConsent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := startCloud(t, sqliteEnv(t))
	b := startCloud(t, postgresEnv(t))
	c := startCloud(t, sqliteEnv(t))
	for _, pair := range [][2]*cloudProc{{a, b}, {a, c}, {b, a}, {b, c}, {c, a}, {c, b}} {
		pair[0].env.must(t, "", "peer", "add", pair[1].base)
	}
	clA := openTestCloud(t, a.live())
	dbA, dbB, dbC := clA.db, openTestCloud(t, b.live()).db, openTestCloud(t, c.live()).db
	const pw = "correct horse battery"
	did := lastLine(a.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--name", "Alice", "--email", "alice@example.org", "--password-stdin"))

	// Notes, a service on B, announced to A in B's feed.
	notesB := newRP(t, b.live(), "Notes", nil)
	eventually(t, 5*time.Second, "A knows B's Notes", func() bool {
		_, err := dbA.RemoteService(ctx, b.base, notesB.conf.ClientID)
		return err == nil
	})
	if _, err := dbB.GetAccount(ctx, did); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an account that shares nothing is on B: %v", err)
	}

	// 1. Without a grant, a silent request from a peer learns nothing:
	// login_required without a sign-on at A, consent_required with one.
	anon := newFedBrowser(t)
	refused(t, "B, nobody signed in on A", silentPeerAuthorize(t, anon, a.base, b.base), did, "login_required")
	onA := newFedBrowser(t)
	if p := onA.signIn(a.base, "alice", pw); p.url.Path != "/account" {
		t.Fatalf("sign in on A: %d %s", p.status, p.url)
	}
	refused(t, "B before the grant", silentPeerAuthorize(t, onA, a.base, b.base), did, "consent_required")
	refused(t, "C before any grant", silentPeerAuthorize(t, onA, a.base, c.base), did, "consent_required")

	// 2. Brokered sign-in at B through A, by consent.
	visitor := newFedBrowser(t)
	v := oauth2.GenerateVerifier()
	p := visitor.get(notesB.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v)))
	if p.url.Path != "/login" || !strings.Contains(p.body, "Sign in with your home cloud") {
		t.Fatalf("sign-in page on B: %d %s", p.status, p.url)
	}
	p = visitor.get(b.base + "/federation/v1/broker?" + url.Values{"home": {a.base}, "return_to": {formValues(p.body).Get("return_to")}}.Encode())
	if !strings.HasPrefix(p.url.String(), a.base+"/login") {
		t.Fatalf("broker did not lead to A's sign-in: %d %s", p.status, p.url)
	}
	if got := p.url.Query().Get("return_to"); got == "" {
		t.Fatalf("A's sign-in page without return_to: %s", p.url)
	}
	form := formValues(p.body)
	form.Set("username", "alice")
	form.Set("password", pw)
	p = visitor.post(a.base+"/login", form)
	bHost := strings.TrimPrefix(b.base, "http://")
	if p.url.Path != "/consent/peer" || p.status != 200 {
		t.Fatalf("after signing in on A: %d %s\n%s", p.status, p.url, p.body)
	}
	if !strings.Contains(p.body, bHost+" wants to sign you in to Notes") {
		t.Fatalf("the peer consent page does not name B and Notes:\n%s", p.body)
	}
	p = visitor.answerConsent(visitor.answerPeerConsent(p, nil), nil)
	sub, access := exchangeSub(t, notesB, p, v)
	// The pairwise sub of Notes' sector, from the secret held on A.
	home, err := dbA.GetAccount(ctx, did)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := clA.accounts.PairwiseSecret(home)
	if err != nil {
		t.Fatal(err)
	}
	ru, _ := url.Parse(notesB.redirect)
	if want := oidc.PairwiseSubject(secret, ru.Host); sub != want || sub == did {
		t.Fatalf("sub of Notes on B %s, want %s", sub, want)
	}
	if info, err := notesB.provider.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: access})); err != nil || info.Subject != sub {
		t.Fatalf("userinfo on B: %v %v", info, err)
	}
	// B holds the public profile, C nothing.
	acc, err := dbB.GetAccount(ctx, did)
	if err != nil || acc.HomeIssuer != a.base || !strings.HasPrefix(acc.Handle, "alice") || acc.Email != "" || acc.PasswordHash != "" {
		t.Fatalf("replica on B: %+v %v", acc, err)
	}
	if _, err := dbC.GetAccount(ctx, did); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("C received an account that was granted to B only: %v", err)
	}

	// The grant is on A's dashboard and in the activity log; it is no
	// connected service.
	if p := onA.get(a.base + "/account/privacy"); !strings.Contains(p.body, "Clouds that may sign you in") || !strings.Contains(p.body, bHost) {
		t.Fatalf("privacy page on A:\n%s", p.body)
	}
	if st, _, arr := onA.api("GET", a.base+"/account/api/clouds", nil); st != 200 || len(arr) != 1 || arr[0].(map[string]any)["issuer"] != b.base {
		t.Fatalf("clouds API: %d %v", st, arr)
	}
	if _, _, arr := onA.api("GET", a.base+"/account/api/services", nil); strings.Contains(strings.ToLower(strings.Join(clientIDs(arr), " ")), bHost) {
		t.Fatalf("B listed as a connected service: %v", arr)
	}
	if p := onA.get(a.base + "/account/activity"); !strings.Contains(p.body, "Cloud allowed to sign you in") {
		t.Fatalf("activity on A does not show the grant:\n%s", p.body)
	}

	// 3. The grant lets B sign the person in silently; C still learns
	// nothing.
	if loc := silentPeerAuthorize(t, onA, a.base, b.base); loc.Query().Get("code") == "" {
		t.Fatalf("B with a grant: %s", loc)
	}
	refused(t, "C after B's grant", silentPeerAuthorize(t, onA, a.base, c.base), did, "consent_required")

	// 4. Revoked on A's dashboard: B can no longer sign the person in
	// silently, and drops its replica.
	p = onA.post(a.base+"/account/clouds/revoke", url.Values{"issuer": {b.base}})
	if p.status != 200 || !strings.Contains(p.body, "can no longer sign you in") {
		t.Fatalf("revoke B on A: %d %s\n%s", p.status, p.url, p.body)
	}
	refused(t, "B after revocation", silentPeerAuthorize(t, onA, a.base, b.base), did, "consent_required")
	eventually(t, 5*time.Second, "B drops the replica", func() bool {
		_, err := dbB.GetAccount(ctx, did)
		return errors.Is(err, store.ErrNotFound)
	})
	if st, out, _ := onA.api("POST", a.base+"/account/api/clouds/revoke", map[string]any{"issuer": b.base}); st != 404 {
		t.Fatalf("revoking again: %d %v", st, out)
	}
	if p := onA.get(a.base + "/account/activity"); !strings.Contains(p.body, "Cloud no longer signs you in") {
		t.Fatalf("activity on A does not show the revocation:\n%s", p.body)
	}

	// 5. The page names only a service B announced: a service_client_id
	// that is none of B's services is "a service on B", never its text.
	sum := sha256.Sum256([]byte(randString(32)))
	p = onA.get(a.base + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {b.base}, "redirect_uri": {b.base + federation.CallbackPath},
		"scope": {"openid"}, "state": {randString(12)}, "service_client_id": {"Evil Service"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}.Encode())
	if p.url.Path != "/consent/peer" || !strings.Contains(p.body, "wants to sign you in to a service on "+bHost) || strings.Contains(p.body, "Evil") {
		t.Fatalf("peer consent page for an unknown service: %d %s\n%s", p.status, p.url, p.body)
	}
	// Denying tells B access_denied and grants nothing.
	form = formValues(p.body)
	form.Set("decision", "deny")
	cl := *onA.client
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := cl.PostForm(a.base+"/consent/peer", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc, _ := resp.Location(); loc == nil || loc.Query().Get("error") != "access_denied" || loc.Query().Has("code") {
		t.Fatalf("denied: %d %v", resp.StatusCode, loc)
	}
	if _, err := dbA.GetConsent(ctx, did, b.base); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a grant after denying: %v", err)
	}
}

func clientIDs(arr []any) []string {
	var out []string
	for _, x := range arr {
		if m, ok := x.(map[string]any); ok {
			id, _ := m["client_id"].(string)
			out = append(out, id)
		}
	}
	return out
}

// TestSignupAsksSharing: the sign-up form explains each federation sharing
// choice, "Nothing" chosen by default, and the choice made is stored.
func TestSignupAsksSharing(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	b := newBrowser(t)
	p := b.get(l.base + "/signup")
	for _, want := range []string{"Other clouds learn nothing about you unless you let one sign you in", "Public profile", "Everything"} {
		if !strings.Contains(p.body, want) {
			t.Fatalf("sign-up page without %q:\n%s", want, p.body)
		}
	}
	if got := formValues(p.body).Get("federation_sharing"); got != "none" {
		t.Fatalf("sign-up preselects %q", got)
	}
	for _, tc := range []struct{ handle, choice, want string }{
		{"sam", "", "none"}, {"kim", "public_profile", "public_profile"}, {"lou", "all", "all"}, {"max", "bogus", "none"},
	} {
		t.Run(tc.handle, func(t *testing.T) {
			br := newBrowser(t)
			form := url.Values{"handle": {tc.handle}, "password": {"correct horse battery"}, "return_to": {"/account"}}
			if tc.choice != "" {
				form.Set("federation_sharing", tc.choice)
			}
			if p := br.post(l.base+"/signup", form); p.url.Path != "/account" {
				t.Fatalf("sign-up: %d %s\n%s", p.status, p.url, p.body)
			}
			if st, out, _ := br.api("GET", l.base+"/account/api/privacy", nil); st != 200 || out["federation_sharing"] != tc.want {
				t.Fatalf("sharing after sign-up: %d %v", st, out)
			}
		})
	}
}
