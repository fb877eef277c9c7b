package privacy

import (
	"slices"
	"testing"
)

// FuzzParseClaimsRequest: the claims parameter comes from anyone who can
// send a browser to /authorize. Whatever it holds, parsing does not panic,
// Names is sorted and without repeats, and the parameter alone never makes
// Release give out a claim the person did not tick or set to "allow", nor
// one set to "never".
func FuzzParseClaimsRequest(f *testing.F) {
	for _, s := range []string{
		"",
		`{}`,
		`{"userinfo":{"email":null,"name":{"essential":true}},"id_token":{"did":null}}`,
		`{"id_token":{"email":{"value":"a@example.org"},"acr":{"values":["x"]}}}`,
		`{"userinfo":{"sub":null,"unknown":null}}`,
		`{"userinfo":[],"id_token":"x"}`,
		`{"userinfo":{"email":null},"userinfo":{"name":null}}`,
		`null`,
		`[`,
	} {
		f.Add(s)
	}
	consent := &Consent{Scopes: []string{"openid"}, Claims: []string{"name", "email"}}
	settings := &Settings{ClaimPolicy: map[string]string{"email": PolicyNever, "did": PolicyAllow}}
	f.Fuzz(func(t *testing.T, s string) {
		cr, err := ParseClaimsRequest(s)
		if err != nil {
			if cr != nil {
				t.Fatalf("ParseClaimsRequest(%q) returned a request with error %v", s, err)
			}
			return
		}
		if cr == nil {
			t.Fatalf("ParseClaimsRequest(%q) = nil, nil", s)
		}
		names := cr.Names()
		if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Fatalf("Names() = %q is not sorted and unique", names)
		}
		for _, n := range names {
			_, inUser := cr.UserInfo[n]
			_, inID := cr.IDToken[n]
			if !inUser && !inID {
				t.Fatalf("Names() has %q, which the request does not name", n)
			}
		}
		for _, target := range []string{TargetUserInfo, TargetIDToken} {
			got := Release(ReleaseInput{GrantedScopes: []string{"openid"}, Consent: consent, Settings: settings, Claims: cr, Target: target})
			for _, c := range got {
				if c != "name" {
					t.Fatalf("claims %q released %q for %s: only the ticked, not-never name may be", s, c, target)
				}
			}
			if len(Release(ReleaseInput{Consent: &Consent{}, Claims: cr, Target: target})) != 0 {
				t.Fatalf("claims %q released something without any consent", s)
			}
		}
	})
}
