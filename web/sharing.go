package web

import (
	"net/http"

	"github.com/onecommons/commonsid/identity"
)

// Federation sharing, asked at sign-up and on the privacy page: what other
// clouds of the commons receive of the account. "none" is the default and
// the most private choice; a cloud the person lets sign them in receives
// the public profile whatever the choice (peergrants.go).

// sharingChoice is one federation sharing value with its plain explanation.
type sharingChoice struct {
	Value, Label, Explanation string
}

var sharingChoices = []sharingChoice{
	{"none", "Nothing",
		"Other clouds learn nothing about you unless you let one sign you in: your home asks you the first time, and only that cloud then receives your handle and name."},
	{"public_profile", "Public profile",
		"Every cloud of the commons receives your handle and name, so that services there know you without asking your home first. Your email and the services you use stay here."},
	{"all", "Everything",
		"Every cloud of the commons receives your handle, name, email and the services you have allowed, so that your account works the same everywhere."},
}

func validSharing(v string) bool {
	for _, c := range sharingChoices {
		if c.Value == v {
			return true
		}
	}
	return false
}

// applySignupSharing stores the federation sharing chosen on the sign-up
// form for a new account. "none", missing or unknown values change nothing:
// the default is the most private choice.
func (h *Handler) applySignupSharing(r *http.Request, a *identity.Account) error {
	v := r.PostFormValue("federation_sharing")
	if v == "" || v == "none" || !validSharing(v) || h.PrivacySvc == nil {
		return nil
	}
	st, err := h.PrivacySvc.Settings(r.Context(), a.DID)
	if err != nil {
		return err
	}
	next := *st
	next.FederationSharing = v
	return h.PrivacySvc.UpdateSettings(r.Context(), a.DID, &next, h.meta(r))
}
