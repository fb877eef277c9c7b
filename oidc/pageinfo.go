package oidc

import (
	"context"
	"net/url"
)

// PageInfo tells the person-facing pages about the authorization request a
// return_to leads back to (/authorize/resume?challenge=…): the name the
// service shows (client_name, else its host) and the request's ui_locales
// (OIDC Core §3.1.2.1). Anything else, or an unknown or expired challenge,
// gives empty strings: a page never trusts a name from its own URL.
func (p *Provider) PageInfo(ctx context.Context, returnTo string) (service, uiLocales string) {
	u, err := url.Parse(returnTo)
	if err != nil || u.Path != "/authorize/resume" || u.Host != "" {
		return "", ""
	}
	ch, err := p.loadChallenge(ctx, u.Query().Get("challenge"))
	if err != nil {
		return "", ""
	}
	if f, err := url.ParseQuery(ch.Form); err == nil {
		uiLocales = f.Get("ui_locales")
	}
	if c, err := LookupClient(ctx, p.Store, ch.ClientID); err == nil {
		service = c.DisplayName()
	}
	return service, uiLocales
}
