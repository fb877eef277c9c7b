package oidc

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

var dpopNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// signProof signs claims as a DPoP proof with key (embedded as jwk).
func signProof(t testing.TB, alg jose.SignatureAlgorithm, key any, typ string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType(jose.ContentType(typ)))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawProof builds a compact JWS from a header and claims with a fake
// signature: for headers no honest signer makes.
func rawProof(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "." + enc([]byte("signature"))
}

func proofClaims() map[string]any {
	return map[string]any{"jti": "j1", "htm": "POST", "htu": "https://id.example/token", "iat": dpopNow.Unix()}
}

func TestParseDPoPProof(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	rs1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	pub, _ := json.Marshal(jose.JSONWebKey{Key: &ec.PublicKey})
	priv, _ := json.Marshal(jose.JSONWebKey{Key: ec})
	var pubJWK, privJWK map[string]any
	json.Unmarshal(pub, &pubJWK)
	json.Unmarshal(priv, &privJWK)
	with := func(k string, v any) map[string]any {
		c := proofClaims()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	good := signProof(t, jose.ES256, ec, "dpop+jwt", proofClaims())
	parts := strings.Split(good, ".")
	for _, tc := range []struct {
		name  string
		proof string
		ok    bool
	}{
		{"ES256", good, true},
		{"EdDSA", signProof(t, jose.EdDSA, ed, "dpop+jwt", proofClaims()), true},
		{"RS256", signProof(t, jose.RS256, rs, "dpop+jwt", proofClaims()), true},
		{"PS256", signProof(t, jose.PS256, rs, "dpop+jwt", proofClaims()), true},
		{"typ upper case", signProof(t, jose.ES256, ec, "DPoP+JWT", proofClaims()), true},
		{"fractional iat", signProof(t, jose.ES256, ec, "dpop+jwt", with("iat", float64(dpopNow.Unix())+0.5)), true},
		{"typ JWT", signProof(t, jose.ES256, ec, "JWT", proofClaims()), false},
		{"ES384", signProof(t, jose.ES384, ec384, "dpop+jwt", proofClaims()), false},
		{"RSA 1024", signProof(t, jose.RS256, rs1024, "dpop+jwt", proofClaims()), false},
		{"HS256", rawProof(map[string]any{"alg": "HS256", "typ": "dpop+jwt", "jwk": pubJWK}, proofClaims()), false},
		{"none", strings.TrimSuffix(rawProof(map[string]any{"alg": "none", "typ": "dpop+jwt", "jwk": pubJWK}, proofClaims()), "c2lnbmF0dXJl"), false},
		{"private jwk", rawProof(map[string]any{"alg": "ES256", "typ": "dpop+jwt", "jwk": privJWK}, proofClaims()), false},
		{"no jwk", rawProof(map[string]any{"alg": "ES256", "typ": "dpop+jwt"}, proofClaims()), false},
		{"bad signature", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64)), false},
		{"claims swapped", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"jti":"x","htm":"GET","htu":"https://id.example/token","iat":1}`)) + "." + parts[2], false},
		{"no jti", signProof(t, jose.ES256, ec, "dpop+jwt", with("jti", nil)), false},
		{"no htm", signProof(t, jose.ES256, ec, "dpop+jwt", with("htm", nil)), false},
		{"no htu", signProof(t, jose.ES256, ec, "dpop+jwt", with("htu", nil)), false},
		{"no iat", signProof(t, jose.ES256, ec, "dpop+jwt", with("iat", nil)), false},
		{"iat string", signProof(t, jose.ES256, ec, "dpop+jwt", with("iat", "1700000000")), false},
		{"jti twice in case", signProof(t, jose.ES256, ec, "dpop+jwt", with("JTI", "other")), false},
		{"empty", "", false},
		{"huge", strings.Repeat("a", dpopMaxProof+1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, derr := parseDPoPProof(tc.proof)
			if tc.ok != (derr == nil) {
				t.Fatalf("accepted %v, want %v (%v)", derr == nil, tc.ok, derr)
			}
			if derr != nil && derr.code != errInvalidDPoPProof {
				t.Fatalf("code %s", derr.code)
			}
			if tc.ok && (pr.JKT == "" || pr.JTI != "j1" || pr.HTM != "POST") {
				t.Fatalf("parsed %+v", pr)
			}
		})
	}
}

func TestCheckDPoPProof(t *testing.T) {
	p := &Provider{Config: Config{GlobalSecret: []byte(strings.Repeat("k", 32))}}
	nonce := p.dpopNonce(dpopNow)
	at := "access-token"
	sum := sha256.Sum256([]byte(at))
	ath := base64.RawURLEncoding.EncodeToString(sum[:])
	base := func() *dpopProof {
		return &dpopProof{JKT: "k", JTI: "j", HTM: "GET", HTU: "https://id.example/userinfo", IAT: dpopNow, ATH: ath, Nonce: nonce}
	}
	other := &Provider{Config: Config{GlobalSecret: []byte(strings.Repeat("o", 32))}}
	for _, tc := range []struct {
		name   string
		edit   func(*dpopProof)
		at     string
		now    time.Time
		want   string
		method string
	}{
		{name: "good", want: ""},
		{name: "htu normalised", edit: func(pr *dpopProof) { pr.HTU = "HTTPS://ID.example:443/userinfo?x=1#f" }},
		{name: "htu other path", edit: func(pr *dpopProof) { pr.HTU = "https://id.example/token" }, want: errInvalidDPoPProof},
		{name: "htu other host", edit: func(pr *dpopProof) { pr.HTU = "https://evil.example/userinfo" }, want: errInvalidDPoPProof},
		{name: "htu other port", edit: func(pr *dpopProof) { pr.HTU = "https://id.example:8443/userinfo" }, want: errInvalidDPoPProof},
		{name: "htu http", edit: func(pr *dpopProof) { pr.HTU = "http://id.example/userinfo" }, want: errInvalidDPoPProof},
		{name: "htm", method: "POST", want: errInvalidDPoPProof},
		{name: "htm lower case", edit: func(pr *dpopProof) { pr.HTM = "get" }, want: errInvalidDPoPProof},
		{name: "iat old", now: dpopNow.Add(dpopProofWindow + time.Second), want: errInvalidDPoPProof},
		{name: "iat future", now: dpopNow.Add(-dpopProofWindow - time.Second), want: errInvalidDPoPProof},
		{name: "ath other token", at: "another", want: errInvalidDPoPProof},
		{name: "ath missing", edit: func(pr *dpopProof) { pr.ATH = "" }, want: errInvalidDPoPProof},
		{name: "ath without token", at: "-", want: errInvalidDPoPProof},
		{name: "no nonce", edit: func(pr *dpopProof) { pr.Nonce = "" }, want: errUseDPoPNonce},
		{name: "forged nonce", edit: func(pr *dpopProof) { pr.Nonce = other.dpopNonce(dpopNow) }, want: errUseDPoPNonce},
		{name: "expired nonce", edit: func(pr *dpopProof) {
			pr.Nonce = p.dpopNonce(dpopNow.Add(-dpopNonceLifetime - time.Second))
		}, want: errUseDPoPNonce},
		{name: "nonce from the future", edit: func(pr *dpopProof) { pr.Nonce = p.dpopNonce(dpopNow.Add(time.Minute)) }, want: errUseDPoPNonce},
		{name: "nonce of 4 minutes", edit: func(pr *dpopProof) { pr.Nonce = p.dpopNonce(dpopNow.Add(-4 * time.Minute)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := base()
			if tc.edit != nil {
				tc.edit(pr)
			}
			tok, now, method := at, dpopNow, "GET"
			switch tc.at {
			case "":
			case "-":
				tok = ""
			default:
				tok = tc.at
			}
			if !tc.now.IsZero() {
				now = tc.now
			}
			if tc.method != "" {
				method = tc.method
			}
			derr := p.checkDPoPProof(pr, method, "https://id.example/userinfo", tok, now)
			got := ""
			if derr != nil {
				got = derr.code
			}
			if got != tc.want {
				t.Fatalf("got %q (%v), want %q", got, derr, tc.want)
			}
		})
	}
}

func TestBindDPoP(t *testing.T) {
	s := newSession()
	s.AccessExtra = map[string]any{"x": 1}
	shared := s.AccessExtra
	bindDPoP(s, "jkt1")
	if boundJKT(s) != "jkt1" || shared["cnf"] != nil {
		t.Fatalf("bind: %v, shared map changed: %v", s.AccessExtra, shared)
	}
	if c := s.GetJWTClaims().ToMapClaims(); c["cnf"].(map[string]any)["jkt"] != "jkt1" {
		t.Fatalf("access-token claims %v", c)
	}
	// Stored and read back, the binding stays.
	b, _ := json.Marshal(s)
	r := newSession()
	if err := json.Unmarshal(b, r); err != nil || boundJKT(r) != "jkt1" {
		t.Fatalf("round trip: %v %v", err, r.AccessExtra)
	}
	bindDPoP(r, "")
	if boundJKT(r) != "" || r.AccessExtra["x"] == nil {
		t.Fatalf("unbind: %v", r.AccessExtra)
	}
}
