// Package identity owns accounts: handles, profile claims, credentials
// (argon2id passwords and passkeys), browser sign-on sessions, and the
// custodial did:key of each account.
//
// An account is identified by its DID, never by a database row id. At
// creation it gets a fresh Ed25519 did:key and a 32-byte pairwise secret; both
// are sealed with the cloud's key-encryption key before they reach the store.
//
// Account states: active → disabled → active (reversible); active|disabled →
// deleted (personal data and secrets removed; the DID and handle stay as a
// tombstone so the handle cannot be taken over).
package identity
