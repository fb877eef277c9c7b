package portable

import (
	"errors"

	"github.com/onecommons/commonsid/identity"
)

// explanations are the sentences people read for each refusal.
var explanations = []struct {
	err error
	msg string
}{
	{ErrTooLarge, "the file is larger than 50 MiB"},
	{ErrMalformed, "the file is not a Commons ID export (truncated, or not JSON)"},
	{ErrDuplicateKey, "the file repeats a JSON key: refused as ambiguous"},
	{ErrUnknownVersion, "the file's format version is not one this cloud reads"},
	{ErrBadSignature, "a signature of the file does not verify: it was changed after export"},
	{ErrWrongKey, "the file is not signed by the key of the account's DID"},
	{ErrCloudSignature, "the exporting cloud's signature cannot be verified against its did:web document"},
	{ErrWrongPassphrase, "wrong passphrase"},
	{ErrKeyMismatch, "the key in the file does not match the account's DID"},
	{ErrWeakEncryption, "the file's encryption is weaker than this cloud accepts"},
	{ErrShortPassphrase, "the passphrase must be at least 12 characters"},
	{ErrAlreadyPresent, "this account is already on this cloud"},
	{ErrOlderExport, "the file is older than the account on this cloud: a replayed export would undo later changes"},
	{ErrHandleTaken, "the handle is taken on this cloud: choose another"},
	{identity.ErrHashOutOfBounds, "the password hash in this export uses argon2id parameters outside what this cloud accepts (" + identity.Argon2Bounds + ")"},
	{identity.ErrWebVHExport, "accounts with a did:webvh DID cannot be exported yet: an export file carries a did:key account, and the cloud importing it would not hold the DID's log"},
	{identity.ErrMalformedHash, "the password hash in this export is not an argon2id hash this cloud can read"},
}

// Explain returns the sentence for an export or import refusal, or "" for
// an error that is not one.
func Explain(err error) string {
	for _, e := range explanations {
		if errors.Is(err, e.err) {
			return e.msg
		}
	}
	return ""
}
