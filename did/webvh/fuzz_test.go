package webvh

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// refusals are the errors Verify may return.
var refusals = []error{ErrInvalidDID, ErrTooLarge, ErrMalformed, ErrVersionID, ErrEntryHash, ErrVersionTime,
	ErrParameters, ErrSCID, ErrState, ErrProof, ErrUnauthorized, ErrPreRotation, ErrPortable, ErrDeactivated,
	ErrWitness, ErrDIDMismatch}

// FuzzWebVHLog feeds arbitrary logs and witness files to Verify: it must
// never panic, every refusal must wrap one of the Err values, and whatever
// it accepts must be self-consistent (the accepted entries verify again to
// the same result, and the DID parses). The seed corpus
// (testdata/fuzz/FuzzWebVHLog) holds published logs, valid and invalid, and
// runs as an ordinary test.
func FuzzWebVHLog(f *testing.F) {
	f.Add([]byte(`{"versionId":"1-x","versionTime":"2026-01-01T00:00:00Z","parameters":{},"state":{},"proof":[]}`), []byte(`[]`))
	now := func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }
	f.Fuzz(func(t *testing.T, log, witness []byte) {
		opts := Options{Now: now, Witness: func() ([]byte, error) { return witness, nil }, AllowInvalidTail: len(log)%2 == 1}
		res, err := Verify(log, opts)
		if err != nil {
			for _, known := range refusals {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("refusal %v wraps none of the Err values", err)
		}
		if len(res.Entries) == 0 || res.Metadata.VersionID != res.Entries[len(res.Entries)-1].VersionID {
			t.Fatalf("accepted with inconsistent result %+v", res.Metadata)
		}
		if _, err := ParseDID(res.DID); err != nil {
			t.Fatalf("accepted DID %q does not parse: %v", res.DID, err)
		}
		var again bytes.Buffer
		for _, e := range res.Entries {
			again.Write(e.Line)
			again.WriteByte('\n')
		}
		opts.AllowInvalidTail = false
		res2, err := Verify(again.Bytes(), opts)
		if err != nil {
			t.Fatalf("the accepted entries do not verify again: %v", err)
		}
		if res2.Metadata.VersionID != res.Metadata.VersionID || res2.DID != res.DID {
			t.Fatalf("re-verification differs: %s %s vs %s %s", res2.DID, res2.Metadata.VersionID, res.DID, res.Metadata.VersionID)
		}
	})
}
