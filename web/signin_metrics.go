package web

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/metrics"
)

// signInMethod is the method label of a sign-in that started a session,
// from the detail its activity record carries.
func signInMethod(detail map[string]any) string {
	switch m, _ := detail["method"].(string); m {
	case "passkey":
		return metrics.MethodPasskey
	case "home cloud":
		return metrics.MethodFederated
	default:
		return metrics.MethodPassword // with or without a second factor
	}
}

// signInFailed counts a refused sign-in and logs it at warn level: the
// account's DID when the handle names one, else a hash of the handle (what
// someone typed may be a password typed in the wrong field), the reason,
// the request id and the client's IP. Never the password.
func (h *Handler) signInFailed(r *http.Request, method, outcome, handle string, a *identity.Account) {
	metrics.SignIn(method, outcome)
	who := []any{}
	if a != nil {
		who = append(who, "account", a.DID)
	} else if handle != "" {
		who = append(who, "handle_hash", HandleHash(handle))
	}
	args := append([]any{"method", method, "reason", outcome}, who...)
	args = append(args, "request_id", middleware.GetReqID(r.Context()), "ip", clientIP(r))
	h.Log.WarnContext(r.Context(), "sign-in failed", args...)
}

// HandleHash is what the logs show of a handle that names no account: the
// first 16 hex digits of the SHA-256 of its lower-case form, enough to see
// the same handle tried again, not enough to read it back.
func HandleHash(handle string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(handle))))
	return hex.EncodeToString(sum[:8])
}
