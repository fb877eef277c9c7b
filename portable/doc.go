// Package portable builds and reads the account export file,
// commonsid.export/v1: one JSON document that carries everything a person's
// account is made of, signed twice (by the account's DID key and by the
// exporting cloud) and holding the custodial DID key and the pairwise secret
// encrypted under a passphrase the person chose.
//
// The package is pure: [Export] turns an [Input] the caller loaded from its
// stores into file bytes, and [Open] verifies and decrypts a file into an
// [Opened] value without writing anything. Wiring it to the database, the
// HTTP pages and the CLI is left to the callers.
//
// Open checks, in order, and reports each failure with its own sentinel
// error (test with errors.Is):
//
//  1. size                                   [ErrTooLarge]
//  2. JSON and JWS JSON structure            [ErrMalformed]
//  3. duplicate object keys                  [ErrDuplicateKey]
//  4. format version                         [ErrUnknownVersion]
//  5. signature count, algorithms, headers   [ErrBadSignature]
//  6. account signature: kid, key, document  [ErrWrongKey], [ErrBadSignature]
//     (a did:webvh account: the log the file carries, verified offline,
//     gives the key                           [ErrBadLog])
//  7. cloud signature: did:web of the issuer [ErrCloudSignature], [ErrBadSignature]
//     (a did:webvh account: a cloud out of reach or a retired key is
//     noted in Opened.CloudUnverified, not refused)
//  8. encryption parameters                  [ErrMalformed], [ErrWeakEncryption]
//  9. decryption under the passphrase        [ErrWrongPassphrase]
//  10. the decrypted key makes account.did   [ErrKeyMismatch]
//
// Importing a did:webvh account moves its DID to the importing cloud, with
// the federation's witnesses (movewebvh.go).
//
// The format is described in docs/export-format.md and, for the payload
// document, by the JSON Schema in schema/export-v1.schema.json.
package portable
