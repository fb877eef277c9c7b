// Package loadtest drives load against a running Commons ID server through
// its standard endpoints only, and measures what a relying party would see.
//
// Run discovers the endpoints from /.well-known/openid-configuration, then,
// for each scenario and each concurrency level, it:
//
//  1. sets up what the scenario needs (a client registered with RFC 7591, a
//     person created through /signup, one signed-in browser per virtual
//     client, a remembered consent, a refresh-token chain per virtual client);
//  2. runs every virtual client in a closed loop for the warm-up time and
//     discards what it measured;
//  3. reads process_resident_memory_bytes from /metrics;
//  4. runs the loop again for the measured time, recording one latency per
//     successful operation and counting failures.
//
// Every loop is bounded by its deadline: a virtual client starts no new
// operation after it and lets the one in flight finish. Every request goes to
// the configured base URL, whatever host the discovery document names.
//
// The scenarios (see Scenarios):
//
//	client_credentials  POST token, grant_type=client_credentials
//	code_flow           GET authorize → POST token → GET userinfo, one flow per op
//	refresh             POST token, grant_type=refresh_token, one rotating chain per client
//	introspection       POST introspect with an active access token
//	jwks                GET jwks_uri
//	discovery           GET /.well-known/openid-configuration
//
// Load figures are quoted in docs/benchmarks.md; nothing here asserts them.
package loadtest
