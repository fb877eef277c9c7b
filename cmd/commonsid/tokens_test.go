package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"
)

// TestTokensRefreshNotBearer: a refresh token (or an authorization code) is
// not a bearer token: UserInfo refuses it with 401 invalid_token, while the
// access token of the same grant works.
func TestTokensRefreshNotBearer(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	app := newRP(t, l, "bearer", nil)
	b := newBrowser(t)
	tok := personToken(t, b, app)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	if a := call(t, l.base+"/userinfo", nil, "", "", tok.AccessToken); a.status != 200 || a.body["sub"] == nil {
		t.Fatalf("userinfo with the access token: %d %v", a.status, a.body)
	}
	if a := call(t, l.base+"/userinfo", nil, "", "", tok.RefreshToken); a.status != 401 || a.body["error"] != "invalid_token" {
		t.Fatalf("userinfo with a refresh token: %d %v, want 401 invalid_token", a.status, a.body)
	}
	code := codeFor(t, b, app, "an-unused-verifier-of-enough-length-0123456789")
	if a := call(t, l.base+"/userinfo", nil, "", "", code); a.status != 401 || a.body["error"] != "invalid_token" {
		t.Fatalf("userinfo with a code: %d %v, want 401 invalid_token", a.status, a.body)
	}
}

// TestTokensConcurrentRefreshReuse: two simultaneous uses of one refresh
// token, 15 rounds: at most one is answered 200, the other invalid_grant,
// and afterwards the winner's new refresh token and access token are both
// dead, because the loser is a reuse and revokes the chain.
func TestTokensConcurrentRefreshReuse(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			l := startLive(t, mk(t))
			l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
			app := newRP(t, l, "reuse", nil)
			b := newBrowser(t)
			id, secret := app.conf.ClientID, app.conf.ClientSecret
			wins := 0
			defer func() {
				t.Logf("%d of 15 rounds: one refresh answered 200, its new tokens then revoked by the other", wins)
			}()
			for round := range 15 {
				tok := personToken(t, b, app)
				var (
					wg  sync.WaitGroup
					got [2]answer
				)
				start := make(chan struct{})
				for i := range 2 {
					wg.Go(func() {
						<-start
						got[i] = call(t, l.base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, id, secret, "")
					})
				}
				close(start)
				wg.Wait()
				var winner *answer
				for i := range got {
					switch a := &got[i]; {
					case a.status == 200 && winner == nil:
						winner = a
					case a.status == 400 && a.body["error"] == "invalid_grant":
					default:
						t.Fatalf("round %d: the two refreshes got %d %v and %d %v, want at most one 200 and invalid_grant", round, got[0].status, got[0].body, got[1].status, got[1].body)
					}
				}
				if winner == nil {
					continue
				}
				wins++
				refresh, _ := winner.body["refresh_token"].(string)
				access, _ := winner.body["access_token"].(string)
				if a := call(t, l.base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, id, secret, ""); a.status != 400 || a.body["error"] != "invalid_grant" {
					t.Fatalf("round %d: the winner's new refresh token after the reuse: %d %v", round, a.status, a.body)
				}
				if a := call(t, l.base+"/introspect", url.Values{"token": {access}}, id, secret, ""); a.status != 200 || a.body["active"] != false {
					t.Fatalf("round %d: the winner's new access token after the reuse: %d %v", round, a.status, a.body)
				}
			}
		})
	}
}

// TestTokensIntrospectionAudience: a token is described to the client it
// was issued to and to a client the operators granted the introspect scope;
// to any other client it is {"active": false}, a person's access and
// refresh tokens and a client's own token alike. Dynamic registration
// cannot grant itself the introspect scope.
func TestTokensIntrospectionAudience(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	app := newRP(t, l, "owner", nil)
	other := newRP(t, l, "other", nil)
	tok := personToken(t, newBrowser(t), app)
	rsID, rsSecret := cliClient(t, l, "--name", "resource-server", "--grant", "client_credentials", "--scope", "introspect")
	wID, wSecret := cliClient(t, l, "--name", "worker", "--grant", "client_credentials")
	a := call(t, l.base+"/token", url.Values{"grant_type": {"client_credentials"}}, wID, wSecret, "")
	workerTok, _ := a.body["access_token"].(string)
	if workerTok == "" {
		t.Fatalf("client_credentials: %d %v", a.status, a.body)
	}

	for _, c := range []struct {
		name, token, id, secret string
		active                  bool
	}{
		{"access token, its client", tok.AccessToken, app.conf.ClientID, app.conf.ClientSecret, true},
		{"refresh token, its client", tok.RefreshToken, app.conf.ClientID, app.conf.ClientSecret, true},
		{"access token, another client", tok.AccessToken, other.conf.ClientID, other.conf.ClientSecret, false},
		{"refresh token, another client", tok.RefreshToken, other.conf.ClientID, other.conf.ClientSecret, false},
		{"access token, a client_credentials client", tok.AccessToken, wID, wSecret, false},
		{"access token, introspect scope", tok.AccessToken, rsID, rsSecret, true},
		{"refresh token, introspect scope", tok.RefreshToken, rsID, rsSecret, true},
		{"client token, its client", workerTok, wID, wSecret, true},
		{"client token, another client", workerTok, app.conf.ClientID, app.conf.ClientSecret, false},
		{"client token, introspect scope", workerTok, rsID, rsSecret, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := call(t, l.base+"/introspect", url.Values{"token": {c.token}}, c.id, c.secret, "")
			if a.status != 200 || a.body["active"] != c.active {
				t.Fatalf("%d %v, want active %v", a.status, a.body, c.active)
			}
			if !c.active && len(a.body) != 1 {
				t.Fatalf("an inactive answer tells more: %v", a.body)
			}
		})
	}
	t.Run("registration cannot grant introspect", func(t *testing.T) {
		a := callJSON(t, l.base+"/register", map[string]any{"client_name": "snoop", "grant_types": []string{"client_credentials"}, "scope": "introspect"})
		if a.status != 400 || a.body["error"] != "invalid_client_metadata" {
			t.Fatalf("%d %v", a.status, a.body)
		}
	})
}

// callJSON POSTs a JSON document to u.
func callJSON(t *testing.T, u string, doc any) answer {
	t.Helper()
	b, _ := json.Marshal(doc)
	resp, err := http.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return answer{resp.StatusCode, resp.Header, out}
}
