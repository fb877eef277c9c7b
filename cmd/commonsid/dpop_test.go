package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// dpopKey is a client's DPoP key (RFC 9449), made in the test.
type dpopKey struct {
	t    *testing.T
	priv *ecdsa.PrivateKey
	jkt  string
}

func newDPoPKey(t *testing.T) *dpopKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := (&jose.JSONWebKey{Key: &priv.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &dpopKey{t: t, priv: priv, jkt: base64.RawURLEncoding.EncodeToString(tp)}
}

// proof makes a DPoP proof for method and u; nonce and accessToken (for
// ath) are left out when "".
func (k *dpopKey) proof(method, u, nonce, accessToken string) string {
	k.t.Helper()
	claims := map[string]any{"jti": randString(12), "htm": method, "htu": u, "iat": time.Now().Unix()}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.priv},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		k.t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		k.t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

// dpopAnswer is an HTTP answer: status, JSON body, headers.
type dpopAnswer struct {
	status int
	body   map[string]any
	header http.Header
}

func dpopDo(t *testing.T, req *http.Request, proof string) dpopAnswer {
	t.Helper()
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(b, &out)
	return dpopAnswer{resp.StatusCode, out, resp.Header}
}

func dpopToken(t *testing.T, l *live, form url.Values, proof string) dpopAnswer {
	t.Helper()
	req, _ := http.NewRequest("POST", l.base+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return dpopDo(t, req, proof)
}

func dpopUserinfo(t *testing.T, l *live, scheme, tok, proof string) dpopAnswer {
	t.Helper()
	req, _ := http.NewRequest("GET", l.base+"/userinfo", nil)
	req.Header.Set("Authorization", scheme+" "+tok)
	return dpopDo(t, req, proof)
}

// jwtClaims decodes a JWT's payload (the server's signature is checked by
// the other relying-party tests).
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func wantError(t *testing.T, what string, a dpopAnswer, status int, code string) {
	t.Helper()
	if a.status != status || a.body["error"] != code {
		t.Fatalf("%s: %d %v, want %d %s", what, a.status, a.body, status, code)
	}
}

// wantChallenge checks a UserInfo refusal: 401 with a DPoP challenge
// naming the error (RFC 9449 §7.1).
func wantChallenge(t *testing.T, what string, a dpopAnswer, code string) {
	t.Helper()
	wantError(t, what, a, http.StatusUnauthorized, code)
	if h := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "DPoP ") || !strings.Contains(h, `error="`+code+`"`) {
		t.Fatalf("%s: WWW-Authenticate %q", what, h)
	}
}

// boundToken runs the token request of a code with a DPoP proof: the first
// attempt, without a nonce, is refused with use_dpop_nonce and the nonce
// to use; the second is answered with a DPoP-bound token.
func boundToken(t *testing.T, l *live, key *dpopKey, form url.Values) (tok map[string]any, nonce string) {
	t.Helper()
	a := dpopToken(t, l, form, key.proof("POST", l.base+"/token", "", ""))
	wantError(t, "token without nonce", a, http.StatusBadRequest, "use_dpop_nonce")
	nonce = a.header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
	}
	a = dpopToken(t, l, form, key.proof("POST", l.base+"/token", nonce, ""))
	if a.status != http.StatusOK || a.body["token_type"] != "DPoP" {
		t.Fatalf("token with nonce: %d %v", a.status, a.body)
	}
	at, _ := a.body["access_token"].(string)
	cnf, _ := jwtClaims(t, at)["cnf"].(map[string]any)
	if cnf["jkt"] != key.jkt {
		t.Fatalf("access token cnf %v, want jkt %s", cnf, key.jkt)
	}
	if n := a.header.Get("DPoP-Nonce"); n != "" {
		nonce = n
	}
	return a.body, nonce
}

// TestDPoP: a public client binds its tokens to a DPoP key (RFC 9449); a
// bound access token is refused at UserInfo without a fresh proof of that
// key, as a Bearer token, with a replayed proof or a proof for another
// request; a bound refresh token needs a proof of the same key.
func TestDPoP(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) { testDPoP(t, mk(t)) })
	}
}

func testDPoP(t *testing.T, e env) {
	l := startLive(t, e)
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--name", "Alice", "--password-stdin")
	app := newRP(t, l, "dpop", map[string]any{"token_endpoint_auth_method": "none"})
	b := newBrowser(t)
	key := newDPoPKey(t)

	_, disc := get(t, l.base+"/.well-known/openid-configuration")
	var d struct {
		Algs []string `json:"dpop_signing_alg_values_supported"`
	}
	json.Unmarshal(disc, &d)
	if !slices.Equal(d.Algs, []string{"ES256", "EdDSA", "RS256", "PS256"}) {
		t.Fatalf("dpop_signing_alg_values_supported %v", d.Algs)
	}

	v := oauth2.GenerateVerifier()
	code := codeFor(t, b, app, v)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v},
		"redirect_uri": {app.redirect}, "client_id": {app.conf.ClientID}}
	tok, nonce := boundToken(t, l, key, form)
	at := tok["access_token"].(string)
	rt, _ := tok["refresh_token"].(string)
	if rt == "" {
		t.Fatalf("no refresh token: %v", tok)
	}

	ui := l.base + "/userinfo"
	t.Run("userinfo with proof", func(t *testing.T) {
		a := dpopUserinfo(t, l, "DPoP", at, key.proof("GET", ui, nonce, at))
		if a.status != http.StatusOK || a.body["sub"] == nil {
			t.Fatalf("userinfo: %d %v", a.status, a.body)
		}
	})
	t.Run("bound token as Bearer", func(t *testing.T) {
		wantError(t, "Bearer", dpopUserinfo(t, l, "Bearer", at, ""), http.StatusUnauthorized, "invalid_token")
		wantError(t, "Bearer with proof", dpopUserinfo(t, l, "Bearer", at, key.proof("GET", ui, nonce, at)), http.StatusUnauthorized, "invalid_token")
	})
	t.Run("no proof", func(t *testing.T) {
		wantChallenge(t, "no proof", dpopUserinfo(t, l, "DPoP", at, ""), "invalid_dpop_proof")
	})
	t.Run("replayed proof", func(t *testing.T) {
		p := key.proof("GET", ui, nonce, at)
		if a := dpopUserinfo(t, l, "DPoP", at, p); a.status != http.StatusOK {
			t.Fatalf("first use: %d %v", a.status, a.body)
		}
		wantChallenge(t, "replay", dpopUserinfo(t, l, "DPoP", at, p), "invalid_dpop_proof")
	})
	t.Run("proof for another request", func(t *testing.T) {
		wantChallenge(t, "htu", dpopUserinfo(t, l, "DPoP", at, key.proof("GET", l.base+"/token", nonce, at)), "invalid_dpop_proof")
		wantChallenge(t, "htm", dpopUserinfo(t, l, "DPoP", at, key.proof("POST", ui, nonce, at)), "invalid_dpop_proof")
		wantChallenge(t, "ath", dpopUserinfo(t, l, "DPoP", at, key.proof("GET", ui, nonce, at+"x")), "invalid_dpop_proof")
	})
	t.Run("proof of another key", func(t *testing.T) {
		other := newDPoPKey(t)
		wantChallenge(t, "other key", dpopUserinfo(t, l, "DPoP", at, other.proof("GET", ui, nonce, at)), "invalid_dpop_proof")
	})
	t.Run("proof without nonce", func(t *testing.T) {
		a := dpopUserinfo(t, l, "DPoP", at, key.proof("GET", ui, "", at))
		wantChallenge(t, "no nonce", a, "use_dpop_nonce")
		if a.header.Get("DPoP-Nonce") == "" {
			t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
		}
	})

	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {app.conf.ClientID}}
	t.Run("refresh without proof", func(t *testing.T) {
		wantError(t, "refresh without proof", dpopToken(t, l, refresh, ""), http.StatusBadRequest, "invalid_dpop_proof")
	})
	t.Run("refresh with another key", func(t *testing.T) {
		other := newDPoPKey(t)
		wantError(t, "refresh with another key", dpopToken(t, l, refresh, other.proof("POST", l.base+"/token", nonce, "")), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("refresh with the key", func(t *testing.T) {
		// The refused attempts above left the refresh token usable.
		a := dpopToken(t, l, refresh, key.proof("POST", l.base+"/token", nonce, ""))
		if a.status != http.StatusOK || a.body["token_type"] != "DPoP" {
			t.Fatalf("refresh: %d %v", a.status, a.body)
		}
		at2 := a.body["access_token"].(string)
		if cnf, _ := jwtClaims(t, at2)["cnf"].(map[string]any); cnf["jkt"] != key.jkt {
			t.Fatalf("refreshed access token cnf %v", cnf)
		}
		if u := dpopUserinfo(t, l, "DPoP", at2, key.proof("GET", ui, nonce, at2)); u.status != http.StatusOK {
			t.Fatalf("userinfo with the refreshed token: %d %v", u.status, u.body)
		}
	})

	t.Run("dpop_bound_access_tokens client", func(t *testing.T) {
		bound := newRP(t, l, "dpop-bound", map[string]any{"token_endpoint_auth_method": "none", "dpop_bound_access_tokens": true})
		if bound.reg["dpop_bound_access_tokens"] != true {
			t.Fatalf("registration answer lacks dpop_bound_access_tokens: %v", bound.reg)
		}
		v := oauth2.GenerateVerifier()
		code := codeFor(t, b, bound, v)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v},
			"redirect_uri": {bound.redirect}, "client_id": {bound.conf.ClientID}}
		wantError(t, "no proof", dpopToken(t, l, form, ""), http.StatusBadRequest, "invalid_dpop_proof")
		boundToken(t, l, newDPoPKey(t), form)
	})

	t.Run("bad proofs at the token endpoint", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		code := codeFor(t, b, app, v)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v},
			"redirect_uri": {app.redirect}, "client_id": {app.conf.ClientID}}
		for name, p := range map[string]string{
			"htu":     key.proof("POST", l.base+"/userinfo", nonce, ""),
			"htm":     key.proof("GET", l.base+"/token", nonce, ""),
			"ath":     key.proof("POST", l.base+"/token", nonce, "some token"),
			"garbage": "not.a.proof",
		} {
			wantError(t, name, dpopToken(t, l, form, p), http.StatusBadRequest, "invalid_dpop_proof")
		}
		p := key.proof("POST", l.base+"/token", nonce, "")
		if a := dpopToken(t, l, form, p); a.status != http.StatusOK {
			t.Fatalf("the code after refused proofs: %d %v", a.status, a.body)
		}
	})

	t.Run("PAR", func(t *testing.T) {
		// A pushed authorization request (RFC 9126), then the code
		// exchanged with a DPoP proof, as AT Protocol OAuth clients do.
		v := oauth2.GenerateVerifier()
		sum := sha256.Sum256([]byte(v))
		push := url.Values{"client_id": {app.conf.ClientID}, "response_type": {"code"}, "redirect_uri": {app.redirect},
			"scope": {"openid profile offline_access"}, "state": {randString(12)},
			"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
		req, _ := http.NewRequest("POST", l.base+"/par", strings.NewReader(push.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		a := dpopDo(t, req, "")
		uri, _ := a.body["request_uri"].(string)
		if a.status != http.StatusCreated || uri == "" {
			t.Fatalf("par: %d %v", a.status, a.body)
		}
		p := b.authorize(l.base+"/authorize?"+url.Values{"client_id": {app.conf.ClientID}, "request_uri": {uri}}.Encode(), "alice", "correct horse battery", nil)
		code := p.url.Query().Get("code")
		if code == "" {
			t.Fatalf("no code: %d %s", p.status, p.url)
		}
		tok, nonce := boundToken(t, l, key, url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"code_verifier": {v}, "redirect_uri": {app.redirect}, "client_id": {app.conf.ClientID}})
		at := tok["access_token"].(string)
		wantError(t, "Bearer", dpopUserinfo(t, l, "Bearer", at, ""), http.StatusUnauthorized, "invalid_token")
		pr := key.proof("GET", ui, nonce, at)
		if u := dpopUserinfo(t, l, "DPoP", at, pr); u.status != http.StatusOK {
			t.Fatalf("userinfo: %d %v", u.status, u.body)
		}
		wantChallenge(t, "replay", dpopUserinfo(t, l, "DPoP", at, pr), "invalid_dpop_proof")
	})
}
