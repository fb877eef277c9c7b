package oidc

import (
	"bytes"
	"context"
	"strings"

	"github.com/onecommons/commonsid/terms"
)

// The commons' terms at registration (package terms): checkTerms judges
// every registration and update. In commons mode a dynamic registration
// that does not meet the terms is refused with invalid_client_metadata
// naming everything it lacks; in open mode, and for operators (CLI, admin
// API) in any mode, it is registered and marked outside the terms, which
// the consent page and the dashboard say plainly. A commons_commitments
// document, when sent, must be valid in every mode; it is stored in its
// canonical form, whose hash a consent records (consent.go, authorize.go).

// Stored values of x_terms.
const (
	termsMet     = "met"
	termsOutside = "outside"
)

// checkTerms judges md against the commons' terms (after validateFork).
func (g *Registrar) checkTerms(ctx context.Context, md *Metadata) error {
	md.OutsideTerms, md.TermsMissing, md.termsJudged = false, nil, true
	raw := bytes.TrimSpace(md.CommonsCommitments)
	if string(raw) == "null" {
		raw = nil
	}
	svc := terms.Service{SourceCodeURI: md.SourceCodeURI, PolicyURI: md.PolicyURI, TOSURI: md.TOSURI,
		Commitments: raw, ForkReason: md.CommonsForkReason}
	if md.ForkedFrom != "" {
		svc.Fork, svc.ParentSourceCodeURI = true, g.parentSource(ctx, md.ForkedFrom)
	}
	missing := terms.Check(svc)
	if len(missing) > 0 && g.Terms == terms.Commons && !g.Operator {
		return badMeta("this cloud registers only services that meet the commons' terms: %s", strings.Join(missing, "; "))
	}
	if err := terms.CheckForkReason(md.CommonsForkReason); err != nil {
		return badMeta("%v", err)
	}
	md.CommonsCommitments = nil
	if raw != nil {
		c, err := terms.Parse(raw)
		if err != nil {
			return badMeta("%v", err)
		}
		md.CommonsCommitments = c.Canonical()
	}
	if len(missing) > 0 {
		md.OutsideTerms, md.TermsMissing = true, missing
	}
	return nil
}

// parentSource is the source_code_uri of the service a fork names ("" when
// it cannot be read: validateFork has already checked that it exists).
func (g *Registrar) parentSource(ctx context.Context, forkedFrom string) string {
	if issuer, id, ok := strings.Cut(forkedFrom, "#"); ok {
		if g.RemoteService == nil {
			return ""
		}
		rs, err := g.RemoteService(ctx, issuer, id)
		if err != nil {
			return ""
		}
		return rs.SourceCodeURI
	}
	sc, err := g.Store.GetClient(ctx, forkedFrom)
	if err != nil {
		return ""
	}
	parent, err := clientFromStored(sc)
	if err != nil {
		return ""
	}
	return parent.SourceCodeURI
}

// termsLabel is the x_terms stored for m: "" when it was never judged.
func termsLabel(m *Metadata) string {
	switch {
	case !m.termsJudged:
		return ""
	case m.OutsideTerms:
		return termsOutside
	}
	return termsMet
}

// decodeTerms sets the terms fields of a stored client. One stored before
// the terms (no x_terms) is judged on what it holds, without the fork rule
// (which needs its parent).
func decodeTerms(m *Metadata, label string, missing []string) {
	switch label {
	case termsMet:
		m.termsJudged = true
	case termsOutside:
		m.termsJudged, m.OutsideTerms, m.TermsMissing = true, true, missing
	default:
		if m.Peer {
			return
		}
		m.TermsMissing = terms.Check(terms.Service{SourceCodeURI: m.SourceCodeURI, PolicyURI: m.PolicyURI, TOSURI: m.TOSURI,
			Commitments: m.CommonsCommitments, ForkReason: m.CommonsForkReason})
		m.OutsideTerms = len(m.TermsMissing) > 0
	}
}

// TermsHash is the hash of the service's commitments ("" for none): what a
// consent records.
func (m *Metadata) TermsHash() string { return terms.HashOf(m.CommonsCommitments) }

// TermsView is what the pages show of the service's standing with the
// terms; changed says that its commitments changed since the consent.
func (m *Metadata) TermsView(changed bool) *terms.View {
	return terms.ViewOf(m.CommonsCommitments, m.OutsideTerms, changed, nil)
}

// registeredTerms fills the terms members of a registration's answer.
func registeredTerms(out *Registered) {
	out.CommonsTerms, out.CommonsTermsMissing = termsMet, nil
	if out.OutsideTerms {
		out.CommonsTerms, out.CommonsTermsMissing = termsOutside, out.TermsMissing
	}
}

// TermsOf reads a stored client's standing with the terms: "met" or
// "outside", and what an outside one lacks.
func TermsOf(raw []byte) (label string, missing []string, err error) {
	m, err := decodeMetadata(raw)
	if err != nil {
		return "", nil, err
	}
	if m.OutsideTerms {
		return termsOutside, m.TermsMissing, nil
	}
	return termsMet, nil, nil
}
