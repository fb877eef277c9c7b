package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/store"
)

// Storage failures at the protocol endpoints.
//
// A failed read or write is not an answer about the request: a client whose
// row could not be read is not an unknown client, and a revocation whose
// delete did not commit did not happen. The fosite adapter therefore tells
// "not there" (store.ErrNotFound, which becomes fosite.ErrNotFound and the
// usual invalid_client, invalid_grant or inactive answer) apart from every
// other error, which it wraps in storageError. fosite keeps a wrapped cause
// (RFC6749Error.WithWrap), so the endpoints find it again in whatever error
// fosite hands back and answer 503 with Retry-After instead, logging the
// cause with the request id.

// retryAfter is the Retry-After of a 503 (seconds): long enough for a
// restarted database or a released lock, short enough for a person waiting.
const retryAfter = "5"

// storageError is a store failure other than "not found".
type storageError struct{ err error }

func (e *storageError) Error() string { return "storage: " + e.err.Error() }
func (e *storageError) Unwrap() error { return e.err }

// storeErr maps an error of Store for fosite: not found becomes
// fosite.ErrNotFound; duplicates and conflicts stay as they are (they are
// answers, not failures); anything else becomes a storageError.
func storeErr(err error) error {
	var se *storageError
	var rfc *fosite.RFC6749Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, fosite.ErrNotFound):
		return fosite.ErrNotFound
	case errors.Is(err, store.ErrAlreadyExists), errors.Is(err, store.ErrConflict),
		errors.As(err, &se), errors.As(err, &rfc):
		return err
	}
	return &storageError{err}
}

// unavailableCause returns the storage failure behind err, if there is one.
func unavailableCause(err error) (error, bool) {
	var se *storageError
	if errors.As(err, &se) {
		return se.err, true
	}
	return nil, false
}

// logUnavailable logs a storage failure at error level with the request
// id. Only the innermost error is logged, the driver's ("database is
// locked", "terminating connection …"): the store's wrapping may name the
// account a row belongs to, and no token value is ever part of either.
func (p *Provider) logUnavailable(ctx context.Context, endpoint string, cause error) {
	for {
		u := errors.Unwrap(cause)
		if u == nil {
			break
		}
		cause = u
	}
	p.Log.ErrorContext(ctx, endpoint+": storage unavailable, answered 503",
		"request_id", middleware.GetReqID(ctx), "err", cause.Error())
}

// unavailable answers a storage failure, when err carries one, and reports
// whether it did: 503 with Retry-After and the OAuth error code (RFC 6749
// temporarily_unavailable at the token, revocation and introspection
// endpoints; server_error at UserInfo, whose RFC 6750 errors have no such
// code).
func (p *Provider) unavailable(ctx context.Context, w http.ResponseWriter, endpoint string, err error) bool {
	cause, ok := unavailableCause(err)
	if !ok {
		return false
	}
	p.logUnavailable(ctx, endpoint, cause)
	writeUnavailable(w, endpoint)
	return true
}

func writeUnavailable(w http.ResponseWriter, endpoint string) {
	code := "temporarily_unavailable"
	if endpoint == "userinfo" {
		code = "server_error"
	}
	h := w.Header()
	h.Set("Retry-After", retryAfter)
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusServiceUnavailable)
	json.NewEncoder(w).Encode(map[string]string{"error": code,
		"error_description": "The request could not be completed because the database is unavailable; retry after the number of seconds in Retry-After."})
}
