package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/oidfed"
)

// rpResolver resolves, for automatic registration (oidc/autoreg.go), a
// relying party's trust chain to a trust anchor this cloud accepts: the
// anchors it joined (commons join) and those listed in
// COMMONSID_OIDFED_TRUST_ANCHORS, whose keys are read from their own
// entity configuration, fetched over https through the guarded client.
type rpResolver struct {
	http   *http.Client
	joined func(ctx context.Context) ([]*oidfed.Anchor, error) // nil: none
	listed []string
	now    func() time.Time
}

var _ oidc.RPResolver = (*rpResolver)(nil)

// trustAnchors are the entity identifiers of COMMONSID_OIDFED_TRUST_ANCHORS.
func (c *Config) trustAnchors() []string {
	var out []string
	for _, a := range strings.Split(c.OIDFedTrustAnchors, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, strings.TrimSuffix(a, "/"))
		}
	}
	return out
}

func (c *Config) validateTrustAnchors() []error {
	var errs []error
	for _, a := range c.trustAnchors() {
		if err := oidfed.CheckEntityID(a); err != nil {
			errs = append(errs, fmt.Errorf("COMMONSID_OIDFED_TRUST_ANCHORS: %w", err))
		}
	}
	return errs
}

// newRPResolver builds the resolver of a serving cloud; db gives the
// joined anchors when the store keeps them.
func newRPResolver(cfg *Config, db any, hc *http.Client) *rpResolver {
	r := &rpResolver{http: hc, listed: cfg.trustAnchors(), now: time.Now}
	if s, ok := db.(interface {
		ListAnchors(ctx context.Context) ([]*oidfed.Anchor, error)
	}); ok {
		r.joined = s.ListAnchors
	}
	return r
}

// anchors returns the accepted anchors and their keys. A listed anchor
// whose configuration cannot be fetched or verified accepts nobody until
// it can.
func (r *rpResolver) anchors(ctx context.Context) (map[string]*jose.JSONWebKeySet, error) {
	out := map[string]*jose.JSONWebKeySet{}
	if r.joined != nil {
		list, err := r.joined(ctx)
		if err != nil {
			return nil, err
		}
		out = oidfed.AnchorKeys(list)
	}
	for _, id := range r.listed {
		if _, ok := out[id]; ok {
			continue
		}
		st, err := (&oidfed.Resolver{HTTP: r.http, Now: r.now}).FetchConfiguration(ctx, id)
		if err != nil || st.JWKS == nil {
			continue
		}
		out[id] = st.JWKS
	}
	return out, nil
}

// ResolveRP resolves entityID's chain and reads its openid_relying_party
// metadata and the trust marks its anchor issued.
func (r *rpResolver) ResolveRP(ctx context.Context, entityID string) (*oidc.FederatedRP, error) {
	anchors, err := r.anchors(ctx)
	if err != nil {
		return nil, err
	}
	if len(anchors) == 0 {
		return nil, &oidc.TrustError{Code: "invalid_trust_anchor", Description: "This provider accepts no trust anchor yet."}
	}
	chain, err := (&oidfed.Resolver{HTTP: r.http, Anchors: anchors, Now: r.now}).Resolve(ctx, entityID)
	if err != nil {
		code := "invalid_trust_chain"
		if errors.Is(err, oidfed.ErrNoChain) || errors.Is(err, oidfed.ErrUntrustedAnchor) {
			code = "invalid_trust_anchor"
		}
		msg := err.Error()
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		return nil, &oidc.TrustError{Code: code, Description: "The trust chain of " + entityID + " was refused: " + msg + "."}
	}
	out := &oidc.FederatedRP{EntityID: chain.Leaf.Subject, TrustAnchor: chain.Anchor, Expires: chain.Expiry,
		CommonsService: chain.HasTrustMark(oidfed.TrustMarkType(chain.Anchor, oidfed.KindCommonsService))}
	if md, ok := chain.Metadata[oidfed.EntityRP]; ok {
		if out.Metadata, err = json.Marshal(md); err != nil {
			return nil, err
		}
	}
	// A trust mark that claims to be the anchor's and does not verify (a
	// fork showing its parent's, a forged one) is reported: registration
	// refuses it rather than ignoring it.
	prefix := oidfed.TrustMarkType(chain.Anchor, "")
	for _, ref := range chain.Leaf.TrustMarks {
		if strings.HasPrefix(ref.Type, prefix) && !chain.HasTrustMark(ref.Type) {
			out.BadTrustMarks = append(out.BadTrustMarks, ref.Type)
		}
	}
	return out, nil
}
