// Package access records a person's contribution level in the commons: the
// access they have to the services of the clouds, released to services as
// the claim commons_access (scope commons).
//
// Levels: "basic", which everyone has, and the levels a cloud defines
// (COMMONSID_ACCESS_LEVELS, "enhanced" when unset). A grant names one
// level, when it ends (expires_at), who set it (source: "operator" for the
// CLI and the admin API, "notice:<service>" for a signed notice of a payment
// service) and when (set_at). An account has at most one grant; a new one
// replaces it. A grant past its expiry counts as "basic": nothing has to run
// at the moment it ends.
//
// States of an account's level:
//
//	basic (no grant) ──set──► LEVEL until T ──T passes──► basic (grant kept, expired)
//	        ▲                       │
//	        └──── set basic ────────┘  (a new grant replaces the old one)
//
// Rules:
//
//   - Only the account's home cloud sets a grant. Peers that the person
//     shares their account with hold the home's grant with the replica
//     (federation), and release it like their own; an export carries it
//     and an import restores it.
//   - A notice (POST /commons/v1/contributions) is accepted only when its
//     Commons-Signature header is an HMAC-SHA256, under the secret the cloud
//     shares with one payment service, of "t.body" with t within five
//     minutes of now; the comparison is constant-time. The body is at most
//     16 KiB. A notice id is accepted once per service (the replay of a
//     notice is 409); a wrong signature is 401, an unknown level 400, and
//     a refused notice changes nothing.
//   - The secrets live in the configuration only
//     (COMMONSID_CONTRIBUTION_SECRETS), never in the database: they must be
//     usable as HMAC keys.
//   - The claim is an object {"level": L, "expires_at": RFC 3339} ("basic"
//     without expires_at), released under the same consent and policy rules
//     as every claim (privacy.Release).
package access
