package web

import (
	"context"
	"net/http"
)

// endingSignIns prepares the logout tokens owed when the person's sign-in
// with clientID ("" every service) ends. It runs before the change (the
// consent and the pairwise secret may be gone after); the returned queue
// stores them inside the change's transaction, so that they are sent if
// and only if the change commits.
func (h *Handler) endingSignIns(ctx context.Context, did, clientID string) func(ctx context.Context) error {
	if h.EndingSignIns == nil {
		return func(context.Context) error { return nil }
	}
	return h.EndingSignIns(ctx, did, clientID)
}

// revokeConsent revokes the signed-in person's consent to a service and
// queues the service's logout token, in one transaction.
func (h *Handler) revokeConsent(r *http.Request, clientID string) error {
	did := current(r).acct.DID
	queue := h.endingSignIns(r.Context(), did, clientID)
	return h.Privacy.InTx(r.Context(), func(ctx context.Context) error {
		if err := h.PrivacySvc.Revoke(ctx, did, clientID, h.meta(r)); err != nil {
			return err
		}
		return queue(ctx)
	})
}
