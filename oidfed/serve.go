package oidfed

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/store"
)

// TrustMarkPath is this project's federation_trust_mark_endpoint
// (?trust_mark_type=&sub=).
const TrustMarkPath = "/federation/v1/oidfed/trust-mark"

// Entity serves an entity's configuration and, for an authority, its
// subordinate statements, their list and its trust marks.
type Entity struct {
	// ID is the entity identifier (the cloud's issuer).
	ID string
	// Key signs the configuration, statements and trust marks.
	Key func(ctx context.Context) (SigningKey, error)
	// JWKS are the entity's federation keys.
	JWKS func(ctx context.Context) (jose.JSONWebKeySet, error)
	// Metadata is the entity's metadata by entity type; the
	// federation_entity endpoints of this package are added to it.
	Metadata func(ctx context.Context) (map[string]map[string]any, error)
	// AuthorityHints are its superiors (nil: none).
	AuthorityHints func(ctx context.Context) ([]string, error)
	// TrustMarks are the trust marks it received (nil: none).
	TrustMarks func(ctx context.Context) ([]TrustMarkRef, error)
	// Subordinates, when set, make it an authority.
	Subordinates SubordinateSource
	// IsAuthority, when set, decides whether the configuration advertises
	// the authority's endpoints (the routes answer either way); nil: it
	// does whenever Subordinates is set.
	IsAuthority func(ctx context.Context) bool
	// TrustMarkKinds are the kinds of trust marks a subordinate gets;
	// nil: KindCommonsCloud for every subordinate.
	TrustMarkKinds func(ctx context.Context, s *Subordinate) []string
	// StatementTTL is the lifetime of subordinate statements and trust
	// marks; ConfigTTL that of the configuration. Zero: defaults.
	StatementTTL time.Duration
	ConfigTTL    time.Duration
	Now          func() time.Time
	Log          *slog.Logger
}

func (e *Entity) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Entity) statementTTL() time.Duration {
	if e.StatementTTL > 0 {
		return e.StatementTTL
	}
	return DefaultStatementTTL
}

func (e *Entity) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.Default()
}

// Mount adds the routes.
func (e *Entity) Mount(r chi.Router) {
	r.Get(WellKnownPath, e.serveConfiguration)
	if e.Subordinates != nil {
		r.Get(FetchPath, e.serveFetch)
		r.Get(ListPath, e.serveList)
		r.Get(TrustMarkPath, e.serveTrustMark)
	}
}

// Configuration signs the entity's configuration.
func (e *Entity) Configuration(ctx context.Context) (string, error) {
	now := e.now()
	jwks, err := e.JWKS(ctx)
	if err != nil {
		return "", err
	}
	meta := map[string]map[string]any{}
	if e.Metadata != nil {
		m, err := e.Metadata(ctx)
		if err != nil {
			return "", err
		}
		for k, v := range m {
			meta[k] = v
		}
	}
	fe := map[string]any{}
	for k, v := range meta[EntityFederation] {
		fe[k] = v
	}
	authority := e.Subordinates != nil && (e.IsAuthority == nil || e.IsAuthority(ctx))
	if authority {
		fe["federation_fetch_endpoint"] = e.ID + FetchPath
		fe["federation_list_endpoint"] = e.ID + ListPath
		fe["federation_trust_mark_endpoint"] = e.ID + TrustMarkPath
	}
	meta[EntityFederation] = fe
	ttl := e.ConfigTTL
	if ttl <= 0 {
		ttl = DefaultConfigTTL
	}
	st := &Statement{Issuer: e.ID, Subject: e.ID, IssuedAt: now.Unix(), Expiry: now.Add(ttl).Unix(), JWKS: &jwks, Metadata: meta}
	if authority {
		st.TrustMarkIssuers = map[string][]string{}
		for _, kind := range []string{KindCommonsCloud, KindCommonsService} {
			st.TrustMarkIssuers[TrustMarkType(e.ID, kind)] = []string{e.ID}
		}
	}
	if e.AuthorityHints != nil {
		if st.AuthorityHints, err = e.AuthorityHints(ctx); err != nil {
			return "", err
		}
	}
	if e.TrustMarks != nil {
		if st.TrustMarks, err = e.TrustMarks(ctx); err != nil {
			return "", err
		}
	}
	k, err := e.Key(ctx)
	if err != nil {
		return "", err
	}
	return Sign(st, k)
}

// SubordinateStatement signs what this authority says of sub; it returns
// store.ErrNotFound when sub is not a subordinate.
func (e *Entity) SubordinateStatement(ctx context.Context, sub string) (string, error) {
	if e.Subordinates == nil {
		return "", store.ErrNotFound
	}
	s, err := e.Subordinates.GetSubordinate(ctx, sub)
	if err != nil {
		return "", err
	}
	now := e.now()
	jwks := s.JWKS
	st := &Statement{Issuer: e.ID, Subject: s.EntityID, IssuedAt: now.Unix(), Expiry: now.Add(e.statementTTL()).Unix(),
		JWKS: &jwks, Metadata: s.Metadata, SourceEndpoint: e.ID + FetchPath}
	k, err := e.Key(ctx)
	if err != nil {
		return "", err
	}
	return Sign(st, k)
}

// IssueTrustMark signs a trust mark of kind for a subordinate; it returns
// store.ErrNotFound when sub is not one or does not get that kind.
func (e *Entity) IssueTrustMark(ctx context.Context, typ, sub string) (string, error) {
	if e.Subordinates == nil {
		return "", store.ErrNotFound
	}
	s, err := e.Subordinates.GetSubordinate(ctx, sub)
	if err != nil {
		return "", err
	}
	kinds := []string{KindCommonsCloud}
	if e.TrustMarkKinds != nil {
		kinds = e.TrustMarkKinds(ctx, s)
	}
	ok := slices.ContainsFunc(kinds, func(k string) bool { return TrustMarkType(e.ID, k) == typ })
	if !ok {
		return "", store.ErrNotFound
	}
	k, err := e.Key(ctx)
	if err != nil {
		return "", err
	}
	now := e.now()
	return IssueTrustMark(k, e.ID, sub, typ, now, now.Add(e.statementTTL()))
}

func (e *Entity) serveConfiguration(w http.ResponseWriter, r *http.Request) {
	raw, err := e.Configuration(r.Context())
	if err != nil {
		e.log().ErrorContext(r.Context(), "entity configuration", "err", err)
		fedError(w, http.StatusInternalServerError, "server_error", "the entity configuration could not be made")
		return
	}
	writeJWT(w, ContentTypeEntityStatement, raw, "public, max-age=60")
}

func (e *Entity) serveFetch(w http.ResponseWriter, r *http.Request) {
	sub, ok := oneParam(r, "sub")
	if !ok || CheckEntityID(sub) != nil {
		fedError(w, http.StatusBadRequest, "invalid_request", "sub must be given once, as an entity identifier")
		return
	}
	if sub == e.ID {
		fedError(w, http.StatusBadRequest, "invalid_request", "an authority makes no subordinate statement about itself")
		return
	}
	raw, err := e.SubordinateStatement(r.Context(), sub)
	if errors.Is(err, store.ErrNotFound) {
		fedError(w, http.StatusNotFound, "not_found", "not a subordinate of this authority")
		return
	}
	if err != nil {
		e.log().ErrorContext(r.Context(), "subordinate statement", "err", err)
		fedError(w, http.StatusInternalServerError, "server_error", "the statement could not be made")
		return
	}
	writeJWT(w, ContentTypeEntityStatement, raw, "no-store")
}

func (e *Entity) serveList(w http.ResponseWriter, r *http.Request) {
	subs, err := e.Subordinates.ListSubordinates(r.Context())
	if err != nil {
		e.log().ErrorContext(r.Context(), "list subordinates", "err", err)
		fedError(w, http.StatusInternalServerError, "server_error", "the list could not be read")
		return
	}
	ids := make([]string, 0, len(subs))
	for _, s := range subs {
		ids = append(ids, s.EntityID)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(ids)
}

func (e *Entity) serveTrustMark(w http.ResponseWriter, r *http.Request) {
	typ, ok1 := oneParam(r, "trust_mark_type")
	sub, ok2 := oneParam(r, "sub")
	if !ok1 || !ok2 || CheckEntityID(sub) != nil {
		fedError(w, http.StatusBadRequest, "invalid_request", "trust_mark_type and sub must be given once each")
		return
	}
	raw, err := e.IssueTrustMark(r.Context(), typ, sub)
	if errors.Is(err, store.ErrNotFound) {
		fedError(w, http.StatusNotFound, "not_found", "no such trust mark for that entity")
		return
	}
	if err != nil {
		e.log().ErrorContext(r.Context(), "trust mark", "err", err)
		fedError(w, http.StatusInternalServerError, "server_error", "the trust mark could not be made")
		return
	}
	writeJWT(w, ContentTypeTrustMark, raw, "no-store")
}

func oneParam(r *http.Request, name string) (string, bool) {
	vs := r.URL.Query()[name]
	if len(vs) != 1 || strings.TrimSpace(vs[0]) == "" {
		return "", false
	}
	return vs[0], true
}

func writeJWT(w http.ResponseWriter, ct, raw, cache string) {
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", cache)
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Write([]byte(raw))
}

func fedError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// FetchTrustMark asks an authority's federation_trust_mark_endpoint for
// a trust mark of typ about sub and verifies it with the authority's keys.
func (r *Resolver) FetchTrustMark(ctx context.Context, authority *Statement, typ, sub string) (*TrustMark, error) {
	endpoint := authority.MetadataString(EntityFederation, "federation_trust_mark_endpoint")
	if endpoint == "" {
		return nil, ErrNotSubordinate
	}
	q := "?trust_mark_type=" + urlQueryEscape(typ) + "&sub=" + urlQueryEscape(sub)
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, status, err := fetch(ctx, r.HTTP, endpoint+q, ContentTypeTrustMark, MaxStatementBytes)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNotFound {
		return nil, ErrNotSubordinate
	}
	if status != http.StatusOK {
		return nil, ErrNoChain
	}
	tm, err := VerifyTrustMark(string(raw), authority.JWKS, sub, r.now())
	if err != nil {
		return nil, err
	}
	if tm.Issuer != authority.Subject || tm.Type != typ {
		return nil, invalid("trust mark from %s names iss %q and type %q", authority.Subject, tm.Issuer, tm.Type)
	}
	return tm, nil
}
