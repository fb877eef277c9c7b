package webvh

import (
	"context"
	"errors"
	"fmt"
)

// Fetcher retrieves the document at an HTTPS URL. It is supplied by the
// caller, whose client decides which addresses may be reached, the timeout
// and the size limit. It should return an error wrapping ErrNotFound when
// the server answers 404.
type Fetcher func(ctx context.Context, url string) ([]byte, error)

// ErrNotFound is what a Fetcher wraps when there is no document at the URL.
var ErrNotFound = errors.New("not found")

// Resolve fetches and verifies the log of a did:webvh DID: did.jsonl from
// [Identifier.LogURL], and did-witness.json from [Identifier.WitnessURL]
// only when the log uses witnesses. opts.DID is set to did.
func Resolve(ctx context.Context, did string, fetch Fetcher, opts Options) (*Result, error) {
	id, err := ParseDID(did)
	if err != nil {
		return nil, err
	}
	lim := opts.limits()
	log, err := fetch(ctx, id.LogURL())
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", id.LogURL(), err)
	}
	if len(log) > lim.MaxLogBytes {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, id.LogURL(), lim.MaxLogBytes)
	}
	opts.DID = did
	opts.Witness = func() ([]byte, error) {
		b, err := fetch(ctx, id.WitnessURL())
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", id.WitnessURL(), err)
		}
		return b, nil
	}
	return Verify(log, opts)
}
