package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

// The home of a did:webvh account serves its log, its witness file and the
// parallel did:web document (identity/webvh.go) at the locations its DID
// maps to:
//
//	GET {issuer path}/accounts/{name}/did.jsonl         text/jsonl, the did:webvh log
//	GET {issuer path}/accounts/{name}/did-witness.json  application/json, the witness proofs ([] when none)
//	GET {issuer path}/accounts/{name}/did.json          application/did+json, did:web
//
// All are public (Access-Control-Allow-Origin: *). The log and the witness
// file are served for a log that has had the DID of that location: the
// account's while it is homed here, and still after it moved away (the log
// then ends with the move, which resolvers follow to the new home). The
// did:web document is served while the DID is current here; after a move
// it redirects to the new location's. An unknown, malformed or over-long
// name, an account that is deleted or was never homed at this location,
// and a cloud without did:webvh accounts answer 404.

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
	r.Get(base+"did-witness.json", h.didWitnessFile)
	r.Get(base+"did.json", h.didWebDocument)
}

// accountDIDLog returns the log served under the request's name, and
// whether its DID at this location is still its current DID.
func (h *Handler) accountDIDLog(w http.ResponseWriter, r *http.Request) (*identity.DIDLog, bool, bool) {
	name := chi.URLParam(r, "name")
	if name == "" || len(name) > identity.MaxDIDLogName || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		http.Error(w, "no such DID here", http.StatusNotFound)
		return nil, false, false
	}
	l, err := h.Accounts.DIDLogs.GetDIDLogByName(r.Context(), name)
	var (
		a    *identity.Account
		dids []string
	)
	if err == nil {
		a, err = h.Accounts.Store.GetAccount(r.Context(), l.DID)
	}
	if err == nil && a.Status == identity.StatusMoved {
		dids, err = h.Accounts.DIDLogs.AccountDIDs(r.Context(), l.DID)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		h.Log.ErrorContext(r.Context(), "DID log", "err", identity.RootCause(err))
		w.Header().Set("Retry-After", RetryAfterSeconds)
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return nil, false, false
	default:
		here, ok := h.didHere(l.SCID, name)
		switch {
		case !ok:
		case a.Status == identity.StatusActive || a.Status == identity.StatusDisabled:
			if l.CurrentDID == here || l.CurrentDID == "" {
				return l, true, true
			}
		case a.Status == identity.StatusMoved:
			if l.CurrentDID == here {
				return l, true, true
			}
			if slices.Contains(dids, here) || l.DID == here {
				return l, false, true
			}
		}
	}
	http.Error(w, "no such DID here", http.StatusNotFound)
	return nil, false, false
}

// didHere is the account DID of scid and name at this cloud's location.
func (h *Handler) didHere(scid, name string) (string, bool) {
	hp, err := identity.WebVHHostPath(h.Accounts.Issuer)
	if err != nil || scid == "" {
		return "", false
	}
	return "did:webvh:" + scid + ":" + hp + ":" + identity.AccountsSegment + ":" + name, true
}

func (h *Handler) didLogFile(w http.ResponseWriter, r *http.Request) {
	l, _, ok := h.accountDIDLog(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/jsonl")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Write(l.Log)
}

// didWitnessFile serves did-witness.json: the witness proofs of the log
// ([] when it has none).
func (h *Handler) didWitnessFile(w http.ResponseWriter, r *http.Request) {
	l, _, ok := h.accountDIDLog(w, r)
	if !ok {
		return
	}
	body := l.Witness
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("[]")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Write(body)
}

// didWebDocument serves the parallel did:web document: the current
// did:webvh document with every "did:webvh:{SCID}:" made "did:web:", the
// did:webvh DID in alsoKnownAs (as the did:webvh specification describes
// for publishing did:web beside a did:webvh log).
func (h *Handler) didWebDocument(w http.ResponseWriter, r *http.Request) {
	l, current, ok := h.accountDIDLog(w, r)
	if !ok {
		return
	}
	if !current {
		// Moved away: the did:web document is at the new location.
		if id, err := webvh.ParseDID(l.CurrentDID); err == nil {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			http.Redirect(w, r, id.WebDocumentURL(), http.StatusMovedPermanently)
			return
		}
		http.Error(w, "no such DID here", http.StatusNotFound)
		return
	}
	// The home's own log: its latest entry may still be collecting its
	// witness proofs.
	opened, err := webvh.Open(l.Log, webvh.Options{})
	if err != nil {
		h.Log.ErrorContext(r.Context(), "stored DID log does not verify", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	res := opened.Result()
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
// logs and their witness files are read from the store, not fetched.
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
		if len(segs) < 3 || segs[len(segs)-3] != identity.AccountsSegment {
			return nil, webvh.ErrNotFound
		}
		file := segs[len(segs)-1]
		if file != "did.jsonl" && file != "did-witness.json" {
			return nil, webvh.ErrNotFound
		}
		l, err := h.Accounts.DIDLogs.GetDIDLogByName(ctx, segs[len(segs)-2])
		if errors.Is(err, store.ErrNotFound) {
			return nil, webvh.ErrNotFound
		}
		if err != nil {
			return nil, err
		}
		if file == "did-witness.json" {
			if len(bytes.TrimSpace(l.Witness)) == 0 {
				return []byte("[]"), nil
			}
			return l.Witness, nil
		}
		return l.Log, nil
	}}
}
