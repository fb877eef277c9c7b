package httpx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"

	"github.com/go-chi/chi/v5/middleware"
)

// RequestIDHeader carries the request id in and out.
const RequestIDHeader = "X-Request-Id"

// MaxRequestID is the longest request id taken from a request.
const MaxRequestID = 64

// SaneRequestID reports whether id, as a client or proxy sent it, may be
// kept: 1 to MaxRequestID characters of [A-Za-z0-9._-]. Anything else
// (a log-injection attempt, a long value) is replaced by a fresh id.
func SaneRequestID(id string) bool {
	if id == "" || len(id) > MaxRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// NewRequestID returns a fresh request id: 128 random bits in hex.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RequestID gives every request an id: the X-Request-Id it came with when
// sane (SaneRequestID), else a fresh one. The id is echoed in the answer's
// X-Request-Id and kept where middleware.GetReqID finds it, for the logs.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !SaneRequestID(id) {
			id = NewRequestID()
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), middleware.RequestIDKey, id)))
	})
}
