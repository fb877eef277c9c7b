// Package oidfed implements what a Commons ID cloud needs of OpenID
// Federation 1.0: entity statements, trust chains and trust marks.
//
// # Statements
//
// An entity statement is a compact JWS with the header typ
// "entity-statement+jwt" and a kid, signed with ES256, ES384, ES512, EdDSA,
// RS256 or PS256 (never "none"), at most MaxStatementBytes long. Its claims
// are iss, sub (entity identifiers: https URLs, plain http only on loopback
// hosts), iat, exp, jwks, and optionally authority_hints, metadata,
// trust_marks and source_endpoint. A statement is refused when its kid is
// not in the verifying key set, its signature does not verify, it is issued
// in the future or has expired (DefaultSkew either way), exp is not after
// iat, it names a crit claim or header (no extension is understood here),
// or it carries metadata_policy (policies are not applied here, so a chain
// that has one is refused rather than read without its restrictions).
//
// An entity configuration is the statement an entity makes about itself
// (iss = sub), served at WellKnownPath under its entity identifier and
// verified with its own jwks. A subordinate statement is what a superior
// says about an entity below it, served by the superior's
// federation_fetch_endpoint (FetchPath?sub=); its jwks are the keys the
// subordinate's own configuration must verify with.
//
// # Trust chains
//
// Resolver.Resolve walks from a leaf's configuration up its
// authority_hints to a configured trust anchor: at each step it fetches the
// superior's configuration, then the superior's subordinate statement about
// the entity below, and checks that the statement verifies with the
// superior's keys and that the entity's configuration verifies with the
// keys the statement names. The anchor's configuration must verify with
// the keys configured for the anchor here. States of a resolution:
//
//   - resolved: a Chain, valid until Chain.Expiry, the least exp of its
//     statements;
//   - ErrNotSubordinate: a superior answered 404 for the entity (it is not,
//     or no longer, a member);
//   - ErrLoop: the authority hints lead back to an entity already on the
//     path;
//   - ErrInvalid, ErrExpired, ErrTooLarge: a statement broke a rule above;
//   - ErrNoChain: no path to a configured anchor within the bounds
//     (MaxDepth statements above the leaf, MaxFetches fetches, Timeout for
//     the whole resolution).
//
// Every fetch goes through the HTTP client the caller gives, which for a
// cloud is the guarded outbound client (internal/safehttp).
//
// # Trust marks
//
// A trust mark is a compact JWS with typ "trust-mark+jwt" and the claims
// iss, sub, trust_mark_type, iat and exp. A cloud acting as a trust anchor
// issues TrustMarkType(anchor, KindCommonsCloud) to the clouds it lists as
// members and TrustMarkType(anchor, KindCommonsService) to services that
// keep the commons' terms. A chain keeps the leaf's trust marks that verify
// with the anchor's keys, name the leaf as sub and have not expired.
//
// # Serving
//
// Entity serves an entity's configuration and, when it has subordinates,
// the federation_fetch_endpoint and federation_list_endpoint. Subordinate
// statements live StatementTTL (DefaultStatementTTL unless configured): a
// member removed at the anchor stops being vouched for within that time
// even by a resolver that cannot reach the anchor.
package oidfed
