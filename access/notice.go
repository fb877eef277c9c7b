package access

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/onecommons/commonsid/store"
)

// Notices from payment services.
const (
	// NoticePath is where payment services post their notices.
	NoticePath = "/commons/v1/contributions"
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>".
	SignatureHeader = "Commons-Signature"
	// MaxNoticeBytes bounds a notice's body.
	MaxNoticeBytes = 16 << 10
	// NoticeTolerance is how far t may be from now, either way.
	NoticeTolerance = 5 * time.Minute
	// MaxNoticeIDBytes bounds a notice id.
	MaxNoticeIDBytes = 128
	// MinSecretBytes is the shortest secret a cloud accepts.
	MinSecretBytes = 32
)

// Secret is the secret the cloud shares with one payment service.
type Secret struct {
	Service string
	Key     []byte
}

var serviceName = levelName

// ParseSecrets reads COMMONSID_CONTRIBUTION_SECRETS:
// <service>:<secret>[,<service>:<secret>...], each service at most once,
// each secret at least MinSecretBytes long. Errors never repeat a secret.
func ParseSecrets(s string) ([]Secret, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []Secret
	var errs []error
	seen := map[string]bool{}
	for i, item := range strings.Split(s, ",") {
		svc, key, ok := strings.Cut(strings.TrimSpace(item), ":")
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("entry %d is not <service>:<secret>", i+1))
		case !serviceName.MatchString(svc):
			errs = append(errs, fmt.Errorf("entry %d: the service id must be lower case letters, digits, _ and -, starting with a letter, at most 32", i+1))
		case seen[svc]:
			errs = append(errs, fmt.Errorf("service %q is given twice", svc))
		case len(key) < MinSecretBytes:
			errs = append(errs, fmt.Errorf("the secret of service %q must be at least %d characters", svc, MinSecretBytes))
		default:
			seen[svc] = true
			out = append(out, Secret{Service: svc, Key: []byte(key)})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Sign returns the Commons-Signature header value of body at t: what a
// payment service sends.
func Sign(key, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(key, ts, body))
}

func mac(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors of Verify.
var (
	ErrSignature = errors.New("the notice's signature is missing or wrong")
	ErrStale     = errors.New("the notice's timestamp is more than five minutes from now")
)

// Verify checks a Commons-Signature header against body and returns the
// service whose secret made it. Every secret is tried, in constant time
// per comparison; several v1 values are allowed (a service rotating its
// secret).
func Verify(secrets []Secret, header string, body []byte, now time.Time) (string, error) {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			if ts != "" {
				return "", ErrSignature
			}
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size && len(sigs) < 4 {
				sigs = append(sigs, b)
			}
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 || len(ts) > 12 || strings.TrimLeft(ts, "0123456789") != "" {
		return "", ErrSignature
	}
	found := ""
	for _, s := range secrets {
		want := mac(s.Key, ts, body)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) && found == "" {
				found = s.Service
			}
		}
	}
	if found == "" {
		return "", ErrSignature
	}
	if d := now.Sub(time.Unix(t, 0)); d > NoticeTolerance || d < -NoticeTolerance {
		return "", ErrStale
	}
	return found, nil
}

// Notice is the body of a payment service's notice.
type Notice struct {
	NoticeID  string `json:"notice_id"`
	Account   string `json:"account"` // DID or handle
	Level     string `json:"level"`
	ExpiresAt string `json:"expires_at"` // RFC 3339; ignored for basic
}

// NoticeHandler serves POST /commons/v1/contributions.
type NoticeHandler struct {
	Service *Service
	Secrets []Secret
	Log     *slog.Logger
}

// Mount adds the notice route (answered 404 when no secret is configured).
func (h *NoticeHandler) Mount(r chi.Router) {
	r.Post(NoticePath, h.ServeHTTP)
}

type noticeAnswer struct {
	NoticeID  string `json:"notice_id"`
	Account   string `json:"account"`
	Level     string `json:"level"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

// ServeHTTP verifies and applies one notice.
func (h *NoticeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(h.Secrets) == 0 {
		writeError(w, http.StatusNotFound, "not_found", "This cloud accepts no contribution notices.")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxNoticeBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "The body could not be read.")
		return
	}
	if len(body) > MaxNoticeBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", "The notice is larger than 16 KiB.")
		return
	}
	now := h.Service.now()
	svc, err := Verify(h.Secrets, r.Header.Get(SignatureHeader), body, now)
	if err != nil {
		h.log().WarnContext(r.Context(), "contribution notice refused", "reason", err.Error())
		writeError(w, http.StatusUnauthorized, "invalid_signature", err.Error()+".")
		return
	}
	var n Notice
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&n); err != nil || dec.More() {
		writeError(w, http.StatusBadRequest, "invalid_request", "The notice is not a JSON object of notice_id, account, level and expires_at.")
		return
	}
	if n.NoticeID == "" || len(n.NoticeID) > MaxNoticeIDBytes || n.Account == "" || len(n.Account) > 512 {
		writeError(w, http.StatusBadRequest, "invalid_request", "notice_id (at most 128 bytes) and account are required.")
		return
	}
	if !h.Service.Known(n.Level) {
		writeError(w, http.StatusBadRequest, "unknown_level", fmt.Sprintf("Level %.40q is not one of %s.", n.Level, strings.Join(h.Service.AllLevels(), ", ")))
		return
	}
	var until time.Time
	if n.Level != Basic {
		if until, err = time.Parse(time.RFC3339, n.ExpiresAt); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "expires_at must be an RFC 3339 time.")
			return
		}
	}
	a, err := h.Service.Find(r.Context(), n.Account)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "unknown_account", "No account of that DID or handle is homed here.")
		return
	}
	if err != nil {
		h.unavailable(w, r, err)
		return
	}
	g, err := h.Service.Set(r.Context(), a, n.Level, until, SourceNoticePrefix+svc, n.NoticeID)
	switch {
	case errors.Is(err, ErrReplayed):
		writeError(w, http.StatusConflict, "replayed_notice", "A notice with this notice_id was accepted before; nothing changed.")
		return
	case errors.Is(err, ErrNotHome):
		writeError(w, http.StatusNotFound, "unknown_account", "No account of that DID or handle is homed here.")
		return
	case errors.Is(err, ErrExpiry):
		writeError(w, http.StatusBadRequest, "invalid_request", "expires_at must be in the future.")
		return
	case err != nil:
		h.unavailable(w, r, err)
		return
	}
	h.log().InfoContext(r.Context(), "contribution notice applied", "service", svc, "level", g.Level)
	v := Value(g, now)
	writeJSON(w, http.StatusOK, noticeAnswer{NoticeID: n.NoticeID, Account: a.DID, Level: v.Level, ExpiresAt: v.ExpiresAt})
}

func (h *NoticeHandler) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	h.log().ErrorContext(r.Context(), "contribution notice", "err", err)
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The notice could not be recorded right now; send it again.")
}

func (h *NoticeHandler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.New(slog.DiscardHandler)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}
