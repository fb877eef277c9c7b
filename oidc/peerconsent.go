package oidc

// The peer consent page: brokered sign-in asks the person at their home.
//
// A peer cloud signs a person homed here in to one of its services by
// sending them to /authorize with its issuer as client_id (a peer client,
// peer.go) and scope openid. The first time, the person is asked on
// GET PeerConsentPath?challenge=…: "Cloud B wants to sign you in to
// Notes". The visited cloud is named by its host (from the peer client,
// registered by the operator with `peer add`); the service by the name the
// peer announced for it in its feed (a RemoteService), looked up by the
// client_id in the service_client_id parameter of the request, and "a
// service on B" when it is missing or unknown: nothing the URL carries is
// shown as such.
//
// POST PeerConsentPath (same challenge and cross-origin checks as the
// consent page) with decision=allow stores the grant (privacy/peergrant.go:
// a consent to the peer's issuer with the openid scope; it also shares the
// account with that peer, at least its public profile) and logs
// peer.granted in the activity log, then resumes the authorization, which
// issues the code; decision=deny logs consent.denied and answers
// access_denied. Later requests of the same peer go through without a page,
// prompt=none included; without a grant prompt=none gets consent_required
// (login_required when nobody is signed in) and nothing is released.

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// PeerConsentPath is the peer consent page.
const PeerConsentPath = "/consent/peer"

// PeerServiceParam names, in a peer's authorization request, the peer's
// client_id of the service the person is being signed in to.
const PeerServiceParam = "service_client_id"

// maxServiceName bounds the service name shown.
const maxServiceName = 100

type peerConsentState struct {
	ch       *Challenge
	ar       fosite.AuthorizeRequester
	client   *Client
	acct     *identity.Account
	previous *privacy.Consent
	host     string // the visited cloud
	service  string // the service's name, "" when unknown
}

func (p *Provider) loadPeerConsentState(w http.ResponseWriter, r *http.Request, challenge string) (*peerConsentState, bool) {
	ctx := r.Context()
	ch, ar, acct, ok := p.pendingRequest(w, r, challenge)
	if !ok {
		return nil, false
	}
	var err error
	client := ar.GetClient().(*Client)
	if !client.Peer {
		// The page of services is the consent page.
		http.Redirect(w, r, "/consent?challenge="+url.QueryEscape(ch.IDHash), http.StatusSeeOther)
		return nil, false
	}
	st := &peerConsentState{ch: ch, ar: ar, client: client, acct: acct, host: client.ClientID}
	if u, err := url.Parse(client.ClientID); err == nil && u.Host != "" {
		st.host = u.Host
	}
	st.previous, err = p.Privacy.GetConsent(ctx, acct.DID, client.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		st.previous, err = nil, nil
	}
	if err != nil {
		p.serverError(w, r, err)
		return nil, false
	}
	if id := ar.GetRequestForm().Get(PeerServiceParam); id != "" && p.RemoteService != nil {
		if rs, err := p.RemoteService(ctx, client.ClientID, id); err == nil && rs.Metadata.ClientName != "" {
			st.service = truncate(strings.TrimSpace(rs.Metadata.ClientName), maxServiceName)
		}
	}
	return st, true
}

func (p *Provider) peerConsentPage(w http.ResponseWriter, r *http.Request) {
	st, ok := p.loadPeerConsentState(w, r, r.URL.Query().Get("challenge"))
	if !ok {
		return
	}
	p.Pages.Render(w, r, http.StatusOK, "peer_consent", map[string]any{
		"Challenge": st.ch.IDHash,
		"Host":      st.host,
		"Service":   st.service,
		"Account":   st.acct,
	})
}

func (p *Provider) peerConsentSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	st, ok := p.loadPeerConsentState(w, r, r.PostForm.Get("challenge"))
	if !ok {
		return
	}
	peer := st.client.ClientID
	detail := map[string]any{"cloud": st.host}
	if st.service != "" {
		detail["service"] = st.service
	}
	switch r.PostForm.Get("decision") {
	case "deny":
		p.Store.DeleteChallenge(ctx, identity.HashToken(st.ch.IDHash))
		p.activity(ctx, r, st.acct.DID, privacy.ActivityConsentDenied, peer, detail)
		p.authorizeError(w, r, st.ar, fosite.ErrAccessDenied.WithHint("The person declined to be signed in by this cloud."))
		return
	case "allow":
	default:
		p.errorPage(w, r, http.StatusBadRequest, "Bad request", "Choose whether to allow or deny.")
		return
	}
	now := p.now()
	c := &privacy.Consent{AccountDID: st.acct.DID, ClientID: peer, Scopes: []string{"openid"}, GrantedAt: now, UpdatedAt: now}
	if st.previous != nil {
		c.GrantedAt, c.LastUsedAt = st.previous.GrantedAt, st.previous.LastUsedAt
	}
	err := p.Privacy.InTx(ctx, func(ctx context.Context) error {
		if err := p.Privacy.PutPeerGrant(ctx, c); err != nil {
			return err
		}
		return p.Privacy.AppendActivity(ctx, &privacy.Activity{AccountDID: st.acct.DID, At: now, Kind: privacy.ActivityPeerGranted,
			ClientID: peer, Detail: detail, IP: httpx.ClientIP(r), UserAgent: truncate(r.UserAgent(), 300)})
	})
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	http.Redirect(w, r, "/authorize/resume?challenge="+url.QueryEscape(st.ch.IDHash), http.StatusSeeOther)
}

// ReturnToClient returns the client_id of the authorization request that
// a local return_to path resumes ("/authorize/resume?challenge=…"), "" for
// any other path or an unknown or expired request. A brokered sign-in
// passes it to the home cloud, which names the service on its consent page.
func (p *Provider) ReturnToClient(ctx context.Context, returnTo string) string {
	u, err := url.Parse(returnTo)
	if err != nil || u.Path != "/authorize/resume" || u.Host != "" {
		return ""
	}
	ch, err := p.loadChallenge(ctx, u.Query().Get("challenge"))
	if err != nil {
		return ""
	}
	return ch.ClientID
}
