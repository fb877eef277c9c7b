package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-chi/chi/v5"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/oidfed"
	"github.com/onecommons/commonsid/store"
)

// fedEntity is an OpenID Federation entity written in the test: a trust
// anchor or a relying party serving its entity configuration on
// 127.0.0.1.
type fedEntity struct {
	id     string
	key    *ecdsa.PrivateKey // federation key
	ent    *oidfed.Entity
	subs   *memSubordinates // an anchor's members
	rpKey  *ecdsa.PrivateKey
	marks  []oidfed.TrustMarkRef
	markMu sync.Mutex
}

type memSubordinates struct {
	mu sync.Mutex
	m  map[string]*oidfed.Subordinate
}

func (s *memSubordinates) GetSubordinate(_ context.Context, id string) (*oidfed.Subordinate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub, ok := s.m[id]; ok {
		return sub, nil
	}
	return nil, store.ErrNotFound
}

func (s *memSubordinates) ListSubordinates(context.Context) ([]*oidfed.Subordinate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*oidfed.Subordinate
	for _, sub := range s.m {
		out = append(out, sub)
	}
	return out, nil
}

func (e *fedEntity) jwks() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &e.key.PublicKey, KeyID: "fed-1", Algorithm: "ES256", Use: "sig"}}}
}

func (e *fedEntity) signingKey() oidfed.SigningKey {
	return oidfed.SigningKey{KID: "fed-1", Alg: jose.ES256, Key: e.key}
}

func startFedEntity(t *testing.T, setup func(e *fedEntity)) *fedEntity {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r := chi.NewRouter()
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	e := &fedEntity{id: srv.URL, key: key}
	e.ent = &oidfed.Entity{ID: srv.URL,
		Key:  func(context.Context) (oidfed.SigningKey, error) { return e.signingKey(), nil },
		JWKS: func(context.Context) (jose.JSONWebKeySet, error) { return e.jwks(), nil },
	}
	setup(e)
	e.ent.Mount(r)
	return e
}

// startAnchor is a trust anchor whose subordinate statements live ttl.
func startAnchor(t *testing.T, ttl time.Duration) *fedEntity {
	return startFedEntity(t, func(e *fedEntity) {
		e.subs = &memSubordinates{m: map[string]*oidfed.Subordinate{}}
		e.ent.Subordinates = e.subs
		e.ent.StatementTTL = ttl
	})
}

func (a *fedEntity) addMember(rp *fedEntity) {
	a.subs.mu.Lock()
	defer a.subs.mu.Unlock()
	a.subs.m[rp.id] = &oidfed.Subordinate{EntityID: rp.id, JWKS: rp.jwks(), AddedAt: time.Now()}
}

func (a *fedEntity) removeMember(rp *fedEntity) {
	a.subs.mu.Lock()
	defer a.subs.mu.Unlock()
	delete(a.subs.m, rp.id)
}

// trustMark is a trust mark of kind issued by the anchor a for sub.
func (a *fedEntity) trustMark(t *testing.T, kind, sub string) oidfed.TrustMarkRef {
	typ := oidfed.TrustMarkType(a.id, kind)
	raw, err := oidfed.IssueTrustMark(a.signingKey(), a.id, sub, typ, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return oidfed.TrustMarkRef{Type: typ, TrustMark: raw}
}

// startRP is a relying party under anchor, with its openid_relying_party
// metadata (meta is merged over the defaults) and its signing key.
func startRP(t *testing.T, anchor *fedEntity, name string, meta map[string]any) *fedEntity {
	rpKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return startFedEntity(t, func(e *fedEntity) {
		e.rpKey = rpKey
		e.ent.AuthorityHints = func(context.Context) ([]string, error) { return []string{anchor.id}, nil }
		e.ent.TrustMarks = func(context.Context) ([]oidfed.TrustMarkRef, error) {
			e.markMu.Lock()
			defer e.markMu.Unlock()
			return e.marks, nil
		}
		e.ent.Metadata = func(context.Context) (map[string]map[string]any, error) {
			md := map[string]any{
				"client_name": name, "client_registration_types": []string{"automatic"},
				"redirect_uris": []string{"http://127.0.0.1:9/" + name + "/callback"},
				"grant_types":   []string{"authorization_code"}, "response_types": []string{"code"},
				"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256",
				"jwks": jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &rpKey.PublicKey, KeyID: "rp-1", Algorithm: "ES256", Use: "sig"}}},
			}
			for k, v := range meta {
				md[k] = v
			}
			return map[string]map[string]any{oidfed.EntityRP: md}, nil
		}
	})
}

func (e *fedEntity) redirect(name string) string { return "http://127.0.0.1:9/" + name + "/callback" }

// sign signs claims with key as the relying party's kid rp-1.
func signJWT(t *testing.T, key *ecdsa.PrivateKey, typ string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", "rp-1"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// requestObject is a request object of rp for the cloud at base.
func (e *fedEntity) requestObject(t *testing.T, base string, key *ecdsa.PrivateKey, params map[string]any) string {
	claims := map[string]any{"iss": e.id, "client_id": e.id, "aud": base, "jti": randString(12),
		"exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(), "response_type": "code", "scope": "openid profile"}
	for k, v := range params {
		claims[k] = v
	}
	return signJWT(t, key, "oauth-authz-req+jwt", claims)
}

// assertion is a private_key_jwt client assertion of rp for aud.
func (e *fedEntity) assertion(t *testing.T, aud string) url.Values {
	raw := signJWT(t, e.rpKey, "JWT", map[string]any{"iss": e.id, "sub": e.id, "aud": aud, "jti": randString(12),
		"exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix()})
	return url.Values{"client_id": {e.id}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {raw}}
}

func authorizeURL(base string, params url.Values) string {
	return base + "/authorize?" + params.Encode()
}

// TestAutomaticRegistration: relying parties that speak OpenID Federation
// sign in people without registering first (OpenID Federation 1.0 §12.1):
// a signed request object at /authorize, or a push with private_key_jwt,
// then a code flow with private_key_jwt at the token endpoint. The "commons
// service" trust mark labels the client; a forged one, a chain to an
// unknown anchor, a request object signed by another key, a replayed one
// and a redirect URI outside the metadata are refused, and nothing is
// stored for them. A relying party the anchor drops is refused once its
// registration expires.
func TestAutomaticRegistration(t *testing.T) {
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testAutomaticRegistration(t, mk)
		})
	}
}

func testAutomaticRegistration(t *testing.T, mk func(testing.TB) env) {
	ctx := context.Background()
	anchor := startAnchor(t, 6*time.Second)
	e := mk(t)
	e["COMMONSID_OIDFED_TRUST_ANCHORS"] = anchor.id
	l := startLive(t, e)
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	stored := func(id string) bool { return l.env.run(t, "", "client", "show", id).code == 0 }

	// Discovery says so.
	var disc map[string]any
	_, body := get(t, l.base+"/.well-known/openid-configuration")
	json.Unmarshal(body, &disc)
	if types, _ := disc["client_registration_types_supported"].([]any); len(types) != 1 || types[0] != "automatic" {
		t.Fatalf("client_registration_types_supported = %v", disc["client_registration_types_supported"])
	}
	if algs, _ := disc["request_object_signing_alg_values_supported"].([]any); len(algs) == 0 || disc["request_parameter_supported"] != true {
		t.Fatalf("request object support not advertised: %v %v", disc["request_object_signing_alg_values_supported"], disc["request_parameter_supported"])
	}

	notes := startRP(t, anchor, "notes", nil)
	anchor.addMember(notes)
	notes.marks = []oidfed.TrustMarkRef{anchor.trustMark(t, oidfed.KindCommonsService, notes.id)}

	b := newBrowser(t)
	state, nonce, verifier := randString(12), randString(12), oauth2.GenerateVerifier()
	ro := notes.requestObject(t, l.base, notes.rpKey, map[string]any{"redirect_uri": notes.redirect("notes"), "state": state, "nonce": nonce,
		"code_challenge": oauth2.S256ChallengeFromVerifier(verifier), "code_challenge_method": "S256"})
	first := authorizeURL(l.base, url.Values{"client_id": {notes.id}, "response_type": {"code"}, "scope": {"openid"}, "request": {ro}})
	p := b.authorize(first, "alice", "correct horse battery", nil)
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.url.String(), notes.redirect("notes")) || p.url.Query().Get("state") != state {
		t.Fatalf("expected a redirect to the relying party, got %d %s\n%s", p.status, p.url, p.body)
	}
	code := p.url.Query().Get("code")
	form := notes.assertion(t, l.base+"/token")
	form.Set("grant_type", "authorization_code")
	form.Set("code", code)
	form.Set("redirect_uri", notes.redirect("notes"))
	form.Set("code_verifier", verifier)
	st, tok := postForm(t, l.base+"/token", form, "", "")
	if st != http.StatusOK || tok["access_token"] == nil {
		t.Fatalf("token: %d %v", st, tok)
	}
	provider, err := gooidc.NewProvider(ctx, l.base)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := provider.Verifier(&gooidc.Config{ClientID: notes.id}).Verify(ctx, tok["id_token"].(string))
	if err != nil || idt.Nonce != nonce {
		t.Fatalf("ID token: %v (nonce %q)", err, idt)
	}

	// Stored as federation-registered, a commons service, with the chain's expiry.
	var shown struct {
		ClientName string `json:"client_name"`
		Auth       string `json:"token_endpoint_auth_method"`
		Federation struct {
			TrustAnchor    string `json:"trust_anchor"`
			Expires        int64  `json:"expires"`
			CommonsService bool   `json:"commons_service"`
		} `json:"federation"`
	}
	if err := json.Unmarshal([]byte(l.env.must(t, "", "client", "show", notes.id)), &shown); err != nil {
		t.Fatal(err)
	}
	if shown.ClientName != "notes" || shown.Auth != "private_key_jwt" || shown.Federation.TrustAnchor != anchor.id || !shown.Federation.CommonsService ||
		shown.Federation.Expires > time.Now().Add(10*time.Second).Unix() {
		t.Fatalf("client show = %+v", shown)
	}

	// A code for it cannot be had without proving its keys.
	p = b.get(authorizeURL(l.base, url.Values{"client_id": {notes.id}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {notes.redirect("notes")}}))
	if p.url.Query().Get("error") != "invalid_request" || p.url.Query().Get("code") != "" {
		t.Fatalf("plain request of a federation client: %d %s", p.status, p.url)
	}

	refused := func(t *testing.T, authURL, want string) {
		t.Helper()
		p := b.get(authURL)
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, want) || strings.HasPrefix(p.url.String(), "http://127.0.0.1:9/") {
			t.Fatalf("want a 400 page saying %q, got %d %s\n%s", want, p.status, p.url, p.body)
		}
	}
	t.Run("replayed request object", func(t *testing.T) {
		refused(t, first, "was used before")
	})
	t.Run("unknown anchor", func(t *testing.T) {
		other := startAnchor(t, time.Hour)
		stranger := startRP(t, other, "stranger", nil)
		other.addMember(stranger)
		ro := stranger.requestObject(t, l.base, stranger.rpKey, map[string]any{"redirect_uri": stranger.redirect("stranger")})
		refused(t, authorizeURL(l.base, url.Values{"client_id": {stranger.id}, "request": {ro}}), "does not lead to a trust anchor")
		if stored(stranger.id) {
			t.Fatal("a relying party of an unknown anchor was stored")
		}
	})
	t.Run("signed by another key", func(t *testing.T) {
		forger := startRP(t, anchor, "forger", nil)
		anchor.addMember(forger)
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ro := forger.requestObject(t, l.base, other, map[string]any{"redirect_uri": forger.redirect("forger")})
		refused(t, authorizeURL(l.base, url.Values{"client_id": {forger.id}, "request": {ro}}), "not signed by a key of the relying party")
		if stored(forger.id) {
			t.Fatal("a relying party whose request object did not verify was stored")
		}
	})
	t.Run("redirect outside the metadata", func(t *testing.T) {
		wanderer := startRP(t, anchor, "wanderer", nil)
		anchor.addMember(wanderer)
		ro := wanderer.requestObject(t, l.base, wanderer.rpKey, map[string]any{"redirect_uri": "http://127.0.0.1:9/elsewhere/callback"})
		refused(t, authorizeURL(l.base, url.Values{"client_id": {wanderer.id}, "request": {ro}}), "is not one of the redirect_uris")
		if stored(wanderer.id) {
			t.Fatal("a relying party asking for a redirect outside its metadata was stored")
		}
	})
	t.Run("bad request objects", func(t *testing.T) {
		for name, c := range map[string]struct {
			params map[string]any
			want   string
		}{
			"aud another issuer": {map[string]any{"aud": "https://op.example.org"}, "aud must be exactly"},
			"expired":            {map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}, "has expired"},
			"no jti":             {map[string]any{"jti": ""}, "needs a jti"},
			"sub given":          {map[string]any{"sub": notes.id}, "must not carry sub"},
			"other client_id":    {map[string]any{"client_id": "https://rp.example.org"}, "client_id must be"},
		} {
			t.Run(name, func(t *testing.T) {
				params := map[string]any{"redirect_uri": notes.redirect("notes")}
				for k, v := range c.params {
					params[k] = v
				}
				ro := notes.requestObject(t, l.base, notes.rpKey, params)
				refused(t, authorizeURL(l.base, url.Values{"client_id": {notes.id}, "request": {ro}}), c.want)
			})
		}
		unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+notes.id+`","client_id":"`+notes.id+`"}`)) + "."
		refused(t, authorizeURL(l.base, url.Values{"client_id": {notes.id}, "request": {unsigned}}), "is not a JWT signed with one of")
	})
	t.Run("forged trust mark of a fork", func(t *testing.T) {
		fork := startRP(t, anchor, "notes-fork", map[string]any{"forked_from": notes.id})
		anchor.addMember(fork)
		// The fork shows its parent's trust mark as its own.
		fork.marks = []oidfed.TrustMarkRef{{Type: notes.marks[0].Type, TrustMark: notes.marks[0].TrustMark}}
		ro := fork.requestObject(t, l.base, fork.rpKey, map[string]any{"redirect_uri": fork.redirect("notes-fork")})
		refused(t, authorizeURL(l.base, url.Values{"client_id": {fork.id}, "request": {ro}}), "The trust mark "+oidfed.TrustMarkType(anchor.id, oidfed.KindCommonsService)+" does not verify")
		if stored(fork.id) {
			t.Fatal("a fork with a forged trust mark was stored")
		}
	})
	t.Run("pushed with private_key_jwt", func(t *testing.T) {
		jobs := startRP(t, anchor, "jobs", nil)
		anchor.addMember(jobs)
		push := jobs.assertion(t, l.base)
		for k, v := range map[string]string{"response_type": "code", "scope": "openid", "redirect_uri": jobs.redirect("jobs"), "state": "s1"} {
			push.Set(k, v)
		}
		// Signed by another key: refused, nothing stored.
		forged := url.Values{}
		for k, v := range push {
			forged[k] = v
		}
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		forged.Set("client_assertion", signJWT(t, other, "JWT", map[string]any{"iss": jobs.id, "sub": jobs.id, "aud": l.base,
			"jti": randString(12), "exp": time.Now().Add(time.Minute).Unix()}))
		if st, out := postForm(t, l.base+"/par", forged, "", ""); st != http.StatusUnauthorized || out["error"] != "invalid_client" || stored(jobs.id) {
			t.Fatalf("push with a forged assertion: %d %v (stored %v)", st, out, stored(jobs.id))
		}
		st, out := postForm(t, l.base+"/par", push, "", "")
		uri, _ := out["request_uri"].(string)
		if st != http.StatusCreated || uri == "" {
			t.Fatalf("push: %d %v", st, out)
		}
		p := b.get(authorizeURL(l.base, url.Values{"client_id": {jobs.id}, "request_uri": {uri}}))
		p = b.answerConsent(p, nil)
		if !strings.HasPrefix(p.url.String(), jobs.redirect("jobs")) || p.url.Query().Get("code") == "" {
			t.Fatalf("pushed sign-in: %d %s\n%s", p.status, p.url, p.body)
		}
		form := jobs.assertion(t, l.base+"/token")
		form.Set("grant_type", "authorization_code")
		form.Set("code", p.url.Query().Get("code"))
		form.Set("redirect_uri", jobs.redirect("jobs"))
		if st, tok := postForm(t, l.base+"/token", form, "", ""); st != http.StatusOK || tok["id_token"] == nil {
			t.Fatalf("token: %d %v", st, tok)
		}
		// The same assertion again is a replay.
		if st, out := postForm(t, l.base+"/par", push, "", ""); st != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Fatalf("replayed push: %d %v", st, out)
		}
	})
	t.Run("dropped by the anchor", func(t *testing.T) {
		// While the registration lasts, or after it with the chain renewed,
		// the client authenticates (the made-up code is what fails).
		tryToken := func() (int, map[string]any) {
			form := notes.assertion(t, l.base+"/token")
			form.Set("grant_type", "authorization_code")
			form.Set("code", "made-up")
			form.Set("redirect_uri", notes.redirect("notes"))
			return postForm(t, l.base+"/token", form, "", "")
		}
		if st, out := tryToken(); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("token before removal: %d %v", st, out)
		}
		// The registration as it is now (renewed if it had expired).
		if err := json.Unmarshal([]byte(l.env.must(t, "", "client", "show", notes.id)), &shown); err != nil {
			t.Fatal(err)
		}
		anchor.removeMember(notes)
		time.Sleep(time.Until(time.Unix(shown.Federation.Expires, 0).Add(1100 * time.Millisecond)))
		if st, out := tryToken(); st != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Fatalf("token after the anchor dropped the relying party: %d %v", st, out)
		}
	})
}
