package privacy

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
)

// ScopeClaims maps each scope to the claims it stands for (OIDC Core 5.4,
// plus "did" for the account DID).
var ScopeClaims = map[string][]string{
	"profile": {"name", "family_name", "given_name", "middle_name", "nickname", "preferred_username",
		"profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"},
	"email":   {"email", "email_verified"},
	"address": {"address"},
	"phone":   {"phone_number", "phone_number_verified"},
	"did":     {"did"},
	// commons: the person's contribution level (package access).
	"commons": {"commons_access"},
}

// ReleasableClaims is every claim a person can release, sorted.
func ReleasableClaims() []string {
	var out []string
	for _, cs := range ScopeClaims {
		out = append(out, cs...)
	}
	sort.Strings(out)
	return out
}

// ClaimsRequest is the OIDC Core 5.5 "claims" request parameter: the names
// of the claims asked for individually, for UserInfo and for the ID token.
type ClaimsRequest struct {
	UserInfo map[string]json.RawMessage `json:"userinfo,omitempty"`
	IDToken  map[string]json.RawMessage `json:"id_token,omitempty"`
}

// ParseClaimsRequest parses the claims parameter; empty is no request.
func ParseClaimsRequest(s string) (*ClaimsRequest, error) {
	if s == "" {
		return &ClaimsRequest{}, nil
	}
	var cr ClaimsRequest
	if err := json.Unmarshal([]byte(s), &cr); err != nil {
		return nil, fmt.Errorf("claims parameter is not a JSON object of userinfo and id_token members: %w", err)
	}
	return &cr, nil
}

// Names returns every claim the request names, for either target.
func (c *ClaimsRequest) Names() []string {
	var out []string
	for n := range c.UserInfo {
		out = append(out, n)
	}
	for n := range c.IDToken {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Targets of a release.
const (
	TargetUserInfo = "userinfo"
	TargetIDToken  = "id_token"
)

// ReleaseInput is everything the release decision depends on.
type ReleaseInput struct {
	GrantedScopes []string       // scopes granted to this grant
	Consent       *Consent       // the person's consent to the service
	Settings      *Settings      // the person's privacy settings
	Claims        *ClaimsRequest // the claims request parameter, may be nil
	Target        string         // TargetUserInfo or TargetIDToken
}

// Release is the one place that decides which claims leave the provider, for
// ID tokens, UserInfo, access tokens and introspection alike. A claim is
// released when all of these hold:
//
//   - it is asked for: through a granted scope (OIDC Core 5.4) or by name in
//     the claims parameter for this target (5.5). Scope claims go to UserInfo
//     and, since many relying parties read only the ID token, to the ID
//     token as well: both reach the same service the person consented to;
//   - the person allows it: ticked in the consent, or policy "allow" with
//     its scope granted;
//   - the person's policy for it is not "never", whatever was consented
//     before.
//
// "sub" is not a releasable claim: it is always present.
func Release(in ReleaseInput) []string {
	if in.Consent == nil {
		return nil
	}
	scopeOf := map[string]string{}
	for s, cs := range ScopeClaims {
		for _, c := range cs {
			scopeOf[c] = s
		}
	}
	asked := map[string]bool{}
	for _, s := range in.GrantedScopes {
		for _, c := range ScopeClaims[s] {
			asked[c] = true
		}
	}
	if in.Claims != nil {
		m := in.Claims.UserInfo
		if in.Target == TargetIDToken {
			m = in.Claims.IDToken
		}
		for c := range m {
			if _, known := scopeOf[c]; known {
				asked[c] = true
			}
		}
	}
	var out []string
	for c := range asked {
		switch in.Settings.Policy(c) {
		case PolicyNever:
			continue
		case PolicyAllow:
			if slices.Contains(in.GrantedScopes, scopeOf[c]) || slices.Contains(in.Consent.Claims, c) {
				out = append(out, c)
			}
			continue
		}
		if slices.Contains(in.Consent.Claims, c) {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}
