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
	{ErrBadLog, "the DID log in the file does not verify, or is not the log of the account it names"},
	{ErrExportSuperseded, "this export was made before the account's latest move or key change: use a newer export, or your recovery phrase"},
	{ErrNotInHistory, "the file does not belong to this account's history: its DID log is not part of the account's latest log"},
	{ErrNoLatestLog, "the account's latest DID log could not be found: neither this cloud nor a reachable peer holds a witnessed copy of it"},
	{ErrRecoveryRequired, "this account has a recovery kit: enter its recovery phrase to move it"},
	{ErrWrongRecovery, "the recovery phrase is not the one of this account's recovery kit"},
	{identity.ErrRecoveryPhrase, "the recovery phrase is not valid: it is 24 words of the recovery word list"},
	{ErrMoveLost, "another move or change of this account was confirmed by the witnesses first: nothing was changed here"},
	{ErrMoveNotWitnessed, "not enough of the commons' witnesses confirmed the move (some clouds may be unreachable): nothing was changed here, try again later"},
	{ErrMoveRace, "the account changed on this cloud during the import: nothing was changed, try again"},
	{ErrNoFederation, "this cloud cannot move did:webvh accounts"},
	{identity.ErrPersonKeyRequired, "only the person's recovery key can make this change"},
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
