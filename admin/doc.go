// Package admin is the cloud's administration API, served on its own
// listener (serve --admin-addr, COMMONSID_ADMIN_ADDR; loopback by default,
// "off" for none), never on the public one.
//
// # Routes
//
// Operational, not under /admin/v1:
//
//	GET  /metrics          Prometheus metrics: the registry the public /metrics serves
//	GET  /debug/pprof/...  net/http/pprof (index, cmdline, profile, symbol, trace, named profiles)
//
// The JSON API (every answer application/json, Cache-Control: no-store):
//
//	GET    /admin/v1/accounts?after=HANDLE&limit=N    accounts by handle, N ≤ 500 (default 100); next_after when more
//	GET    /admin/v1/accounts/{ref}                   one account; ref is a handle or a DID
//	POST   /admin/v1/accounts/{ref}/disable           disable: sessions end, tokens revoked
//	POST   /admin/v1/accounts/{ref}/enable
//	DELETE /admin/v1/accounts/{ref}                   delete (the DID and handle stay reserved)
//	POST   /admin/v1/accounts/{ref}/reset-password    {"password": "…"} sets it; {} generates one, shown once
//	GET    /admin/v1/clients
//	GET    /admin/v1/clients/{id}
//	POST   /admin/v1/clients                          RFC 7591 client metadata; answers the registration
//	DELETE /admin/v1/clients/{id}
//	GET    /admin/v1/keys
//	POST   /admin/v1/keys/rotate                      {"alg": "ES256"|"EdDSA"|"RS256"} (default ES256)
//	GET    /admin/v1/peers
//	POST   /admin/v1/peers                            {"issuer": "https://…", "endpoint": "…"}
//	DELETE /admin/v1/peers?issuer=URL
//
// The work is done by a Backend, which the command implements with the
// same functions as its CLI commands (commonsid user, client, keys, peer),
// so that both accept and refuse the same things.
//
// # Authentication
//
// Every route, /metrics and /debug/pprof included, needs
// "Authorization: Bearer <token>", where the token is one of:
//
//   - the admin token of the configuration (COMMONSID_ADMIN_TOKEN or
//     COMMONSID_ADMIN_TOKEN_FILE). Only its SHA-256 is kept in memory and
//     the comparison is in constant time. It may do everything.
//   - an access token this cloud issued through the client credentials
//     grant to a client registered with the scope "admin" (everything) or
//     "admin:read" (GET only, /debug/pprof excepted). It is checked by the token store of the
//     cloud's own token endpoint: expired or revoked tokens, refresh
//     tokens, tokens issued for a person and DPoP-bound tokens are
//     refused.
//
// With neither configured, the listener answers every request 401; serve
// refuses a listener on a non-loopback address without an admin token.
//
// # Errors
//
// Errors are {"error": code, "error_description": text}: 400
// invalid_request, 401 invalid_token (with WWW-Authenticate: Bearer), 403
// insufficient_scope, 404 not_found, 405 method_not_allowed, 409 conflict,
// 413 (bodies are limited to 64 KiB), 500 server_error, 503
// temporarily_unavailable. Request bodies are one JSON object; duplicate
// keys, keys differing from a field only in case and unknown keys are
// refused.
package admin
