package oidfed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Resolution bounds.
const (
	DefaultMaxDepth   = 5
	DefaultMaxFetches = 20
	DefaultTimeout    = 15 * time.Second
	maxListBytes      = 1 << 20
	maxListed         = 10000
)

// Resolver builds and verifies trust chains.
type Resolver struct {
	// HTTP fetches statements: the guarded outbound client.
	HTTP *http.Client
	// Anchors are the trust anchors accepted here, with their keys as
	// configured here.
	Anchors map[string]*jose.JSONWebKeySet
	// MaxDepth bounds the statements above the leaf; MaxFetches the HTTP
	// fetches of one resolution; Timeout its whole time. Zero: defaults.
	MaxDepth   int
	MaxFetches int
	Timeout    time.Duration
	Now        func() time.Time
}

// Chain is a verified trust chain.
type Chain struct {
	// Leaf is the subject's entity configuration.
	Leaf *Statement
	// Statements are the leaf's configuration, the subordinate statements
	// upward, and the anchor's configuration last.
	Statements []*Statement
	// Anchor is the trust anchor reached.
	Anchor string
	// JWKS are the leaf's keys as its immediate superior states them.
	JWKS *jose.JSONWebKeySet
	// Metadata is the leaf's metadata, with what its superior's statement
	// says of it in place of the leaf's own values.
	Metadata map[string]map[string]any
	// TrustMarks are the leaf's trust marks issued by the anchor that
	// verify.
	TrustMarks []*TrustMark
	// Expiry is the least exp of the chain's statements.
	Expiry time.Time
}

// HasTrustMark reports whether the chain carries a verified trust mark of typ.
func (c *Chain) HasTrustMark(typ string) bool {
	for _, tm := range c.TrustMarks {
		if tm.Type == typ {
			return true
		}
	}
	return false
}

// AnchorKeys returns the anchors' keys in the form Resolver.Anchors takes.
func AnchorKeys(anchors []*Anchor) map[string]*jose.JSONWebKeySet {
	out := make(map[string]*jose.JSONWebKeySet, len(anchors))
	for _, a := range anchors {
		ks := a.JWKS
		out[a.EntityID] = &ks
	}
	return out
}

type resolution struct {
	r       *Resolver
	fetches int
	now     time.Time
	// configs caches verified configurations by entity ID.
	configs map[string]*Statement
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Resolve builds the trust chain of entityID to one of the anchors.
func (r *Resolver) Resolve(ctx context.Context, entityID string) (*Chain, error) {
	if err := CheckEntityID(entityID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(r.Anchors) == 0 {
		return nil, fmt.Errorf("%w: no trust anchor is configured", ErrNoChain)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := &resolution{r: r, now: r.now(), configs: map[string]*Statement{}}
	leaf, err := res.configuration(ctx, entityID)
	if err != nil {
		return nil, err
	}
	// The anchor itself: its configuration verified with the keys
	// configured for it.
	if keys, ok := r.Anchors[entityID]; ok {
		if _, err := Verify([]byte(leaf.Raw), keys, res.now); err != nil {
			return nil, fmt.Errorf("trust anchor %s: %w", entityID, err)
		}
		return res.chain([]*Statement{leaf}, entityID, leaf.JWKS), nil
	}
	up, err := res.up(ctx, leaf, 0, map[string]bool{entityID: true})
	if err != nil {
		return nil, err
	}
	all := append([]*Statement{leaf}, up...)
	// The leaf's configuration must verify with the keys its superior
	// states for it.
	return res.chain(all, all[len(all)-1].Issuer, up[0].JWKS), nil
}

func (res *resolution) chain(all []*Statement, anchor string, leafKeys *jose.JSONWebKeySet) *Chain {
	leaf := all[0]
	c := &Chain{Leaf: leaf, Statements: all, Anchor: anchor, JWKS: leafKeys, Metadata: map[string]map[string]any{}}
	c.Expiry = leaf.ExpiresAt()
	for _, s := range all {
		if e := s.ExpiresAt(); e.Before(c.Expiry) {
			c.Expiry = e
		}
	}
	for typ, m := range leaf.Metadata {
		c.Metadata[typ] = map[string]any{}
		for k, v := range m {
			c.Metadata[typ][k] = v
		}
	}
	if len(all) > 1 {
		for typ, m := range all[1].Metadata {
			if c.Metadata[typ] == nil {
				c.Metadata[typ] = map[string]any{}
			}
			for k, v := range m {
				c.Metadata[typ][k] = v
			}
		}
	}
	anchorKeys := all[len(all)-1].JWKS
	for _, ref := range leaf.TrustMarks {
		tm, err := VerifyTrustMark(ref.TrustMark, anchorKeys, leaf.Subject, res.now)
		if err != nil || tm.Issuer != anchor || tm.Type != ref.Type {
			continue
		}
		c.TrustMarks = append(c.TrustMarks, tm)
	}
	return c
}

// up returns the statements from st's superior to an anchor: the
// superior's subordinate statement about st.Subject, then further up, the
// anchor's configuration last. onPath holds the entities below.
func (res *resolution) up(ctx context.Context, st *Statement, depth int, onPath map[string]bool) ([]*Statement, error) {
	maxDepth := res.r.MaxDepth
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if len(st.AuthorityHints) == 0 {
		return nil, fmt.Errorf("%w: %s names no authority_hints", ErrNoChain, st.Subject)
	}
	if depth >= maxDepth {
		return nil, fmt.Errorf("%w: longer than %d statements", ErrNoChain, maxDepth)
	}
	var firstErr error
	note := func(err error) {
		// The most telling failure is kept: a refusal by an authority
		// or a loop before a plain lack of a path.
		if firstErr == nil || errors.Is(firstErr, ErrNoChain) && !errors.Is(err, ErrNoChain) {
			firstErr = err
		}
	}
	for _, hint := range st.AuthorityHints {
		if onPath[hint] {
			note(fmt.Errorf("%w: %s is already on the path from the leaf", ErrLoop, hint))
			continue
		}
		path, err := res.through(ctx, st, hint, depth, onPath)
		if err == nil {
			return path, nil
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errBudget) {
			return nil, err
		}
		note(err)
	}
	return nil, firstErr
}

var errBudget = fmt.Errorf("%w: too many fetches", ErrNoChain)

func (res *resolution) through(ctx context.Context, st *Statement, hint string, depth int, onPath map[string]bool) ([]*Statement, error) {
	sup, err := res.configuration(ctx, hint)
	if err != nil {
		return nil, err
	}
	anchorKeys, isAnchor := res.r.Anchors[hint]
	if isAnchor {
		if _, err := Verify([]byte(sup.Raw), anchorKeys, res.now); err != nil {
			return nil, fmt.Errorf("trust anchor %s: its configuration does not verify with the keys configured here: %w", hint, err)
		}
	}
	fetch := sup.MetadataString(EntityFederation, "federation_fetch_endpoint")
	if fetch == "" {
		return nil, fmt.Errorf("%w: %s has no federation_fetch_endpoint", ErrInvalid, hint)
	}
	sub, err := res.subordinate(ctx, fetch, hint, st.Subject, sup.JWKS)
	if err != nil {
		return nil, err
	}
	// The entity below must have signed its configuration with a key its
	// superior states.
	if _, err := Verify([]byte(st.Raw), sub.JWKS, res.now); err != nil {
		return nil, fmt.Errorf("%s: its configuration does not verify with the keys %s states for it: %w", st.Subject, hint, err)
	}
	if isAnchor {
		return []*Statement{sub, sup}, nil
	}
	onPath[hint] = true
	defer delete(onPath, hint)
	rest, err := res.up(ctx, sup, depth+1, onPath)
	if err != nil {
		return nil, err
	}
	return append([]*Statement{sub}, rest...), nil
}

// configuration fetches and verifies an entity's configuration.
func (res *resolution) configuration(ctx context.Context, entityID string) (*Statement, error) {
	if st, ok := res.configs[entityID]; ok {
		return st, nil
	}
	if err := CheckEntityID(entityID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	raw, status, err := res.get(ctx, strings.TrimRight(entityID, "/")+WellKnownPath, ContentTypeEntityStatement, MaxStatementBytes)
	if err != nil {
		return nil, fmt.Errorf("entity configuration of %s: %w", entityID, err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("%w: entity configuration of %s: answered %d", ErrNoChain, entityID, status)
	}
	st, err := VerifyConfiguration(raw, entityID, res.now)
	if err != nil {
		return nil, fmt.Errorf("entity configuration of %s: %w", entityID, err)
	}
	res.configs[entityID] = st
	return st, nil
}

// subordinate fetches and verifies what iss says of sub.
func (res *resolution) subordinate(ctx context.Context, endpoint, iss, sub string, keys *jose.JSONWebKeySet) (*Statement, error) {
	u, err := url.Parse(endpoint)
	if err != nil || CheckEntityID(u.Scheme+"://"+u.Host) != nil || u.Fragment != "" {
		return nil, fmt.Errorf("%w: federation_fetch_endpoint of %s is not a usable URL", ErrInvalid, iss)
	}
	q := u.Query()
	q.Set("sub", sub)
	u.RawQuery = q.Encode()
	raw, status, err := res.get(ctx, u.String(), ContentTypeEntityStatement, MaxStatementBytes)
	if err != nil {
		return nil, fmt.Errorf("statement of %s about %s: %w", iss, sub, err)
	}
	if status == http.StatusNotFound {
		return nil, fmt.Errorf("%w: %s answers that %s is not its subordinate", ErrNotSubordinate, iss, sub)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("%w: statement of %s about %s: answered %d", ErrNoChain, iss, sub, status)
	}
	st, err := Verify(raw, keys, res.now)
	if err != nil {
		return nil, fmt.Errorf("statement of %s about %s: %w", iss, sub, err)
	}
	if st.Issuer != iss || st.Subject != sub {
		return nil, fmt.Errorf("%w: statement from %s names iss %q and sub %q", ErrInvalid, iss, st.Issuer, st.Subject)
	}
	return st, nil
}

// get fetches u within the resolution's budget. A status other than 200
// is returned without error; a 200 body must be of the media type.
func (res *resolution) get(ctx context.Context, u, mediaType string, limit int64) ([]byte, int, error) {
	max := res.r.MaxFetches
	if max <= 0 {
		max = DefaultMaxFetches
	}
	if res.fetches >= max {
		return nil, 0, errBudget
	}
	res.fetches++
	return fetch(ctx, res.r.HTTP, u, mediaType, limit)
}

func fetch(ctx context.Context, hc *http.Client, u, mediaType string, limit int64) ([]byte, int, error) {
	if hc == nil {
		return nil, 0, errors.New("oidfed: no HTTP client")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	req.Header.Set("Accept", mediaType)
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrNoChain, ctx.Err())
		}
		return nil, 0, fmt.Errorf("%w: could not fetch %s", ErrNoChain, u)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, resp.StatusCode, nil
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != mediaType {
		return nil, 0, fmt.Errorf("%w: %s answered %q, not %s", ErrInvalid, u, mt, mediaType)
	}
	if resp.ContentLength > limit {
		return nil, 0, ErrTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: could not read %s", ErrNoChain, u)
	}
	if int64(len(body)) > limit {
		return nil, 0, ErrTooLarge
	}
	return body, resp.StatusCode, nil
}

// FetchConfiguration fetches and verifies an entity's configuration.
func (r *Resolver) FetchConfiguration(ctx context.Context, entityID string) (*Statement, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := &resolution{r: r, now: r.now(), configs: map[string]*Statement{}}
	return res.configuration(ctx, entityID)
}

// ListSubordinates reads the federation_list_endpoint of a verified
// configuration: the entity IDs of its immediate subordinates.
func (r *Resolver) ListSubordinates(ctx context.Context, ec *Statement) ([]string, error) {
	endpoint := ec.MetadataString(EntityFederation, "federation_list_endpoint")
	if endpoint == "" {
		return nil, fmt.Errorf("%w: %s has no federation_list_endpoint", ErrInvalid, ec.Subject)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, status, err := fetch(ctx, r.HTTP, endpoint, "application/json", maxListBytes)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("%w: list of %s answered %d", ErrNoChain, ec.Subject, status)
	}
	var ids []string
	if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, fmt.Errorf("%w: list of %s is not a JSON array of strings", ErrInvalid, ec.Subject)
	}
	if len(ids) > maxListed {
		return nil, fmt.Errorf("%w: list of %s names more than %d entities", ErrInvalid, ec.Subject, maxListed)
	}
	out := ids[:0]
	for _, id := range ids {
		if CheckEntityID(id) == nil {
			out = append(out, id)
		}
	}
	return out, nil
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
