package web

// Notices to the person about sign-ins to their account, by mail.
//
//   - new-device-sign-in: a session started in a browser whose known-device
//     cookie (signin_limits.go) did not name the account: a device not seen
//     with it before (or one whose cookies were cleared). Sign-ins brokered
//     by a peer (amr "fed") are told by the home cloud, imports are the
//     person's own move: neither is told here.
//   - recovery-kit-sign-in: a sign-in that passed the second-factor step
//     with the recovery kit in place of a lost second factor
//     (mfa_kit.go).
//   - lockout: the failure that starts slowing sign-ins (failedSignIn, with
//     OnLockout doing the sending).
//
// Every notice goes only to a verified address (an unverified one may be
// anybody's), apart from the request (the answer takes no longer and says
// nothing more), and within a budget per account kept with the failure
// budgets (shared by every replica): at most one lockout mail an hour, and
// new-device mails with a progressive wait after the first three, so that
// nobody can fill a person's mailbox by signing in or failing to.

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/mail"
)

// Budgets of the notices of one account.
var (
	// lockoutMailBudget: one lockout mail per account and hour.
	lockoutMailBudget = limits.Once("lockout-mail", time.Hour)
	// newDeviceMailBudget: three new-device mails, then 2, 4, 8 …
	// minutes between two, up to one an hour.
	newDeviceMailBudget = limits.Policy{Name: "new-device-mail", Free: 3, Step: time.Minute, Window: time.Hour, MaxDelay: time.Hour}
	// kitMailBudget: the same for sign-ins with the recovery kit.
	kitMailBudget = limits.Policy{Name: "kit-mail", Free: 3, Step: time.Minute, Window: time.Hour, MaxDelay: time.Hour}
)

// noticeTimeout bounds the sending of one notice.
const noticeTimeout = time.Minute

// noticeAllowed spends one notice of the account's budget p; false when
// the budget is spent or cannot be read (no notice rather than many).
func (h *Handler) noticeAllowed(ctx context.Context, p limits.Policy, accountDID string) bool {
	_, wait, err := h.Limits.Take(ctx, p, accountDID)
	if err != nil {
		h.Log.WarnContext(ctx, "notice budget unavailable; no notice sent", "notice", p.Name, "err", identity.RootCause(err))
		return false
	}
	return wait == 0
}

// sendNotice renders and sends a notice to the account's verified address,
// apart from the request, within the budget p. build returns the message's
// data for kind.
func (h *Handler) sendNotice(r *http.Request, a *identity.Account, p limits.Policy, kind mail.Kind, build func(mail.Common, mail.Request) any) {
	if h.Mail == nil || h.Issuer == "" || a.Email == "" || !a.EmailVerified {
		return
	}
	c := h.common(a, a.Email)
	req := mail.Request{At: h.Now().UTC(), IP: clientIP(r), Device: h.meta(r).UserAgent}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), noticeTimeout)
	h.notices.Add(1)
	go func() {
		defer h.notices.Done()
		defer cancel()
		if !h.noticeAllowed(ctx, p, a.DID) {
			h.Log.InfoContext(ctx, "notice not sent: the account's notice budget is spent", "notice", string(kind))
			return
		}
		m, err := mail.Render(kind, build(c, req))
		if err == nil {
			err = h.Mail.Send(ctx, m)
		}
		if err != nil {
			h.Log.WarnContext(ctx, "notice not sent", "notice", string(kind), "err", identity.RootCause(err))
		}
	}()
}

// WaitNotices waits until every notice started so far is sent or given
// up (each within noticeTimeout).
func (h *Handler) WaitNotices() { h.notices.Wait() }

// link is an absolute link to a page of this cloud.
func (h *Handler) link(path string) string {
	return strings.TrimRight(h.Issuer, "/") + path
}

// notifyNewDevice mails the new-device notice for a session just started
// on a device that did not know the account.
func (h *Handler) notifyNewDevice(r *http.Request, a *identity.Account, amr []string, detail map[string]any) {
	if slices.Contains(amr, "fed") || detail["method"] == "import" || detail["method"] == methodKit {
		// A kit sign-in has its own notice, which names the device.
		return
	}
	h.sendNotice(r, a, newDeviceMailBudget, mail.KindNewDeviceSignIn, func(c mail.Common, req mail.Request) any {
		return mail.NewDeviceSignIn{Common: c, Request: req, Link: h.link("/account/activity")}
	})
}

// notifyKitSignIn mails the notice of a sign-in with the recovery kit in
// place of the second factor.
func (h *Handler) notifyKitSignIn(r *http.Request, a *identity.Account) {
	h.sendNotice(r, a, kitMailBudget, mail.KindRecoveryKitSignIn, func(c mail.Common, req mail.Request) any {
		return mail.RecoveryKitSignIn{Common: c, Request: req, Link: h.link("/account/security")}
	})
}
