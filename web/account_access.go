package web

import (
	"context"
	"net/http"
	"time"

	"github.com/onecommons/commonsid/access"
)

// The dashboard's contribution section (account_access.html): the person's
// level in the commons, until when, who set it, and the services that
// receive it (their consent includes the scope commons and the claim
// commons_access).

// AccessView is what the dashboard shows of a person's contribution level.
type AccessView struct {
	Level     string
	ExpiresAt *time.Time // when the level ends; nil for basic
	Expired   bool       // a level beyond basic that ended
	Granted   string     // the level that ended, when Expired
	Source    string     // operator or notice:<payment service>
	SetAt     *time.Time
	// ReleasedTo are the services that receive the level.
	ReleasedTo []ServiceInfo
}

// accessView reads the section's data; nil when the cloud keeps no levels.
func (h *Handler) accessView(r *http.Request, did string) (*AccessView, error) {
	if h.Access == nil {
		return nil, nil
	}
	ctx := r.Context()
	g, err := h.Access.Get(ctx, did)
	if err != nil {
		return nil, err
	}
	now := h.Now()
	v := &AccessView{Level: g.Effective(now)}
	if g != nil && g.Level != access.Basic {
		t := g.ExpiresAt
		v.ExpiresAt, v.Expired, v.Source = &t, g.Expired(now), g.Source
		if v.Expired {
			v.Granted = g.Level
		}
	}
	if g != nil {
		t := g.SetAt
		v.SetAt, v.Source = &t, g.Source
	}
	consents, err := h.Privacy.ListConsents(ctx, did)
	if err != nil {
		return nil, err
	}
	st, err := h.PrivacySvc.Settings(ctx, did)
	if err != nil {
		return nil, err
	}
	for _, id := range access.Recipients(consents, st) {
		v.ReleasedTo = append(v.ReleasedTo, h.serviceName(ctx, id))
	}
	return v, nil
}

// serviceName describes a service for the section, its client_id when it
// is not known here.
func (h *Handler) serviceName(ctx context.Context, clientID string) ServiceInfo {
	if h.Services != nil {
		if s, err := h.Services(ctx, clientID); err == nil && s != nil {
			return *s
		}
	}
	return ServiceInfo{ClientID: clientID, Name: clientID}
}
