package oidc

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// scopeInfo describes a scope on the consent page.
type scopeInfo struct {
	Name        string
	Description string
	Claims      []claimInfo
}

type claimInfo struct {
	Name    string
	Label   string
	Value   string
	Checked bool
	Never   bool
}

var scopeDescriptions = map[string]string{
	"openid":         "Sign you in with your Commons ID",
	"profile":        "Your profile: name and handle",
	"email":          "Your email address",
	"address":        "Your postal address",
	"phone":          "Your phone number",
	"did":            "Your decentralized identifier (DID)",
	"commons":        "Your contribution level in the commons (basic or enhanced access)",
	"offline_access": "Stay connected when you are not using it (refresh tokens)",
}

var claimLabels = map[string]string{
	"name": "Name", "preferred_username": "Handle", "email": "Email", "email_verified": "Whether your email is verified",
	"updated_at": "When your profile last changed", "did": "DID", "address": "Address", "phone_number": "Phone number",
	"phone_number_verified": "Whether your phone is verified", "given_name": "Given name", "family_name": "Family name",
	"middle_name": "Middle name", "nickname": "Nickname", "profile": "Profile page", "picture": "Picture", "website": "Website",
	"gender": "Gender", "birthdate": "Birth date", "zoneinfo": "Time zone", "locale": "Locale",
	"commons_access": "Contribution level and its expiry",
}

// consentState loads what the consent page and its submission need.
type consentState struct {
	ch       *Challenge
	ar       fosite.AuthorizeRequester
	client   *Client
	acct     *identity.Account
	settings *privacy.Settings
	previous *privacy.Consent
	parent   *Client // the family root, for a fork
	// parentCloud names where the family root runs: the host of its
	// issuer, or "this cloud".
	parentCloud string
	// family is the person's current consent to the family root, if any.
	family *privacy.Consent
}

// pendingRequest is what a consent page works on: the stored
// authorization request of challenge and the signed-in person. It answers
// (and returns false) when the challenge is unknown, nobody is signed in
// (to the login page, back here after) or the request no longer stands.
func (p *Provider) pendingRequest(w http.ResponseWriter, r *http.Request, challenge string) (*Challenge, fosite.AuthorizeRequester, *identity.Account, bool) {
	ctx := r.Context()
	ch, err := p.loadChallenge(ctx, challenge)
	if err != nil {
		p.errorPage(w, r, http.StatusBadRequest, "Sign-in expired", "This sign-in request is unknown or has expired. Please return to the service and start again.")
		return nil, nil, nil, false
	}
	_, acct, err := p.Sessions.Resolve(ctx, cookieValue(r, p.SessionCookie))
	if err != nil && !errors.Is(err, identity.ErrNoSession) {
		p.serverError(w, r, err)
		return nil, nil, nil, false
	}
	if err != nil {
		http.Redirect(w, r, "/login?return_to="+url.QueryEscape("/authorize/resume?challenge="+ch.IDHash), http.StatusSeeOther)
		return nil, nil, nil, false
	}
	ar, err := p.rebuild(ctx, r, ch)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return nil, nil, nil, false
	}
	return ch, ar, acct, true
}

func (p *Provider) loadConsentState(w http.ResponseWriter, r *http.Request, challenge string) (*consentState, bool) {
	ctx := r.Context()
	ch, ar, acct, ok := p.pendingRequest(w, r, challenge)
	if !ok {
		return nil, false
	}
	var err error
	st := &consentState{ch: ch, ar: ar, client: ar.GetClient().(*Client), acct: acct}
	if st.settings, err = p.settings(ctx, acct.DID); err != nil {
		p.serverError(w, r, err)
		return nil, false
	}
	st.previous, err = p.Privacy.GetConsent(ctx, acct.DID, st.client.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		st.previous, err = nil, nil
	}
	if err != nil {
		p.serverError(w, r, err)
		return nil, false
	}
	p.loadFamily(ctx, st)
	return st, true
}

// loadFamily finds a fork's family root and the person's consent to it.
// A root that is no longer known, or whose own sector (as verified when it
// was announced) is not the fork's family sector, is no family at all: the
// fork then gets no family sub and inherits nothing.
func (p *Provider) loadFamily(ctx context.Context, st *consentState) {
	if st.client.FamilyRoot == "" || st.client.FamilySector == "" {
		return
	}
	var root *Client
	if issuer, id, remote := strings.Cut(st.client.FamilyRoot, "#"); remote {
		if p.RemoteService == nil {
			return
		}
		rs, err := p.RemoteService(ctx, issuer, id)
		if err != nil || rs.Unverified != "" {
			return
		}
		m := rs.Metadata
		m.ClientID = st.client.FamilyRoot
		root = &Client{Metadata: m}
		st.parentCloud = issuer
		if u, err := url.Parse(issuer); err == nil && u.Host != "" {
			st.parentCloud = u.Host
		}
	} else {
		sc, err := p.Store.GetClient(ctx, st.client.FamilyRoot)
		if err != nil {
			return
		}
		if root, err = clientFromStored(sc); err != nil || root.Peer {
			return
		}
		st.parentCloud = "this cloud"
	}
	if root.FamilyRoot != "" || root.Sector != st.client.FamilySector {
		p.Log.WarnContext(ctx, "fork's family root does not hold the family sector: treated as a separate service",
			"client_id", st.client.ClientID, "family_root", st.client.FamilyRoot)
		st.parentCloud = ""
		return
	}
	st.parent = root
	if c, err := p.Privacy.GetConsent(ctx, st.acct.DID, root.ClientID); err == nil && c != nil &&
		(c.ExpiresAt == nil || p.now().Before(*c.ExpiresAt)) {
		st.family = c
	}
}

// inherited is the consent a fork inherits without a page (fork policy
// allow): the person has a current consent to the family root that covers
// every scope asked, and the service did not ask for the page
// (prompt=consent). It has the requested scopes, the root's granted
// claims (less those the person never shares) and the family sector;
// nil when the page must be shown.
func (p *Provider) inherited(st *consentState) *privacy.Consent {
	if st.parent == nil || st.previous != nil || st.family == nil || st.settings.ForkPolicy != privacy.PolicyAllow {
		return nil
	}
	now := p.now()
	requested := []string(st.ar.GetRequestedScopes())
	if !st.family.Covers(requested, now) || slices.Contains(strings.Fields(st.ar.GetRequestForm().Get("prompt")), "consent") {
		return nil
	}
	c := &privacy.Consent{AccountDID: st.acct.DID, ClientID: st.client.ClientID, SubjectSector: st.client.FamilySector,
		GrantedAt: now, UpdatedAt: now, TermsHash: st.client.TermsHash()}
	for _, s := range requested {
		if !slices.Contains(c.Scopes, s) {
			c.Scopes = append(c.Scopes, s)
		}
	}
	for _, cl := range st.family.Claims {
		if st.settings.Policy(cl) != privacy.PolicyNever && !slices.Contains(c.Claims, cl) {
			c.Claims = append(c.Claims, cl)
		}
	}
	sort.Strings(c.Scopes)
	sort.Strings(c.Claims)
	if d := st.settings.ConsentLifetimeDays; d > 0 {
		exp := now.Add(time.Duration(d) * 24 * time.Hour)
		c.ExpiresAt = &exp
	}
	return c
}

// requestedClaims lists, per requested scope, the claims the page offers.
func (st *consentState) scopes() []scopeInfo {
	cr, _ := privacy.ParseClaimsRequest(st.ar.GetRequestForm().Get("claims"))
	var out []scopeInfo
	listed := map[string]bool{}
	for _, s := range st.ar.GetRequestedScopes() {
		si := scopeInfo{Name: s, Description: scopeDescriptions[s]}
		if si.Description == "" {
			si.Description = s
		}
		for _, c := range privacy.ScopeClaims[s] {
			if v := claimValues(st.acct, []string{c}); len(v) == 0 && c != "did" {
				continue // nothing to share
			}
			si.Claims = append(si.Claims, st.claim(c))
			listed[c] = true
		}
		out = append(out, si)
	}
	var extra []claimInfo
	for _, c := range cr.Names() {
		if listed[c] || claimLabels[c] == "" {
			continue
		}
		if v := claimValues(st.acct, []string{c}); len(v) == 0 {
			continue
		}
		extra = append(extra, st.claim(c))
	}
	if len(extra) > 0 {
		out = append(out, scopeInfo{Name: "claims", Description: "Also asked for", Claims: extra})
	}
	return out
}

func (st *consentState) claim(c string) claimInfo {
	ci := claimInfo{Name: c, Label: claimLabels[c], Checked: true}
	if v, ok := claimValues(st.acct, []string{c})[c]; ok {
		if s, ok := v.(string); ok {
			ci.Value = s
		}
	}
	switch st.settings.Policy(c) {
	case privacy.PolicyNever:
		ci.Checked, ci.Never = false, true
	default:
		switch {
		case st.previous != nil:
			if slices.Contains(st.previous.Scopes, scopeOfClaim(c)) {
				ci.Checked = slices.Contains(st.previous.Claims, c)
			}
		case st.family != nil && st.settings.ForkPolicy != privacy.PolicyNever:
			// A fork of a service the person uses: pre-ticked are the
			// claims they granted the family root, nothing more.
			ci.Checked = slices.Contains(st.family.Claims, c)
		}
	}
	return ci
}

func scopeOfClaim(c string) string {
	for s, cs := range privacy.ScopeClaims {
		if slices.Contains(cs, c) {
			return s
		}
	}
	return ""
}

func (p *Provider) consentPage(w http.ResponseWriter, r *http.Request) {
	st, ok := p.loadConsentState(w, r, r.URL.Query().Get("challenge"))
	if !ok {
		return
	}
	if c := p.inherited(st); c != nil {
		if err := p.Privacy.PutConsent(r.Context(), c); err != nil {
			p.serverError(w, r, err)
			return
		}
		p.activity(r.Context(), r, st.acct.DID, privacy.ActivityConsent, c.ClientID, map[string]any{"scopes": c.Scopes, "claims": c.Claims,
			"inherited_from": st.parent.ClientID, "fork_policy": privacy.PolicyAllow})
		http.Redirect(w, r, "/authorize/resume?challenge="+url.QueryEscape(st.ch.IDHash), http.StatusSeeOther)
		return
	}
	data := map[string]any{
		"Challenge": st.ch.IDHash,
		"Client":    st.client,
		"Name":      st.client.DisplayName(),
		"Account":   st.acct,
		"Scopes":    st.scopes(),
		"Parent":    st.parent,
		// The commons' terms (terms.go, consent_terms.html).
		"Terms": st.client.TermsView(st.previous != nil && st.previous.TermsHash != st.client.TermsHash()),
	}
	if st.parent != nil {
		data["ParentName"] = st.parent.DisplayName()
		data["ParentCloud"] = st.parentCloud
		data["UsesFamily"] = st.family != nil
		data["ForkPolicy"] = st.settings.ForkPolicy
	}
	p.Pages.Render(w, r, http.StatusOK, "consent", data)
}

func (p *Provider) consentSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	st, ok := p.loadConsentState(w, r, r.PostForm.Get("challenge"))
	if !ok {
		return
	}
	cid := st.client.ClientID
	switch r.PostForm.Get("decision") {
	case "deny":
		p.Store.DeleteChallenge(ctx, identity.HashToken(st.ch.IDHash))
		p.activity(ctx, r, st.acct.DID, privacy.ActivityConsentDenied, cid, map[string]any{"scopes": []string(st.ar.GetRequestedScopes())})
		p.authorizeError(w, r, st.ar, fosite.ErrAccessDenied.WithHint("The person declined to share with this service."))
		return
	case "allow":
	default:
		p.errorPage(w, r, http.StatusBadRequest, "Bad request", "Choose whether to allow or deny.")
		return
	}
	offered := map[string]bool{}
	for _, s := range st.scopes() {
		for _, c := range s.Claims {
			if !c.Never {
				offered[c.Name] = true
			}
		}
	}
	var ticked []string
	for _, c := range r.PostForm["claim"] {
		if offered[c] && !slices.Contains(ticked, c) {
			ticked = append(ticked, c)
		}
	}
	now := p.now()
	c := &privacy.Consent{AccountDID: st.acct.DID, ClientID: cid, GrantedAt: now, UpdatedAt: now, TermsHash: st.client.TermsHash()}
	if st.previous != nil {
		c.GrantedAt, c.SubjectSector = st.previous.GrantedAt, st.previous.SubjectSector
		c.Scopes = append(c.Scopes, st.previous.Scopes...)
		for _, cl := range st.previous.Claims {
			// Keep earlier choices for claims this page did not show.
			if !offered[cl] && st.settings.Policy(cl) != privacy.PolicyNever {
				ticked = append(ticked, cl)
			}
		}
	}
	for _, s := range st.ar.GetRequestedScopes() {
		if !slices.Contains(c.Scopes, s) {
			c.Scopes = append(c.Scopes, s)
		}
	}
	sort.Strings(c.Scopes)
	sort.Strings(ticked)
	c.Claims = ticked
	if d := st.settings.ConsentLifetimeDays; d > 0 {
		exp := now.Add(time.Duration(d) * 24 * time.Hour)
		c.ExpiresAt = &exp
	}
	if st.parent != nil && st.previous == nil {
		carry := false
		switch st.settings.ForkPolicy {
		case privacy.PolicyAllow:
			carry = true
		case privacy.PolicyNever:
		default:
			carry = r.PostForm.Get("fork") == "carry"
		}
		if carry && st.client.FamilySector != "" {
			c.SubjectSector = st.client.FamilySector
		}
	}
	if err := p.Privacy.PutConsent(ctx, c); err != nil {
		p.serverError(w, r, err)
		return
	}
	p.activity(ctx, r, st.acct.DID, privacy.ActivityConsent, cid, map[string]any{"scopes": c.Scopes, "claims": c.Claims})
	http.Redirect(w, r, "/authorize/resume?challenge="+url.QueryEscape(st.ch.IDHash), http.StatusSeeOther)
}
