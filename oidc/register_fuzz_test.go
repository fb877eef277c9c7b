package oidc

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzRegistrationMetadata feeds arbitrary bodies to the parsing and the
// offline validation of RFC 7591 registration requests. Every refusal is an
// invalid_client_metadata or invalid_redirect_uri error; every accepted
// request means what a case-sensitive reader of the JSON sees, and its
// redirect URIs match themselves and carry no white space, control
// characters, "*", fragment or user info.
func FuzzRegistrationMetadata(f *testing.F) {
	for _, seed := range []string{
		`{"redirect_uris":["https://app.example/cb"]}`,
		`{"redirect_uris":["http://127.0.0.1:8000/cb"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`,
		`{"redirect_uris":["https://a.example/cb"],"Redirect_URIs":["https://evil.example/cb"]}`,
		`{"redirect_uris":["https://a.example/cb"],"redirect_uris":["https://evil.example/cb"]}`,
		`{"redirect_uris":["https://*.example/cb"]}`,
		`{"redirect_uris":["https://a.example/c b"]}`,
		`{"grant_types":["client_credentials"],"jwks":{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]},"token_endpoint_auth_method":"private_key_jwt"}`,
		`{"redirect_uris":["https://a.example/cb"],"x_unknown":{"nested":[1,2,{"a":null}]}}`,
		`[]`, `{`, `{"redirect_uris":"https://a.example/cb"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseRegistration(body)
		if err == nil {
			md := req.Metadata
			err = checkMetadata(&md)
			if err == nil {
				checkAccepted(t, body, &md)
			}
		}
		if err != nil {
			var me *MetadataError
			if !errors.As(err, &me) || (me.Code != "invalid_client_metadata" && me.Code != "invalid_redirect_uri") {
				t.Fatalf("refusal %v is not an RFC 7591 error", err)
			}
		}
	})
}

func checkAccepted(t *testing.T, body []byte, md *Metadata) {
	// What a reader who matches keys exactly sees is what was parsed.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("accepted a body that is not an object: %v", err)
	}
	var seen []string
	if r, ok := raw["redirect_uris"]; ok {
		if err := json.Unmarshal(r, &seen); err != nil && string(r) != "null" {
			t.Fatalf("redirect_uris %s: %v", r, err)
		}
	}
	if len(seen) > 0 && !slices.Equal(seen, md.RedirectURIs) {
		t.Fatalf("parsed redirect_uris %q, the body says %q", md.RedirectURIs, seen)
	}
	for _, u := range md.RedirectURIs {
		if p, err := url.Parse(u); err != nil || p.User != nil || !p.IsAbs() || strings.ContainsAny(u, " \t\r\n\x00*#\\") {
			t.Fatalf("accepted redirect URI %q", u)
		}
		if !redirectMatches(md.RedirectURIs, u) {
			t.Fatalf("redirect URI %q does not match itself", u)
		}
	}
	if _, err := encodeMetadata(md); err != nil {
		t.Fatalf("accepted metadata does not encode: %v", err)
	}
}
