package web

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// "Clouds that may sign you in" (privacy page): the person's grants to peer
// clouds (privacy/peergrant.go), each with when it was given and last used,
// and a Revoke button. Revoking deletes the grant and the tokens the cloud
// holds, logs peer.revoked, queues the cloud's back-channel logout when it
// registered one, and logs privacy.updated: the cloud drops its replica of
// the account (unless the person's federation sharing shares it with every
// cloud) and can no longer sign the person in without asking again.

type peerGrantView struct {
	Issuer     string     `json:"issuer"`
	Host       string     `json:"host"`
	GrantedAt  time.Time  `json:"granted_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// peerIssuers is the set of peer clouds' issuers.
func (h *Handler) peerIssuers(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	if h.HomeClouds == nil {
		return out, nil
	}
	hc, err := h.HomeClouds(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range hc {
		out[c.Issuer] = c.Host
	}
	return out, nil
}

// peerGrants lists the person's grants to peer clouds, newest first.
func (h *Handler) peerGrants(ctx context.Context, did string) ([]peerGrantView, error) {
	peers, err := h.peerIssuers(ctx)
	if err != nil {
		return nil, err
	}
	out := []peerGrantView{}
	if len(peers) == 0 {
		return out, nil
	}
	cs, err := h.Privacy.ListConsents(ctx, did)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if host, ok := peers[c.ClientID]; ok {
			out = append(out, peerGrantView{Issuer: c.ClientID, Host: host, GrantedAt: c.GrantedAt, LastUsedAt: c.LastUsedAt})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GrantedAt.After(out[j].GrantedAt) })
	return out, nil
}

// revokePeerGrant takes back the signed-in person's grant to a peer cloud.
func (h *Handler) revokePeerGrant(r *http.Request, peer string) error {
	ctx := r.Context()
	did := current(r).acct.DID
	peers, err := h.peerIssuers(ctx)
	if err != nil {
		return err
	}
	host, ok := peers[peer]
	if !ok {
		return store.ErrNotFound
	}
	queue := h.endingSignIns(ctx, did, peer)
	meta := h.meta(r)
	return h.Privacy.InTx(ctx, func(ctx context.Context) error {
		if err := h.Privacy.DeletePeerGrant(ctx, did, peer); err != nil {
			return err
		}
		n := 0
		if h.PrivacySvc != nil && h.PrivacySvc.Grants != nil {
			var err error
			if n, err = h.PrivacySvc.Grants.DeleteGrantsOf(ctx, did, peer); err != nil {
				return err
			}
		}
		if err := h.Privacy.AppendActivity(ctx, &privacy.Activity{AccountDID: did, At: h.Now().UTC(), Kind: privacy.ActivityPeerRevoked,
			ClientID: peer, Detail: map[string]any{"cloud": host, "tokens_revoked": n}, IP: meta.IP, UserAgent: meta.UserAgent}); err != nil {
			return err
		}
		return queue(ctx)
	})
}

func (h *Handler) postRevokePeer(w http.ResponseWriter, r *http.Request) error {
	if err := h.revokePeerGrant(r, r.PostForm.Get("issuer")); err != nil {
		return err
	}
	http.Redirect(w, r, "/account/privacy?done=peer-revoked#clouds", http.StatusSeeOther)
	return nil
}

func (h *Handler) apiPeerGrants(w http.ResponseWriter, r *http.Request) (any, error) {
	return h.peerGrants(r.Context(), current(r).acct.DID)
}

func (h *Handler) apiRevokePeer(w http.ResponseWriter, r *http.Request) (any, error) {
	var in struct {
		Issuer string `json:"issuer"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return nil, err
	}
	err := h.revokePeerGrant(r, in.Issuer)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &apiError{http.StatusNotFound, "not_found", "this cloud may not sign you in: there is nothing to revoke"}
	}
	return nil, err
}
