// Package oidc is the OpenID Connect provider, built on ory/fosite.
//
// Routes (mounted by [Provider.Mount]):
//
//	GET  /.well-known/openid-configuration   discovery
//	GET  /jwks.json                          published signing keys
//	GET|POST /authorize                      authorization endpoint (code only)
//	GET  /authorize/resume?challenge=…       continue after login or consent
//	GET|POST /consent?challenge=…            the consent page
//	GET|POST /consent/peer?challenge=…       a peer cloud asks to sign the person in (peerconsent.go)
//	POST /token                              code, refresh_token, client_credentials
//	GET|POST /userinfo                       claims the person released
//	POST /revoke                             RFC 7009
//	POST /introspect                         RFC 7662
//	GET|POST /logout                         RP-initiated logout
//	POST /register, GET|PUT|DELETE /register/{id}   RFC 7591 / 7592
//
// The authorization request flows through these states:
//
//	/authorize ──(no valid sign-on, or prompt=login, or max_age passed)──► challenge ─► /login ─► /authorize/resume
//	    │                                                                                 │
//	    ├──(consent missing a scope, or prompt=consent, or first use of a fork)──► challenge ─► /consent ─► /authorize/resume
//	    │
//	    └──► code issued to the redirect URI
//
// A challenge is stored in the database (any replica may continue it) with
// the request's parameters; the request is validated again when it resumes.
// prompt=none answers login_required or consent_required instead of showing
// a page. All fosite imports stay in this package.
//
// Automatic registration (OpenID Federation 1.0 §12.1, autoreg.go): a
// client_id that is an entity identifier, with a signed request object at
// /authorize or a push to /par, is resolved through its trust chain
// (Provider.RPResolver), verified, and stored as a federation-registered
// client until the chain's expiry, then resolved again:
//
//	unknown ──(chain to an accepted anchor, request object or assertion verifies, redirect_uri in metadata)──► registered (until the chain's expiry)
//	registered ──(expiry passed: next /authorize, /par or client authentication)──► resolved again ──► registered | refused
//
// Every refusal before the client is trusted is an error page (or the
// push's JSON error), never a redirect.
package oidc
