// Package keys holds the cloud's secrets: the key-encryption key (KEK) that
// seals every secret at rest, and the cloud's signing keys.
//
// Signing keys live through three states: active (signs new tokens and
// events; one per algorithm), inactive (rotated out, still published in the
// JWKS and the did:web document so earlier signatures keep verifying) and
// retired (no longer published).
package keys
