package privacy

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRelease(t *testing.T) {
	consent := &Consent{Scopes: []string{"openid", "profile", "email"}, Claims: []string{"name", "email", "email_verified", "preferred_username"}}
	never := &Settings{ClaimPolicy: map[string]string{"email": PolicyNever}}
	allowDID := &Settings{ClaimPolicy: map[string]string{"did": PolicyAllow}}
	claimsParam := func(userinfo []string, idToken ...string) *ClaimsRequest {
		cr := &ClaimsRequest{UserInfo: map[string]json.RawMessage{}, IDToken: map[string]json.RawMessage{}}
		for _, c := range userinfo {
			cr.UserInfo[c] = nil
		}
		for _, c := range idToken {
			cr.IDToken[c] = nil
		}
		return cr
	}
	cases := []struct {
		name string
		in   ReleaseInput
		want []string
	}{
		{"scopes to userinfo, ticked only", ReleaseInput{GrantedScopes: []string{"openid", "profile", "email"}, Consent: consent, Target: TargetUserInfo},
			[]string{"email", "email_verified", "name", "preferred_username"}},
		{"scope claims in the ID token too, ticked only", ReleaseInput{GrantedScopes: []string{"openid", "profile", "email"}, Consent: consent, Target: TargetIDToken},
			[]string{"email", "email_verified", "name", "preferred_username"}},
		{"claims parameter for userinfo only does not reach the ID token", ReleaseInput{GrantedScopes: []string{"openid"}, Consent: consent, Claims: claimsParam([]string{"email"}), Target: TargetIDToken},
			nil},
		{"claims parameter puts a ticked claim in the ID token", ReleaseInput{GrantedScopes: []string{"openid"}, Consent: consent, Claims: claimsParam(nil, "email"), Target: TargetIDToken},
			[]string{"email"}},
		{"claims parameter cannot release an unticked claim", ReleaseInput{GrantedScopes: []string{"openid"}, Consent: consent, Claims: claimsParam([]string{"phone_number"}), Target: TargetUserInfo},
			nil},
		{"never beats an earlier consent", ReleaseInput{GrantedScopes: []string{"openid", "email"}, Consent: consent, Settings: never, Target: TargetUserInfo},
			[]string{"email_verified"}},
		{"never beats the claims parameter", ReleaseInput{GrantedScopes: []string{"openid"}, Consent: consent, Settings: never, Claims: claimsParam([]string{"email"}, "email"), Target: TargetIDToken},
			nil},
		{"scope not granted releases nothing of it", ReleaseInput{GrantedScopes: []string{"openid"}, Consent: consent, Target: TargetUserInfo},
			nil},
		{"allow releases with the scope granted even if not ticked", ReleaseInput{GrantedScopes: []string{"openid", "did"}, Consent: consent, Settings: allowDID, Target: TargetUserInfo},
			[]string{"did"}},
		{"allow without the scope releases nothing", ReleaseInput{GrantedScopes: []string{"openid"}, Consent: consent, Settings: allowDID, Target: TargetUserInfo},
			nil},
		{"unknown claims are ignored", ReleaseInput{GrantedScopes: []string{"openid"}, Consent: &Consent{Claims: []string{"password"}}, Claims: claimsParam([]string{"password"}), Target: TargetUserInfo},
			nil},
		{"no consent, nothing", ReleaseInput{GrantedScopes: []string{"openid", "email"}, Target: TargetUserInfo}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, Release(c.in)); diff != "" {
				t.Fatalf("Release (-want +got):\n%s", diff)
			}
		})
	}
}
