package oidc

// Pushed authorization requests (RFC 9126). A client POSTs its
// authorization request to /par, authenticated as at the token endpoint,
// and gets back a request_uri (urn:ietf:params:oauth:request_uri:…) that it
// sends to /authorize with its client_id alone. The pushed request is
// validated at the push exactly as /authorize would (fosite's PAR handler
// plus this provider's own checks) and stored within the bounds of a
// challenge (challenges.go); its request_uri is usable once, for
// PARLifetime. A client registered with require_pushed_authorization_requests
// is refused at /authorize without one.
//
// Public clients (token_endpoint_auth_method none) may push as they may
// send a front-channel request: they hold no credential, and PKCE binds the
// code to them. Pushes are limited per source IP and per client, so that
// nobody fills the table.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/store"
)

// PAR bounds.
const (
	// PARLifetime is how long a request_uri may be used (RFC 9126 §2.2:
	// short, a minute is plenty for a redirect).
	PARLifetime = 60 * time.Second
	// PARPerClient pushes are allowed per PARWindow for one client, and
	// PARPerIP for one source IP (scaled by --rate-limit).
	PARPerClient = 120
	PARPerIP     = 600
	PARWindow    = time.Minute
	// parURIPrefix is fosite's request_uri prefix.
	parURIPrefix = "urn:ietf:params:oauth:request_uri:"
	// maxRequestURIBytes bounds a request_uri before it is looked up.
	maxRequestURIBytes = 256
)

// PushedRequest is a stored pushed authorization request.
type PushedRequest struct {
	URIHash   string // hash of the request_uri
	ClientID  string
	Form      string // the kept parameters (keptForm), URL-encoded
	CreatedAt time.Time
	ExpiresAt time.Time
}

// parStore is what pushed authorization requests need from storage.
type parStore interface {
	CreatePushedRequest(ctx context.Context, p *PushedRequest) error
	// TakePushedRequest deletes and returns the request stored under
	// uriHash; store.ErrNotFound when there is none or it has expired.
	TakePushedRequest(ctx context.Context, uriHash string, now time.Time) (*PushedRequest, error)
}

var _ fosite.PARStorage = (*fositeStore)(nil)

func (s *fositeStore) parStore() (parStore, error) {
	ps, ok := s.st.(parStore)
	if !ok {
		return nil, errors.New("the store does not keep pushed authorization requests")
	}
	return ps, nil
}

// CreatePARSession stores a pushed request: its kept parameters only, as a
// challenge keeps them, so that a row is at most MaxChallengeFormBytes.
func (s *fositeStore) CreatePARSession(ctx context.Context, requestURI string, ar fosite.AuthorizeRequester) error {
	ps, err := s.parStore()
	if err != nil {
		return err
	}
	form := keptForm(ar.GetRequestForm()).Encode()
	if len(form) > MaxChallengeFormBytes {
		return fosite.ErrInvalidRequest.WithHintf("The authorization request is longer than %d bytes.", MaxChallengeFormBytes)
	}
	now := s.now().UTC()
	return storeErr(ps.CreatePushedRequest(ctx, &PushedRequest{URIHash: identity.HashToken(requestURI),
		ClientID: ar.GetClient().GetID(), Form: form, CreatedAt: now, ExpiresAt: now.Add(PARLifetime)}))
}

// GetPARSession takes the pushed request: getting it uses it up, so that
// a request_uri works once however many ask for it at the same moment.
// The authorization endpoint validates the returned parameters again as a
// new request (takePushed); what is returned here carries them and the
// client.
func (s *fositeStore) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	ps, err := s.parStore()
	if err != nil {
		return nil, err
	}
	pr, err := ps.TakePushedRequest(ctx, identity.HashToken(requestURI), s.now().UTC())
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fosite.ErrNotFound
		}
		return nil, storeErr(err)
	}
	form, err := url.ParseQuery(pr.Form)
	if err != nil {
		return nil, fmt.Errorf("stored pushed request: %w", err)
	}
	client, err := s.GetClient(ctx, pr.ClientID)
	if err != nil {
		return nil, err
	}
	ar := fosite.NewAuthorizeRequest()
	ar.Client, ar.Form, ar.State = client, form, form.Get("state")
	ar.ResponseTypes = fosite.RemoveEmpty(strings.Fields(form.Get("response_type")))
	ar.SetRequestedScopes(fosite.RemoveEmpty(strings.Fields(form.Get("scope"))))
	if u, err := url.Parse(form.Get("redirect_uri")); err == nil {
		ar.RedirectURI = u
	}
	return ar, nil
}

// DeletePARSession: GetPARSession already deleted it.
func (s *fositeStore) DeletePARSession(ctx context.Context, requestURI string) error { return nil }

// isPushedURI reports whether a request_uri is one of ours (it may still be
// unknown, used or expired).
func isPushedURI(u string) bool { return strings.HasPrefix(u, parURIPrefix) }

// takePushed uses up a request_uri of clientID and returns the pushed
// parameters.
func (p *Provider) takePushed(ctx context.Context, requestURI, clientID string) (string, error) {
	if len(requestURI) > maxRequestURIBytes {
		return "", fosite.ErrInvalidRequestURI.WithHint("The request_uri is unknown, used or expired.")
	}
	ar, err := p.fstore.GetPARSession(ctx, requestURI)
	if errors.Is(err, fosite.ErrNotFound) {
		return "", fosite.ErrInvalidRequestURI.WithHint("The request_uri is unknown, used or expired.")
	}
	if err != nil {
		return "", err
	}
	if ar.GetClient().GetID() != clientID {
		// RFC 9126 §4: the client_id must be the one that pushed.
		return "", fosite.ErrInvalidRequestURI.WithHint("The request_uri was not pushed by this client_id.")
	}
	return keptForm(ar.GetRequestForm()).Encode(), nil
}

// parGuard holds the push budgets.
type parGuard struct {
	once      sync.Once
	perClient *limits.Budget
}

// pushedAuthorize is the pushed authorization request endpoint.
func (p *Provider) pushedAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	// A request object is refused, never parsed: fosite would verify it
	// with the client's keys and merge its claims.
	requestObject := false
	if err := r.ParseMultipartForm(1 << 20); err == nil || errors.Is(err, http.ErrNotMultipart) {
		if p.RPResolver != nil && IsEntityID(r.Form.Get("client_id")) {
			// Automatic registration (autoreg.go): the relying party is
			// authenticated and registered here, or refused.
			actx, _, err := p.automaticPush(ctx, r)
			if err != nil {
				p.oauth.WritePushedAuthorizeError(ctx, w, fosite.NewAuthorizeRequest(), err)
				return
			}
			ctx = actx
		}
		requestObject = r.Form.Has("request")
		r.Form.Del("request")
	}
	ar, err := p.oauth.NewPushedAuthorizeRequest(ctx, r)
	err = stateOptional(ar, err)
	if err != nil {
		p.oauth.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	client, ok := ar.GetClient().(*Client)
	if !ok {
		p.oauth.WritePushedAuthorizeError(ctx, w, ar, fosite.ErrInvalidClient)
		return
	}
	p.par.once.Do(func() { p.par.perClient = p.Limits.PerKeyBudget(PARPerClient, PARWindow) })
	if ok, wait := p.par.perClient.TakeKey(r, client.ClientID); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "slow_down",
			"error_description": "Too many pushed authorization requests for this client; retry after the number of seconds in Retry-After."})
		return
	}
	form := ar.GetRequestForm()
	switch {
	case requestObject:
		err = fosite.ErrRequestNotSupported.WithHint("Request objects are not supported; push the parameters themselves.")
	case !redirectMatches(client.RedirectURIs, form.Get("redirect_uri")):
		err = fosite.ErrInvalidRequest.WithHint("The 'redirect_uri' parameter does not match any of the OAuth 2.0 Client's pre-registered redirect urls.")
	default:
		if err = checkBounds(form); err == nil {
			err = checkRequest(ar, client)
		}
		if err == nil {
			err = askAudience(ar) // resource: as at /authorize, refused when pushed
		}
	}
	if err != nil {
		p.oauth.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	resp, err := p.oauth.NewPushedAuthorizeResponse(ctx, ar, newSession())
	if err != nil {
		if rfc := fosite.ErrorToRFC6749Error(err); rfc.CodeField >= 500 {
			p.Log.ErrorContext(ctx, "pushed authorization request", "err", err)
		}
		p.oauth.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	p.oauth.WritePushedAuthorizeResponse(ctx, w, ar, resp)
}
