package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Cross-origin access (CORS) for browser apps, which call the provider
// from their own origin with no server of their own.
//
// Discovery and the JWKS are public documents: any origin may read them
// ("*"). The token, UserInfo and revocation endpoints take credentials, so
// they answer only an origin that belongs to the client the request is
// for: an origin of one of its redirect URIs, or one of its
// allowed_cors_origins. A preflight carries no client_id, so it is
// answered for any origin some registered client has (an in-memory set,
// refreshed every corsRefresh and at once when a client is registered,
// changed or deleted through this process); the actual request is then
// checked against its own client. Introspection is for servers and has
// no CORS at all.

const (
	// corsRefresh is how stale the set of registered origins may be: a
	// client registered on another replica is answered after at most this.
	corsRefresh = time.Minute
	// corsMaxAge is how long a browser may cache a preflight answer.
	corsMaxAge = "600"
	// corsMaxOrigins bounds the in-memory set; origins past it are not
	// answered at preflight (the service can still call from a server).
	corsMaxOrigins = 100_000
	// corsAllowHeaders are the request headers a browser app may send.
	corsAllowHeaders = "Authorization, Content-Type, DPoP"
	// corsExposeHeaders are the response headers a browser app may read.
	corsExposeHeaders = "WWW-Authenticate, DPoP-Nonce"
)

// corsOrigins is the set of origins some registered client has.
type corsOrigins struct {
	mu    sync.Mutex
	set   map[string]bool
	at    time.Time
	dirty bool
}

// invalidate makes the next lookup reload the set (a client changed).
func (o *corsOrigins) invalidate() {
	o.mu.Lock()
	o.dirty = true
	o.mu.Unlock()
}

// has reports whether some client has origin, reloading the set when it is
// stale. One load runs at a time (once a minute); a failed load keeps the
// old set and is tried again a few seconds later.
func (o *corsOrigins) has(ctx context.Context, p *Provider, origin string) bool {
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.set == nil || o.dirty || now.Sub(o.at) > corsRefresh {
		set, err := p.loadCORSOrigins(ctx)
		switch {
		case err == nil:
			o.set, o.at, o.dirty = set, now, false
		default:
			p.Log.WarnContext(ctx, "cors: could not load the registered origins", "err", err)
			o.at = now.Add(-corsRefresh + 5*time.Second)
		}
	}
	return o.set[origin]
}

func (p *Provider) loadCORSOrigins(ctx context.Context) (map[string]bool, error) {
	scs, err := p.Store.ListClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	set := map[string]bool{}
	for _, sc := range scs {
		c, err := clientFromStored(sc)
		if err != nil || c.Peer {
			continue
		}
		for _, o := range clientOrigins(c) {
			if len(set) >= corsMaxOrigins {
				return set, nil
			}
			set[o] = true
		}
	}
	return set, nil
}

// clientOrigins are the origins a client's pages may call from.
func clientOrigins(c *Client) []string {
	var out []string
	for _, r := range c.RedirectURIs {
		if o := originOf(r); o != "" {
			out = append(out, o)
		}
	}
	return append(out, c.AllowedCORSOrigins...)
}

// originOf is the ASCII serialisation of a URL's origin (scheme://host[:port],
// lower case, default port omitted), as browsers send it; "" when raw has
// none.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host
}

// checkCORSOrigins validates allowed_cors_origins: each an origin exactly as
// a browser sends it (https, or http on loopback; no path, query, fragment,
// user info or wildcard; lower case; no default port).
func checkCORSOrigins(origins []string) error {
	if len(origins) > 20 {
		return fmt.Errorf("allowed_cors_origins lists more than 20 origins")
	}
	for _, o := range origins {
		if err := checkURL(o, "allowed_cors_origins entry"); err != nil {
			return err
		}
		if strings.Contains(o, "*") {
			return fmt.Errorf("allowed_cors_origins entry %q must not contain \"*\": origins are matched exactly", o)
		}
		if originOf(o) != o {
			return fmt.Errorf("allowed_cors_origins entry %q is not an origin: use scheme://host[:port], lower case, without a path or a default port", o)
		}
	}
	return nil
}

// preflight answers a CORS preflight (an OPTIONS request with
// Access-Control-Request-Method) at a credentialed endpoint: the origin is
// echoed when some registered client has it. Any other OPTIONS request is
// answered with the methods the endpoint takes.
func (p *Provider) preflight(methods string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		h.Set("Allow", methods+", OPTIONS")
		origin := r.Header.Get("Origin")
		if origin != "" && r.Header.Get("Access-Control-Request-Method") != "" && p.cors.has(r.Context(), p, origin) {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", methods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// publicPreflight answers a preflight at discovery and the JWKS, which any
// origin may read.
func publicPreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Allow", "GET, HEAD, OPTIONS")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD")
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
}

// corsFor adds the CORS answer to an actual request at a credentialed
// endpoint: the Origin is echoed only when it belongs to the client the
// request is for (clientOf), never "*", and never with
// Access-Control-Allow-Credentials (the endpoints take no cookies).
func (p *Provider) corsFor(clientOf func(*http.Request) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Vary", "Origin")
			if origin := r.Header.Get("Origin"); origin != "" {
				if id := clientOf(r); id != "" && p.clientHasOrigin(r.Context(), id, origin) {
					w.Header().Set("Access-Control-Allow-Origin", origin)
					w.Header().Set("Access-Control-Expose-Headers", corsExposeHeaders)
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (p *Provider) clientHasOrigin(ctx context.Context, clientID, origin string) bool {
	fc, err := p.fstore.GetClient(ctx, clientID)
	if err != nil {
		return false
	}
	c, ok := fc.(*Client)
	if !ok || c.Peer {
		return false
	}
	for _, o := range clientOrigins(c) {
		if o == origin {
			return true
		}
	}
	return false
}

// requestClientID names the client of a token or revocation request for
// CORS only (authentication happens in the endpoint): the Basic user, the
// client_id parameter, or the subject of a client assertion.
func requestClientID(r *http.Request) string {
	if id, _, ok := r.BasicAuth(); ok {
		if u, err := url.QueryUnescape(id); err == nil {
			return u
		}
		return id
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return ""
	}
	// The body is bounded by the server's request limits; the endpoint
	// reads the parsed form again.
	if err := r.ParseForm(); err != nil {
		return ""
	}
	if id := r.PostForm.Get("client_id"); id != "" {
		return id
	}
	if a := r.PostForm.Get("client_assertion"); a != "" {
		var c struct {
			Sub string `json:"sub"`
		}
		if unverifiedClaims(a, &c) {
			return c.Sub
		}
	}
	return ""
}

// accessTokenClientID names the client an access token was issued to, for
// CORS only: the client_id claim, read without verifying the token (the
// endpoint verifies it; a forged token only gets its refusal shown to the
// origin it names).
func accessTokenClientID(r *http.Request) string {
	h := r.Header.Get("Authorization")
	var tok string
	switch {
	case len(h) > 7 && strings.EqualFold(h[:7], "bearer "):
		tok = strings.TrimSpace(h[7:])
	case len(h) > 5 && strings.EqualFold(h[:5], "dpop "):
		tok = strings.TrimSpace(h[5:])
	}
	if tok == "" {
		return ""
	}
	var c struct {
		ClientID string `json:"client_id"`
	}
	if !unverifiedClaims(tok, &c) {
		return ""
	}
	return c.ClientID
}

// unverifiedClaims decodes the payload of a compact JWS without checking it.
func unverifiedClaims(jws string, v any) bool {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 || len(parts[1]) > 16<<10 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	return json.Unmarshal(b, v) == nil
}
