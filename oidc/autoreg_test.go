package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestIsEntityID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"https://rp.example.org":              true,
		"https://rp.example.org/path":         true,
		"http://127.0.0.1:8080":               true,
		"http://rp.example.org":               false,
		"https://rp.example.org?x=1":          false,
		"https://rp.example.org#f":            false,
		"https://user@rp.example.org":         false,
		"rp.example.org":                      false,
		"Xy7-random-client-id":                false,
		"https://" + strings.Repeat("a", 600): false,
	} {
		if got := IsEntityID(id); got != want {
			t.Errorf("IsEntityID(%q) = %v, want %v", id, got, want)
		}
	}
}

// requestObjectClient is a client holding one ES256 key, and its signer.
func requestObjectClient(t testing.TB) (*Client, jose.Signer, *ecdsa.PrivateKey) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := &Client{Metadata: Metadata{ClientID: "https://rp.example.org",
		JWKS: &josev3.JSONWebKeySet{Keys: []josev3.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}}}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("oauth-authz-req+jwt").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	return c, s, key
}

// TestRequestObjectSignature: only a JWT signed by the client's key, with
// an accepted typ and no crit header, yields claims; the claims become
// authorization parameters.
func TestRequestObjectSignature(t *testing.T) {
	t.Parallel()
	c, s, key := requestObjectClient(t)
	_, other, _ := requestObjectClient(t)
	p := &Provider{}
	ctx := context.Background()
	claims := map[string]any{"iss": c.ClientID, "client_id": c.ClientID, "scope": "openid", "max_age": 60,
		"claims": map[string]any{"id_token": map[string]any{"name": nil}}, "resource": []string{"https://a", "https://b"}, "exp": time.Now().Add(time.Minute).Unix()}
	good, _ := jwt.Signed(s).Claims(claims).Serialize()
	got, err := p.verifyJWT(ctx, c, good, "request object", "", "oauth-authz-req+jwt", "JWT")
	if err != nil {
		t.Fatalf("a good request object: %v", err)
	}
	form, err := requestObjectForm(got)
	if err != nil || form.Get("scope") != "openid" || form.Get("max_age") != "60" || len(form["resource"]) != 2 ||
		form.Get("claims") != `{"id_token":{"name":null}}` || form.Has("exp") || form.Has("iss") {
		t.Fatalf("parameters %v, %v", form, err)
	}
	forged, _ := jwt.Signed(other).Claims(claims).Serialize()
	if _, err := p.verifyJWT(ctx, c, forged, "request object", "", "oauth-authz-req+jwt"); err == nil || !strings.Contains(err.Error(), "invalid_request_object") {
		t.Fatalf("a request object signed by another key: %v", err)
	}
	parts := strings.Split(good, ".")
	if _, err := p.verifyJWT(ctx, c, parts[0]+"."+parts[1]+".", "request object", "", "JWT"); err == nil {
		t.Fatal("a request object without signature was accepted")
	}
	stmt, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("entity-statement+jwt").WithHeader("kid", "k1"))
	raw, _ := jwt.Signed(stmt).Claims(claims).Serialize()
	if _, err := p.verifyJWT(ctx, c, raw, "request object", "", "oauth-authz-req+jwt", "JWT"); err == nil {
		t.Fatal("a JWT of another type was taken for a request object")
	}
	if _, err := requestObjectForm(map[string]any{"request_uri": "https://x"}); err == nil {
		t.Fatal("a request object naming request_uri was accepted")
	}
}

// FuzzRequestObject: whatever arrives as a request object, checking it
// and reading its parameters neither panics nor accepts what the client
// did not sign.
func FuzzRequestObject(f *testing.F) {
	c, s, _ := requestObjectClient(f)
	good, _ := jwt.Signed(s).Claims(map[string]any{"iss": c.ClientID, "scope": "openid", "n": 1.5, "a": []any{1, "x"}}).Serialize()
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("a.b.c.d.e")
	p := &Provider{}
	f.Fuzz(func(t *testing.T, raw string) {
		claims, err := p.verifyJWT(context.Background(), c, raw, "request object", "", "oauth-authz-req+jwt", "JWT")
		if err != nil {
			return
		}
		if claims["iss"] != c.ClientID || claims["scope"] != "openid" {
			t.Fatalf("accepted claims the client did not sign: %v", claims)
		}
		requestObjectForm(claims)
	})
}
