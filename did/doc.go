// Package did creates and resolves Decentralized Identifiers (W3C DID Core) and
// signs and verifies JWS with their keys.
//
// Supported methods:
//
//   - did:key  (Ed25519, P-256): created here for every account; resolved offline.
//   - did:jwk  resolved offline from the embedded JWK.
//   - did:web  resolved by an HTTPS GET of the document (plain HTTP only for
//     localhost), with a 5 s timeout and a 256 KiB limit, through the
//     guarded outbound client (internal/safehttp: no private, link-local
//     or metadata addresses, loopback only where allowed, no redirects).
//
// Third-party DID libraries are used only inside this package; callers see the
// small API here: [NewKey], [Resolver.Resolve], [Sign], [Resolver.Verify],
// [WebDID] and the [Document] type.
package did
