// Package safehttp is the one HTTP client through which Commons ID fetches
// documents named by outside parties: a client's sector_identifier_uri and
// jwks_uri, did:web documents, and the discovery, keys and feeds of peer
// clouds. Whoever names the URL must not be able to make the cloud reach
// its own network.
//
// The rules, applied to every request and to every redirect hop:
//
//   - Addresses are checked after DNS resolution, at dial time: every address
//     a name resolves to must be public, and the connection is made to an
//     address that was checked (and checked again by the dialer's Control
//     hook), so a name that resolves differently on a second lookup (DNS
//     rebinding) gains nothing. Refused: loopback (127.0.0.0/8, ::1),
//     private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
//     (169.254/16 with the 169.254.169.254 metadata service, fe80::/10),
//     unspecified and "this network" (0/8, ::), multicast, CGNAT
//     (100.64/10), the IETF, benchmarking and reserved IPv4 ranges, and the
//     IPv4-mapped, IPv4-compatible, NAT64 and 6to4 forms of all of these.
//     Environment proxies are never used: a proxy would dial on our behalf
//     and escape the check.
//   - Loopback is allowed only with Options.AllowLoopback, which a cloud sets
//     only when its own issuer is on a loopback host (development and test
//     clouds, which federate over 127.0.0.1). An operator can deny loopback
//     even then (COMMONSID_OUTBOUND_LOOPBACK=deny).
//   - https is required; plain http only to a loopback host, and only when
//     loopback is allowed. URLs with user info are refused.
//   - Redirects are followed only to the same origin (scheme, host and port),
//     at most MaxRedirects of them; a redirect to another host is refused.
//   - Every call has a total time limit (Options.Timeout, default 5 s) and a
//     response size limit (Options.MaxBytes, default 256 KiB; per call with
//     Get). The streaming client (Client.Streaming) has neither, for
//     long-lived feeds whose readers bound time and size themselves; it
//     keeps the address, scheme and redirect rules.
//   - Errors say only "could not fetch URL", naming the URL the caller asked
//     for: nothing about what answered (or did not) reaches whoever named
//     the URL. The cause is logged (refusals at warn, other failures at
//     debug) and the kind is kept for errors.Is: ErrRefused, ErrTooLarge,
//     ErrTimeout, ErrStatus, ErrFailed.
//
// Client.Refused counts refused requests, RefusedByReason by reason, and
// Client.Collector exposes them as commonsid_outbound_refused_total{reason}.
package safehttp
