// Package webvh implements the did:webvh DID method, version 1.0 (DIF
// "did:webvh" — did:web + Verifiable History, https://identity.foundation/didwebvh/v1.0/).
//
// A did:webvh DID is did:webvh:{SCID}:{host}[:path…]. Its history is a
// JSON Lines log (did.jsonl) of entries
//
//	{"versionId": "N-{entryHash}", "versionTime": "…Z", "parameters": {…}, "state": {DID document}, "proof": [DataIntegrityProof]}
//
// published at the HTTPS location derived from the DID ([Identifier.LogURL]),
// with witness proofs, when witnesses are configured, beside it in
// did-witness.json ([Identifier.WitnessURL]).
//
// # States
//
// A DID is, after each verified entry, in one of these states:
//
//   - active: the last entry verified and did not deactivate; it can be
//     updated by an authorized key (below).
//   - active, pre-rotation: as active, and the last entry committed to
//     nextKeyHashes; the next entry must reveal update keys whose hashes
//     were committed.
//   - deactivated: an entry set "deactivated": true. No entry may follow;
//     resolvers report the DID as deactivated and do not return its document.
//
// A log that breaks any rule below is refused as a whole ([Verify] returns an
// error naming the entry and the rule, wrapping one of the Err… values).
//
// # Rules checked by Verify
//
//   - Entries: each line is one JSON object (RFC 8259, no duplicate keys,
//     nesting bounded) with exactly versionId, versionTime, parameters, state
//     and proof; no blank lines except a final newline.
//   - SCID: the first entry's parameters.scid equals
//     base58btc(multihash-sha256(JCS(first entry without proof, versionId
//     "{SCID}", every occurrence of the SCID replaced by "{SCID}"))).
//   - versionId: "N-hash" with N = 1, 2, 3… and exactly one dash; hash is
//     base58btc(multihash-sha256(JCS(entry without proof, versionId set to
//     the previous entry's versionId, or to the SCID for the first entry))).
//     This chains the entries: reordering, removing, duplicating or editing
//     one breaks every hash after it.
//   - versionTime: RFC 3339 in UTC ("Z" or "+00:00"), strictly increasing,
//     and not more than [Options.MaxClockSkew] in the future.
//   - proof: one or more Data Integrity proofs, each of type
//     DataIntegrityProof, cryptosuite eddsa-jcs-2022, proofPurpose
//     assertionMethod, a valid created time if present, verificationMethod
//     did:key:{K}#{K} where K appears verbatim in the active updateKeys, and
//     a valid Ed25519 signature over SHA-256(JCS(proof options)) ‖
//     SHA-256(JCS(entry without proof)).
//   - Active updateKeys: the entry's own for the first entry and while
//     pre-rotation is active, otherwise the most recent earlier entry's.
//   - Pre-rotation: once nextKeyHashes is non-empty, the next entry must set
//     updateKeys and nextKeyHashes explicitly, and the hash
//     base58btc(multihash-sha256(multikey)) of every one of its updateKeys
//     must be among the committed hashes. Setting nextKeyHashes to [] ends
//     pre-rotation after that entry.
//   - Parameters: only those of v1.0 (method, scid, updateKeys,
//     nextKeyHashes, witness, watchers, portable, deactivated, ttl), well
//     typed; JSON null reads as the parameter's default. method must be
//     exactly "did:webvh:1.0" (required first); scid only in the first entry;
//     updateKeys required first, Ed25519 multikeys, no duplicates; portable
//     may be true only in the first entry and once false stays false; ttl
//     0…2^31; deactivated once true ends the log.
//   - state: a JSON object whose id is a well-formed did:webvh DID with the
//     log's SCID. The id may change host or path only while portable, and the
//     new document must list the previous DID in alsoKnownAs; the SCID never
//     changes.
//   - Witnesses: witness is {} or {"threshold": n, "witnesses": [{"id":
//     did:key Ed25519}…]} with distinct ids and 1 ≤ n ≤ len. An entry is
//     witnessed by the configuration active before it, or by its own
//     configuration when none was active (a change from {} takes effect at
//     once; any other change after the entry). Each such entry needs proofs
//     (eddsa-jcs-2022 over {"versionId": …}) from n distinct listed witnesses
//     on its own versionId or a later published one. Proofs on versionIds not
//     in the log, by unlisted keys, or not verifying are ignored. Witness
//     proofs are read only after every other check has passed.
//   - Resolving a given DID: its SCID must match, and at least one entry's
//     state.id must equal it.
//
// # Limits
//
// Everything read from outside is bounded ([Limits]): the log size, the
// number of entries, the length of one line, the JSON nesting depth, the
// witness file size, the number of keys, hashes, witnesses, watchers and
// proofs, and the length of a DID.
//
// # Not fetched here
//
// This package never opens a connection. [Resolve] reads the log and the
// witness file through a [Fetcher] supplied by the caller, which is where
// the guarded HTTP client, timeouts and size limits of the deployment live.
package webvh
