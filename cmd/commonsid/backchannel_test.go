package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// logoutReceiver is a service's backchannel_logout_uri: it answers 500 to
// its first fail requests, then 200, and hands every token it accepted to
// the test.
type logoutReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	fail     int
	attempts []time.Time
	accepted chan string
}

func newLogoutReceiver(t *testing.T, fail int) *logoutReceiver {
	lr := &logoutReceiver{fail: fail, accepted: make(chan string, 16)}
	lr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lr.mu.Lock()
		lr.attempts = append(lr.attempts, time.Now())
		n := len(lr.attempts)
		lr.mu.Unlock()
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		tok := r.PostFormValue("logout_token")
		if n <= lr.fail {
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		lr.accepted <- tok
	}))
	t.Cleanup(lr.Close)
	return lr
}

func (lr *logoutReceiver) next(t *testing.T, what string) string {
	t.Helper()
	select {
	case tok := <-lr.accepted:
		return tok
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: no logout token arrived", what)
		return ""
	}
}

func (lr *logoutReceiver) none(t *testing.T, what string) {
	t.Helper()
	select {
	case tok := <-lr.accepted:
		t.Fatalf("%s: an unexpected logout token arrived: %s", what, tok)
	default:
	}
}

// verifyLogoutToken checks a logout token as a service must (Back-Channel
// Logout §2.6): signature against the provider's JWKS, typ logout+jwt,
// iss, aud, iat, exp, jti, the event, sub or sid, no nonce.
func verifyLogoutToken(t *testing.T, ks *oidc.RemoteKeySet, issuer, clientID, raw string) map[string]any {
	t.Helper()
	payload, err := ks.VerifySignature(context.Background(), raw)
	if err != nil {
		t.Fatalf("logout token signature: %v", err)
	}
	hb, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	var h map[string]any
	json.Unmarshal(hb, &h)
	if h["typ"] != "logout+jwt" || h["kid"] == nil {
		t.Fatalf("logout token header %v", h)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	aud := c["aud"]
	if a, ok := aud.([]any); ok && len(a) == 1 {
		aud = a[0]
	}
	if c["iss"] != issuer || aud != clientID || c["jti"] == nil || c["jti"] == "" {
		t.Fatalf("logout token claims %v", c)
	}
	iat, _ := c["iat"].(float64)
	exp, _ := c["exp"].(float64)
	if now := float64(time.Now().Unix()); iat < now-30 || iat > now+5 || exp <= iat || exp > iat+300 {
		t.Fatalf("logout token iat %v exp %v", iat, exp)
	}
	ev, _ := c["events"].(map[string]any)
	if e, ok := ev["http://schemas.openid.net/event/backchannel-logout"].(map[string]any); !ok || len(e) != 0 {
		t.Fatalf("logout token events %v", c["events"])
	}
	if _, ok := c["nonce"]; ok {
		t.Fatal("a logout token must not carry a nonce")
	}
	if c["sub"] == nil && c["sid"] == nil {
		t.Fatalf("logout token has neither sub nor sid: %v", c)
	}
	return c
}

// TestBackchannelLogout: two services registered with a
// backchannel_logout_uri (real listening servers) sign a person in; the ID
// tokens carry a sid per service that is not the cookie. Signing out sends
// each a logout token that verifies against the JWKS and names the ID
// token's sid and sub; the service that answers 500 twice gets it on the
// third attempt, after growing waits. Revoking one service's consent in
// the dashboard tells that service only; deleting the account tells the
// services still consented to, and so does disabling an account from the
// command line. Bad backchannel_logout_uri values are
// refused at registration.
func TestBackchannelLogout(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			e := mk(t)
			const retry = 300 * time.Millisecond
			e["COMMONSID_BACKCHANNEL_RETRY"] = retry.String()
			l := startLive(t, e)
			l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin")
			var disc struct {
				BC        bool `json:"backchannel_logout_supported"`
				BCSession bool `json:"backchannel_logout_session_supported"`
			}
			if err := newRP(t, l, "probe", nil).provider.Claims(&disc); err != nil || !disc.BC || !disc.BCSession {
				t.Fatalf("discovery: %+v %v", disc, err)
			}
			recvA, recvB := newLogoutReceiver(t, 0), newLogoutReceiver(t, 2)
			appA := newRP(t, l, "notes", map[string]any{"backchannel_logout_uri": recvA.URL + "/backchannel"})
			appB := newRP(t, l, "forum", map[string]any{"backchannel_logout_uri": recvB.URL + "/logout?from=idp",
				"backchannel_logout_session_required": true})
			if appB.reg["backchannel_logout_uri"] != recvB.URL+"/logout?from=idp" || appB.reg["backchannel_logout_session_required"] != true {
				t.Fatalf("registration answer %v", appB.reg)
			}
			ks := oidc.NewRemoteKeySet(ctx, l.base+"/jwks.json")

			b := newBrowser(t)
			signInAt := func(app *rp) (string, map[string]any) {
				t.Helper()
				verifier := oauth2.GenerateVerifier()
				p := b.authorize(app.conf.AuthCodeURL(randString(16), oauth2.S256ChallengeOption(verifier)), "alice", "correct horse battery", nil)
				tok, err := app.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(verifier))
				if err != nil {
					t.Fatalf("exchange: %v (%s)", err, p.url)
				}
				raw, _ := tok.Extra("id_token").(string)
				idt, err := app.provider.Verifier(&oidc.Config{ClientID: app.conf.ClientID}).Verify(ctx, raw)
				if err != nil {
					t.Fatal(err)
				}
				var c map[string]any
				idt.Claims(&c)
				if s, _ := c["sid"].(string); s == "" {
					t.Fatalf("ID token has no sid: %v", c)
				}
				return raw, c
			}
			rawA, idA := signInAt(appA)
			_, idB := signInAt(appB)
			if idA["sid"] == idB["sid"] {
				t.Fatal("two services got the same sid: it would correlate the person across them")
			}
			base, _ := url.Parse(l.base)
			for _, ck := range b.client.Jar.Cookies(base) {
				if ck.Value == idA["sid"] || ck.Value == idB["sid"] {
					t.Fatal("the sid is the session cookie")
				}
			}

			// Sign-out.
			if p := b.get(l.base + "/logout?id_token_hint=" + url.QueryEscape(rawA)); p.status != http.StatusOK {
				t.Fatalf("logout: %d", p.status)
			}
			logoutTok := recvA.next(t, "sign-out at A")
			c := verifyLogoutToken(t, ks, l.base, appA.conf.ClientID, logoutTok)
			if c["sid"] != idA["sid"] || c["sub"] != idA["sub"] {
				t.Fatalf("sign-out token for A: sid %v sub %v, ID token sid %v sub %v", c["sid"], c["sub"], idA["sid"], idA["sub"])
			}
			// A logout token is no ID token: it cannot stand in as a hint.
			if p := b.get(l.base + "/logout?id_token_hint=" + url.QueryEscape(logoutTok)); p.status != http.StatusBadRequest {
				t.Fatalf("a logout token as id_token_hint: %d", p.status)
			}
			c = verifyLogoutToken(t, ks, l.base, appB.conf.ClientID, recvB.next(t, "sign-out at B (third attempt)"))
			if c["sid"] != idB["sid"] || c["sub"] != idB["sub"] {
				t.Fatalf("sign-out token for B: %v, ID token %v", c, idB)
			}
			recvB.mu.Lock()
			at := append([]time.Time(nil), recvB.attempts...)
			recvB.mu.Unlock()
			if len(at) != 3 {
				t.Fatalf("B was tried %d times, want 3", len(at))
			}
			if g1, g2 := at[1].Sub(at[0]), at[2].Sub(at[1]); g1 < retry-50*time.Millisecond || g2 < 3*retry {
				t.Fatalf("retries came after %v and %v, want about %v and %v", g1, g2, retry, 4*retry)
			}

			// Consent revoked in the dashboard: A only, by sub.
			if p := b.signIn(l.base, "alice", "correct horse battery"); p.status != http.StatusOK {
				t.Fatalf("sign in to the dashboard: %d", p.status)
			}
			if st, _, _ := b.api("POST", l.base+"/account/api/services/"+appA.conf.ClientID+"/revoke", nil); st != http.StatusNoContent {
				t.Fatalf("revoke: %d", st)
			}
			c = verifyLogoutToken(t, ks, l.base, appA.conf.ClientID, recvA.next(t, "revoke at A"))
			if c["sub"] != idA["sub"] || c["sid"] != nil {
				t.Fatalf("revoke token for A: %v", c)
			}

			// Account deleted: B (still consented), with the sid of the
			// live dashboard session since B requires one; not A.
			if st, body, _ := b.api("POST", l.base+"/account/api/delete", map[string]any{"password": "correct horse battery"}); st/100 != 2 {
				t.Fatalf("delete: %d %v", st, body)
			}
			c = verifyLogoutToken(t, ks, l.base, appB.conf.ClientID, recvB.next(t, "deletion at B"))
			if c["sub"] != idB["sub"] || c["sid"] == nil || c["sid"] == idB["sid"] {
				t.Fatalf("deletion token for B: %v (the signed-out session's sid was %v)", c, idB["sid"])
			}
			time.Sleep(1500 * time.Millisecond)
			recvA.none(t, "after the deletion, A (consent revoked before)")
			recvB.none(t, "after the deletion, B")

			// Disabled from the command line (another process): the
			// serving process sends what the command queued.
			l.env.must(t, "correct horse battery\n", "user", "create", "--username", "bob", "--email", "bob@example.org", "--password-stdin")
			b = newBrowser(t)
			verifier := oauth2.GenerateVerifier()
			p := b.authorize(appA.conf.AuthCodeURL(randString(16), oauth2.S256ChallengeOption(verifier)), "bob", "correct horse battery", nil)
			tok, err := appA.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			idt, err := appA.provider.Verifier(&oidc.Config{ClientID: appA.conf.ClientID}).Verify(ctx, tok.Extra("id_token").(string))
			if err != nil {
				t.Fatal(err)
			}
			l.env.must(t, "", "user", "disable", "bob")
			c = verifyLogoutToken(t, ks, l.base, appA.conf.ClientID, recvA.next(t, "bob disabled, at A"))
			if c["sub"] != idt.Subject || c["sub"] == idA["sub"] {
				t.Fatalf("disable token for A: %v (bob's sub %s)", c, idt.Subject)
			}

			for _, bad := range []string{"http://rp.example.org/bc", "https://rp.example.org/bc#frag", "ftp://rp.example.org/bc", "/bc"} {
				st, out := postJSON(t, l.base+"/register", map[string]any{"redirect_uris": []string{"https://rp.example.org/cb"}, "backchannel_logout_uri": bad})
				if st != http.StatusBadRequest || out["error"] != "invalid_client_metadata" {
					t.Fatalf("backchannel_logout_uri %q: %d %v", bad, st, out)
				}
			}
		})
	}
}

func postJSON(t *testing.T, u string, body any) (int, map[string]any) {
	t.Helper()
	j, _ := json.Marshal(body)
	resp, err := http.Post(u, "application/json", strings.NewReader(string(j)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}
