package oidc

// Second factors in authorization requests. A service asks for a second
// factor with acr_values (or an essential acr claim) naming ACRMFA or
// ACRMultiFactor; the provider then issues a code only after a sign-on
// with a second factor (amr containing "mfa"; a passkey sign-in, which
// verifies the person on their device, counts too) when the person has
// one. A person without a second factor is signed in with their password
// and the ID token says so (acr "0"): acr_values is a wish, and the service
// decides. An essential acr of only these values is refused with
// unmet_authentication_requirements instead.
//
// A service that makes the person sign in again (prompt=login, or a
// max_age that has passed) gets a sign-in with every factor the person has:
// the login page is told to ask the second factor too.
//
// The ID token's acr is ACRMFA (or ACRMultiFactor when the service asked
// for that one) after a second factor, "0" otherwise; amr lists the
// methods used (RFC 8176): ["pwd"], ["pwd","otp","mfa"], ["pwd","hwk","mfa"],
// ["hwk","user"].

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/privacy"
)

// Authentication context classes of a sign-in with a second factor.
const (
	ACRMFA         = "mfa"
	ACRMultiFactor = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
)

// acrValuesSupported are the classes named in discovery.
var acrValuesSupported = []string{supportedACR, ACRMFA, ACRMultiFactor}

func isMFAClass(v string) bool { return v == ACRMFA || v == ACRMultiFactor }

// requestedACRs are the classes a request names, in its order: acr_values,
// then the acr claim's value(s); essential reports an essential acr claim
// that names only second-factor classes.
func requestedACRs(ar fosite.AuthorizeRequester) (vals []string, essential bool) {
	vals = strings.Fields(ar.GetRequestForm().Get("acr_values"))
	cr, err := privacy.ParseClaimsRequest(ar.GetRequestForm().Get("claims"))
	if err != nil {
		return vals, false
	}
	for _, m := range []map[string]json.RawMessage{cr.IDToken, cr.UserInfo} {
		raw, ok := m["acr"]
		if !ok {
			continue
		}
		var req struct {
			Essential bool     `json:"essential"`
			Value     *string  `json:"value"`
			Values    []string `json:"values"`
		}
		if json.Unmarshal(raw, &req) != nil {
			continue
		}
		asked := req.Values
		if req.Value != nil {
			asked = append(asked, *req.Value)
		}
		vals = append(vals, asked...)
		if req.Essential && len(asked) > 0 && !slices.ContainsFunc(asked, func(v string) bool { return !isMFAClass(v) }) {
			essential = true
		}
	}
	return vals, essential
}

// wantsMFA reports whether the request asks for a second factor.
func wantsMFA(ar fosite.AuthorizeRequester) bool {
	vals, _ := requestedACRs(ar)
	return slices.ContainsFunc(vals, isMFAClass)
}

// sessionMFA reports whether a sign-on used a second factor.
func sessionMFA(amr []string) bool {
	return slices.Contains(amr, "mfa") || slices.Contains(amr, "hwk")
}

// acrOf is the ID token's acr for a sign-on with methods amr.
func acrOf(amr []string, ar fosite.AuthorizeRequester) string {
	if !sessionMFA(amr) {
		return supportedACR
	}
	vals, _ := requestedACRs(ar)
	for _, v := range vals {
		if isMFAClass(v) {
			return v
		}
	}
	return ACRMFA
}

// secondFactorStore is implemented by stores that keep second factors.
type secondFactorStore interface {
	HasSecondFactor(ctx context.Context, did string) (bool, error)
}

// hasSecondFactor reports whether the account has a second factor (false
// when the store keeps none).
func (p *Provider) hasSecondFactor(ctx context.Context, did string) (bool, error) {
	s, ok := p.Store.(secondFactorStore)
	if !ok {
		return false, nil
	}
	return s.HasSecondFactor(ctx, did)
}
