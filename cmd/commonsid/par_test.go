package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// pushParams are the parameters of an authorization request as x/oauth2
// would put them in the URL.
func pushParams(t *testing.T, app *rp, state string, opts ...oauth2.AuthCodeOption) url.Values {
	t.Helper()
	u, err := url.Parse(app.conf.AuthCodeURL(state, opts...))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if state == "" {
		q.Del("state")
	}
	return q
}

// TestPushedAuthorization: RFC 9126 pushed authorization requests. A
// client pushes with its credentials and gets a request_uri; /authorize
// with only client_id and request_uri completes the flow, once; a push
// without credentials is refused; a client registered with
// require_pushed_authorization_requests is refused at /authorize without
// one, and served with one.
func TestPushedAuthorization(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin")
	app := newRP(t, l, "pushed", nil)
	b := newBrowser(t)

	resp, body := get(t, l.base+"/.well-known/openid-configuration")
	var disc map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(body, &disc) != nil {
		t.Fatalf("discovery: %d", resp.StatusCode)
	}
	if disc["pushed_authorization_request_endpoint"] != l.base+"/par" || disc["require_pushed_authorization_requests"] != false {
		t.Fatalf("discovery: pushed_authorization_request_endpoint %v, require_pushed_authorization_requests %v",
			disc["pushed_authorization_request_endpoint"], disc["require_pushed_authorization_requests"])
	}

	push := func(form url.Values, user, pass string) (int, map[string]any) {
		t.Helper()
		return postForm(t, l.base+"/par", form, user, pass)
	}
	authorizeURL := func(app *rp, requestURI string) string {
		return l.base + "/authorize?" + url.Values{"client_id": {app.conf.ClientID}, "request_uri": {requestURI}}.Encode()
	}

	t.Run("push, then use once", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		st, out := push(pushParams(t, app, "par-state", oauth2.S256ChallengeOption(v)), app.conf.ClientID, app.conf.ClientSecret)
		uri, _ := out["request_uri"].(string)
		if st != http.StatusCreated || !strings.HasPrefix(uri, "urn:ietf:params:oauth:request_uri:") || out["expires_in"] != float64(60) {
			t.Fatalf("push: %d %v", st, out)
		}
		p := b.authorize(authorizeURL(app, uri), "alice", "correct horse battery", nil)
		q := p.url.Query()
		if !strings.HasPrefix(p.url.String(), app.redirect) || q.Get("code") == "" || q.Get("state") != "par-state" || q.Get("iss") != l.base {
			t.Fatalf("authorize with request_uri: %d %s\n%s", p.status, p.url, p.body)
		}
		if _, err := app.conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(v)); err != nil {
			t.Fatalf("exchange: %v", err)
		}
		// The request_uri is used up.
		p = b.get(authorizeURL(app, uri))
		if p.status != http.StatusBadRequest || p.url.Port() == "9" {
			t.Fatalf("second use of a request_uri: %d %s", p.status, p.url)
		}
	})

	t.Run("no state", func(t *testing.T) {
		st, out := push(pushParams(t, app, "", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), app.conf.ClientID, app.conf.ClientSecret)
		if st != http.StatusCreated {
			t.Fatalf("push without state: %d %v", st, out)
		}
		p := b.get(authorizeURL(app, out["request_uri"].(string)))
		if q := p.url.Query(); q.Get("code") == "" || q.Has("state") {
			t.Fatalf("authorize: %d %s", p.status, p.url)
		}
	})

	t.Run("refused pushes", func(t *testing.T) {
		params := pushParams(t, app, "s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		if st, out := push(params, "", ""); st != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Errorf("push without client authentication: %d %v, want 401 invalid_client", st, out)
		}
		if st, out := push(params, app.conf.ClientID, "wrong-secret"); st != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Errorf("push with a wrong secret: %d %v, want 401 invalid_client", st, out)
		}
		bad := url.Values{}
		for k, v := range params {
			bad[k] = v
		}
		bad.Set("redirect_uri", "http://127.0.0.1:9/elsewhere")
		if st, out := push(bad, app.conf.ClientID, app.conf.ClientSecret); st != http.StatusBadRequest || out["error"] != "invalid_request" {
			t.Errorf("push with an unregistered redirect_uri: %d %v", st, out)
		}
		bad = url.Values{}
		for k, v := range params {
			bad[k] = v
		}
		bad.Set("request", "eyJhbGciOiJub25lIn0.e30.")
		if st, out := push(bad, app.conf.ClientID, app.conf.ClientSecret); st != http.StatusBadRequest || out["error"] != "request_not_supported" {
			t.Errorf("push with a request object: %d %v", st, out)
		}
		bad.Del("request")
		bad.Set("resource", "https://api.elsewhere.example/")
		if st, out := push(bad, app.conf.ClientID, app.conf.ClientSecret); st != http.StatusBadRequest || out["error"] != "invalid_target" {
			t.Errorf("push naming a resource not registered for the client: %d %v", st, out)
		}
		bad.Del("resource")
		bad.Add("scope", "openid")
		if st, out := push(bad, app.conf.ClientID, app.conf.ClientSecret); st != http.StatusBadRequest || out["error"] != "invalid_request" {
			t.Errorf("push with a parameter given twice: %d %v", st, out)
		}
		// An unknown request_uri of ours is invalid_request_uri, shown as a
		// page: the redirect URI is not known.
		p := b.get(authorizeURL(app, "urn:ietf:params:oauth:request_uri:not-pushed"))
		if p.status != http.StatusBadRequest || p.url.Port() == "9" {
			t.Errorf("unknown request_uri: %d %s", p.status, p.url)
		}
	})

	t.Run("another client's request_uri", func(t *testing.T) {
		other := newRP(t, l, "other", nil)
		_, out := push(pushParams(t, app, "s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), app.conf.ClientID, app.conf.ClientSecret)
		p := b.get(authorizeURL(other, out["request_uri"].(string)))
		if p.status != http.StatusBadRequest || p.url.Port() == "9" {
			t.Fatalf("request_uri used by another client: %d %s", p.status, p.url)
		}
	})

	t.Run("per-client limit", func(t *testing.T) {
		// A cloud with the limits scaled down to a tenth: 12 pushes a
		// minute per client.
		e := sqliteEnv(t)
		e["COMMONSID_RATE_LIMIT"] = "0.1"
		ll := startLive(t, e)
		limited, other := newRP(t, ll, "limited", nil), newRP(t, ll, "unlimited", nil)
		params := pushParams(t, limited, "s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		pushes, st := 0, 0
		var out map[string]any
		for ; pushes < 40; pushes++ {
			if st, out = postForm(t, ll.base+"/par", params, limited.conf.ClientID, limited.conf.ClientSecret); st != http.StatusCreated {
				break
			}
		}
		if st != http.StatusTooManyRequests || out["error"] != "slow_down" || pushes != 12 {
			t.Fatalf("after %d pushes: %d %v, want 429 slow_down after 12", pushes, st, out)
		}
		// Another client is not affected.
		if st, out := postForm(t, ll.base+"/par", pushParams(t, other, "s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())),
			other.conf.ClientID, other.conf.ClientSecret); st != http.StatusCreated {
			t.Fatalf("another client's push: %d %v", st, out)
		}
	})

	t.Run("client that requires PAR", func(t *testing.T) {
		strict := newRP(t, l, "strict", map[string]any{"require_pushed_authorization_requests": true})
		if strict.reg["require_pushed_authorization_requests"] != true {
			t.Fatalf("registration response lacks require_pushed_authorization_requests: %v", strict.reg)
		}
		p := b.get(strict.conf.AuthCodeURL("strict-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if q := p.url.Query(); !strings.HasPrefix(p.url.String(), strict.redirect) || q.Get("error") != "invalid_request" || q.Get("code") != "" {
			t.Fatalf("authorize without PAR: %d %s", p.status, p.url)
		}
		v := oauth2.GenerateVerifier()
		st, out := push(pushParams(t, strict, "strict-state", oauth2.S256ChallengeOption(v)), strict.conf.ClientID, strict.conf.ClientSecret)
		if st != http.StatusCreated {
			t.Fatalf("push: %d %v", st, out)
		}
		p = b.authorize(authorizeURL(strict, out["request_uri"].(string)), "alice", "correct horse battery", nil)
		if q := p.url.Query(); q.Get("code") == "" || q.Get("state") != "strict-state" {
			t.Fatalf("authorize with PAR: %d %s\n%s", p.status, p.url, p.body)
		}
	})
}
