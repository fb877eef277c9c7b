package web

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/identity"
)

// HomeServiceType is the type of the DID document service that names an
// account's home cloud.
const HomeServiceType = "CommonsIDHome"

// accountDIDDocument serves GET /dids/{did}: the account's DID document as
// this cloud knows it, with a service entry naming the account's home cloud
// (this one, or the cloud it moved to). A did:key document is derived from
// the key alone; the home is what this cloud adds to it.
func (h *Handler) accountDIDDocument(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "did")
	a, err := h.Accounts.Store.GetAccount(r.Context(), id)
	if err != nil || !strings.HasPrefix(id, "did:") || (a.Status != identity.StatusActive && a.Status != identity.StatusDisabled && a.Status != identity.StatusMoved) {
		http.Error(w, "no such account here", http.StatusNotFound)
		return
	}
	doc, err := h.localResolver().Resolve(r.Context(), a.DID)
	if err != nil {
		// The resolver's error names the DID: log its cause only.
		h.Log.ErrorContext(r.Context(), "resolve account DID", "err", identity.RootCause(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	doc.Service = append(doc.Service, did.Service{ID: a.DID + "#home", Type: HomeServiceType, ServiceEndpoint: a.HomeIssuer})
	w.Header().Set("Content-Type", "application/did+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	json.NewEncoder(w).Encode(doc)
}
