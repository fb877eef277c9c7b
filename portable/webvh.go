package portable

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
)

// ErrBadLog reports a did:webvh account's export whose log does not verify
// or does not belong to the account.
var ErrBadLog = errors.New("export file's DID log does not verify")

// embeddedLog is the did:webvh log an export carries, verified.
type embeddedLog struct {
	res *webvh.Result
	doc *did.Document // its current document, as resolving its DID gives it
	// witnessed reports that every entry that had to be witnessed met its
	// threshold with the witness file carried beside the log.
	witnessed bool
}

// verifyEmbeddedLog verifies the log of accountDID carried in an export,
// offline: every rule of did:webvh, and, when the carried witness file
// meets the log's threshold, witnessed. A log whose last entries lack
// witness proofs (the witnesses were out of reach when the home made
// them) is still read, unwitnessed: an import checks the latest log of
// the federation, witnessed, before it relies on the file's.
//
// accountDID (the account's first DID) must be the DID of the log's first
// entry, or, for a did:key account given a did:webvh DID later, the
// did:key of the genesis entry's first update key (the same custodial
// key).
func verifyEmbeddedLog(accountDID string, log, witness []byte) (*embeddedLog, error) {
	var wf func() ([]byte, error)
	if len(witness) > 0 && string(witness) != "null" {
		wf = func() ([]byte, error) { return witness, nil }
	}
	out := &embeddedLog{witnessed: true}
	res, err := webvh.Verify(log, webvh.Options{Witness: wf})
	if errors.Is(err, webvh.ErrWitness) {
		l, oerr := webvh.Open(log, webvh.Options{})
		if oerr != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadLog, oerr)
		}
		res, err, out.witnessed = l.Result(), nil, false
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadLog, err)
	}
	out.res = res
	first := res.Entries[0]
	switch {
	case identity.IsWebVH(accountDID):
		if first.DID != accountDID {
			return nil, fmt.Errorf("%w: the log is of %s, not of account.did %s", ErrBadLog, truncate([]byte(first.DID)), truncate([]byte(accountDID)))
		}
	case strings.HasPrefix(accountDID, "did:key:"):
		if len(first.UpdateKeys) == 0 || accountDID != "did:key:"+first.UpdateKeys[0] || !slices.Contains(first.Signers, first.UpdateKeys[0]) {
			return nil, fmt.Errorf("%w: the log's genesis key is not the key of account.did %s", ErrBadLog, truncate([]byte(accountDID)))
		}
	default:
		return nil, fmt.Errorf("%w: account.did %q is neither a did:key nor a did:webvh", ErrWrongKey, truncate([]byte(accountDID)))
	}
	if res.Metadata.Deactivated {
		return nil, fmt.Errorf("%w: the account's DID is deactivated", ErrBadLog)
	}
	if out.doc, err = did.WebVHDocument(res); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadLog, err)
	}
	return out, nil
}

// isPrefix reports whether the entries of a are the first entries of b.
func isPrefix(a, b *webvh.Result) bool {
	if len(a.Entries) > len(b.Entries) {
		return false
	}
	for i := range a.Entries {
		if a.Entries[i].VersionID != b.Entries[i].VersionID {
			return false
		}
	}
	return true
}
