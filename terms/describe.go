package terms

import (
	"fmt"
	"strings"
)

// Describe renders the commitments in plain words, one sentence a line,
// in the language of w (English when nil): what is kept and for how long,
// what forks receive, and that people may export their data.
func Describe(c *Commitments, w *Words) []string {
	if w == nil {
		w = &English
	}
	var out []string
	if len(c.Keeps) == 0 {
		out = append(out, w.KeepsNothing)
	}
	for _, k := range c.Keeps {
		what := w.claim(k.Claim)
		if k.Scope != "" {
			what = w.scope(k.Scope)
		}
		r, _ := ParseRetention(k.Retention)
		line := fmt.Sprintf(w.KeepsSession, what)
		if !r.Session {
			line = fmt.Sprintf(w.KeepsFor, what, w.duration(r))
		}
		if k.Purpose != "" {
			line += " " + fmt.Sprintf(w.Purpose, k.Purpose)
		}
		out = append(out, line)
	}
	switch c.Forks.Shares {
	case SharesNone:
		out = append(out, w.ForksNone)
	case SharesPairwise:
		out = append(out, w.ForksPairwise)
	case SharesClaims:
		names := make([]string, len(c.Forks.Claims))
		for i, cl := range c.Forks.Claims {
			names[i] = w.claim(cl)
		}
		out = append(out, fmt.Sprintf(w.ForksClaims, w.list(names)))
	}
	if c.Export {
		out = append(out, w.Export)
	}
	return out
}

func (w *Words) claim(c string) string {
	if s, ok := w.Claim[c]; ok {
		return s
	}
	return fmt.Sprintf(w.OtherClaim, c)
}

func (w *Words) scope(s string) string {
	if v, ok := w.Scope[s]; ok {
		return v
	}
	return fmt.Sprintf(w.OtherScope, s)
}

func (w *Words) duration(r Retention) string {
	var parts []string
	for i, n := range r.Parts {
		switch {
		case n == 1:
			parts = append(parts, "1 "+w.Units[i][0])
		case n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", n, w.Units[i][1]))
		}
	}
	return w.list(parts)
}

// list joins "a", "a and b", "a, b and c".
func (w *Words) list(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + w.And + " " + items[len(items)-1]
}

// View is what a page shows of a service's standing with the terms.
type View struct {
	// Outside: the service does not meet the terms (Label, Why).
	Outside    bool
	Label, Why string
	// Heading and Lines: the commitments in plain words (Lines holds
	// NoCommitments when there are none).
	Heading string
	Lines   []string
	// Changed: the commitments changed since the person consented
	// (ChangedText).
	Changed     bool
	ChangedText string
}

// ViewOf is the View of a service whose stored commitments are raw.
func ViewOf(raw []byte, outside, changed bool, w *Words) *View {
	if w == nil {
		w = &English
	}
	v := &View{Outside: outside, Label: w.NotCommons, Why: w.NotCommonsWhy, Heading: w.Heading, Changed: changed, ChangedText: w.Changed}
	if c, err := Parse(raw); len(raw) > 0 && err == nil {
		v.Lines = Describe(c, w)
	} else {
		v.Lines = []string{w.NoCommitments}
	}
	return v
}
