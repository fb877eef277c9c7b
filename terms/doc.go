// Package terms holds the commons' terms for services: the commitments
// document a service registers (client metadata commons_commitments), its
// validation, its stable hash, its plain-words rendering, and the
// registration policy of a cloud (--service-terms).
//
// # The commitments document
//
// A JSON object (schema: docs/commitments.schema.json), at most MaxSize
// bytes, unknown, duplicated or case-variant keys refused:
//
//	{
//	  "version": 1,
//	  "keeps":  [{"claim": "email", "retention": "P1Y", "purpose": "receipts"},
//	             {"scope": "profile", "retention": "session"}],
//	  "forks":  {"shares": "none" | "pairwise_ids" | "claims", "claims": ["email"]},
//	  "export": true
//	}
//
// keeps lists what the service keeps after a sign-in, per claim or per
// scope (exactly one of the two per entry, each named once), for how long:
// an ISO 8601 duration (PnYnMnWnDTnHnMnS, integer parts, not zero) or
// "session" (only while the person is signed in). An empty list keeps
// nothing. forks says what the service shares with forks of it: nothing,
// the family's pairwise identifiers, or the listed claims (then only).
// export must be true: people may export what the service holds on them.
//
// Parse returns the document normalised (entries sorted); Canonical is its
// JSON Canonicalization Scheme (RFC 8785) form and Hash the SHA-256 of
// that. Two documents that say the same thing in another order or spacing
// have the same hash; a change of any commitment changes it.
//
// # The policy (Mode)
//
// A cloud registers services in one of two modes:
//
//   - open (the default): every relying party registers as before; one
//     that does not meet the terms is labelled "not a commons service".
//   - commons: dynamic registration (and its updates) requires what Check
//     lists: source_code_uri (https), policy_uri, tos_uri and a valid
//     commons_commitments; a fork's source_code_uri must differ from its
//     parent's unless commons_fork_reason says why. A registration that
//     lacks any of them is refused, naming every one.
//
// Operators (CLI, admin API) may register a service outside the terms in
// either mode; it is then labelled too.
//
// # Consents
//
// A consent records the hash of the commitments the person saw. When the
// service's commitments change, the consent no longer stands: the consent
// page is shown again (prompt=none gets consent_required) before any claim
// is released, and the dashboard flags the service until then.
package terms
