package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

// The home of a did:webvh account serves its log and the parallel did:web
// document (identity/webvh.go) at the locations its DID maps to:
//
//	GET {issuer path}/accounts/{name}/did.jsonl  text/jsonl, the did:webvh log
//	GET {issuer path}/accounts/{name}/did.json   application/did+json, did:web
//
// Both are public (Access-Control-Allow-Origin: *). An unknown, malformed
// or over-long name, an account that is deleted or not homed here, and a
// cloud without did:webvh accounts answer 404. There is no witness file
// (did-witness.json): account logs have no witnesses.

// mountDIDLogs adds the routes of account DID logs.
func (h *Handler) mountDIDLogs(r chi.Router) {
	if h.Accounts.DIDLogs == nil {
		return
	}
	prefix := ""
	if u, err := url.Parse(h.Accounts.Issuer); err == nil {
		prefix = strings.TrimSuffix(u.Path, "/")
	}
	base := prefix + "/" + identity.AccountsSegment + "/{name}/"
	r.Get(base+"did.jsonl", h.didLogFile)
	r.Get(base+"did.json", h.didWebDocument)
}

// accountDIDLog returns the log served under the request's name.
func (h *Handler) accountDIDLog(w http.ResponseWriter, r *http.Request) (*identity.DIDLog, bool) {
	name := chi.URLParam(r, "name")
	if name == "" || len(name) > identity.MaxDIDLogName || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		http.Error(w, "no such DID here", http.StatusNotFound)
		return nil, false
	}
	l, err := h.Accounts.DIDLogs.GetDIDLogByName(r.Context(), name)
	var a *identity.Account
	if err == nil {
		a, err = h.Accounts.Store.GetAccount(r.Context(), l.DID)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		h.Log.ErrorContext(r.Context(), "DID log", "err", identity.RootCause(err))
		w.Header().Set("Retry-After", RetryAfterSeconds)
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return nil, false
	case a.Status == identity.StatusActive || a.Status == identity.StatusDisabled:
		return l, true
	}
	http.Error(w, "no such DID here", http.StatusNotFound)
	return nil, false
}

func (h *Handler) didLogFile(w http.ResponseWriter, r *http.Request) {
	l, ok := h.accountDIDLog(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/jsonl")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Write(l.Log)
}

// didWebDocument serves the parallel did:web document: the current
// did:webvh document with every "did:webvh:{SCID}:" made "did:web:", the
// did:webvh DID in alsoKnownAs (as the did:webvh specification describes
// for publishing did:web beside a did:webvh log).
func (h *Handler) didWebDocument(w http.ResponseWriter, r *http.Request) {
	l, ok := h.accountDIDLog(w, r)
	if !ok {
		return
	}
	res, err := webvh.Verify(l.Log, webvh.Options{DID: l.DID})
	if err != nil {
		h.Log.ErrorContext(r.Context(), "stored DID log does not verify", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	id, err := webvh.ParseDID(res.DID)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	raw := bytes.ReplaceAll(res.Document, []byte("did:webvh:"+id.SCID+":"), []byte("did:web:"))
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	aka, _ := doc["alsoKnownAs"].([]any)
	doc["alsoKnownAs"] = append(aka, res.DID)
	w.Header().Set("Content-Type", "application/did+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	json.NewEncoder(w).Encode(doc)
}

// localResolver resolves account DIDs for pages of this cloud: did:webvh
// logs are read from the store, not fetched.
func (h *Handler) localResolver() *did.Resolver {
	if h.Accounts.DIDLogs == nil {
		return &did.Resolver{}
	}
	return &did.Resolver{WebVH: func(ctx context.Context, u string) ([]byte, error) {
		p, err := url.Parse(u)
		if err != nil {
			return nil, webvh.ErrNotFound
		}
		segs := strings.Split(p.Path, "/")
		if len(segs) < 3 || segs[len(segs)-1] != "did.jsonl" || segs[len(segs)-3] != identity.AccountsSegment {
			return nil, webvh.ErrNotFound
		}
		l, err := h.Accounts.DIDLogs.GetDIDLogByName(ctx, segs[len(segs)-2])
		if errors.Is(err, store.ErrNotFound) {
			return nil, webvh.ErrNotFound
		}
		if err != nil {
			return nil, err
		}
		return l.Log, nil
	}}
}
