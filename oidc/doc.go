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
package oidc
