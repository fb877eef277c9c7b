package terms

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary documents to the commitments parser. A
// refusal is an *Error naming commons_commitments; an accepted document
// is within the limits, describes itself in plain words, and parses back
// from its canonical form to the same hash.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		good,
		`{"version":1,"keeps":[],"forks":{"shares":"none"},"export":true}`,
		`{"version":1,"keeps":[{"scope":"email","retention":"PT12H"}],"forks":{"shares":"pairwise_ids"},"export":true}`,
		`{"version":1,"keeps":[{"claim":"email","retention":"P1Y"}],"Keeps":[],"forks":{"shares":"none"},"export":true}`,
		`{"version":1,"keeps":[{"claim":"email","retention":"P0Y"}],"forks":{"shares":"claims","claims":[]},"export":false}`,
		`{"version":1e0}`, `null`, `[]`, `{`, `"x"`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := Parse(raw)
		if err != nil {
			var te *Error
			if !errors.As(err, &te) || len(te.Problems) == 0 || !strings.HasPrefix(te.Problems[0], "commons_commitments") {
				t.Fatalf("refusal %v is not a commitments error", err)
			}
			return
		}
		if len(raw) > MaxSize || c.Version != 1 || !c.Export || len(c.Keeps) > MaxKeeps {
			t.Fatalf("accepted out of bounds: %+v", c)
		}
		if len(Describe(c, nil)) < 2 {
			t.Fatalf("Describe says too little: %q", Describe(c, nil))
		}
		again, err := Parse(c.Canonical())
		if err != nil {
			t.Fatalf("canonical form %s does not parse: %v", c.Canonical(), err)
		}
		if again.Hash() != c.Hash() || !bytes.Equal(again.Canonical(), c.Canonical()) {
			t.Fatalf("canonical form is not stable")
		}
	})
}
