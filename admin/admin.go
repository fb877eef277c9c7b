package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/onecommons/commonsid/internal/httpx"
)

// Scopes of client credentials tokens that the admin API accepts.
const (
	ScopeAdmin = "admin"      // every route
	ScopeRead  = "admin:read" // GET routes only
)

// MinTokenLength is the shortest admin token accepted from the
// configuration.
const MinTokenLength = 32

// MaxBody is the largest request body of the API.
const MaxBody = 64 << 10

// Paging of GET /admin/v1/accounts.
const (
	DefaultLimit = 100
	MaxLimit     = 500
)

// ErrInvalidToken is what a ClientTokens function returns for a token that
// is not a live admin-capable access token; any other error is a failure
// to check (answered 503).
var ErrInvalidToken = errors.New("invalid access token")

// Error is an error the API answers as it is: status, code and description.
type Error struct {
	Status      int
	Code        string
	Description string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

// NotFound, BadRequest and Conflict build the errors a Backend returns.
func NotFound(format string, a ...any) error {
	return &Error{http.StatusNotFound, "not_found", fmt.Sprintf(format, a...)}
}

// BadRequest is a 400 invalid_request.
func BadRequest(format string, a ...any) error {
	return &Error{http.StatusBadRequest, "invalid_request", fmt.Sprintf(format, a...)}
}

// Conflict is a 409: the change is not allowed in the object's state.
func Conflict(format string, a ...any) error {
	return &Error{http.StatusConflict, "conflict", fmt.Sprintf(format, a...)}
}

// Unavailable is a 503: the database did not answer.
func Unavailable(err error) error {
	return &unavailableError{err}
}

type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return "unavailable: " + e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// AccountPage is a page of accounts; NextAfter is set when there may be
// more (pass it as ?after=).
type AccountPage struct {
	Accounts  []any  `json:"accounts"`
	NextAfter string `json:"next_after,omitempty"`
}

// PasswordReset is the answer of reset-password. Password is set only when
// it was generated: it is shown this once and stored only as a hash.
type PasswordReset struct {
	Handle   string `json:"handle"`
	Password string `json:"password,omitempty"`
	// Generated tells that the password was generated here.
	Generated bool `json:"generated"`
}

// Backend does the work. Its methods return *Error (or an error wrapping
// one) for what the caller got wrong; any other error is answered 500.
type Backend interface {
	ListAccounts(ctx context.Context, after string, limit int) (*AccountPage, error)
	ShowAccount(ctx context.Context, ref string) (any, error)
	DisableAccount(ctx context.Context, ref string) (any, error)
	EnableAccount(ctx context.Context, ref string) (any, error)
	DeleteAccount(ctx context.Context, ref string) error
	// ResetPassword sets password, or a generated one when it is "".
	ResetPassword(ctx context.Context, ref, password string) (*PasswordReset, error)

	ListClients(ctx context.Context) ([]any, error)
	ShowClient(ctx context.Context, id string) (any, error)
	// CreateClient registers a client from RFC 7591 metadata (a JSON
	// object, already checked to be one).
	CreateClient(ctx context.Context, metadata []byte) (any, error)
	DeleteClient(ctx context.Context, id string) error

	ListKeys(ctx context.Context) ([]any, error)
	RotateKey(ctx context.Context, alg string) (any, error)

	ListPeers(ctx context.Context) ([]any, error)
	AddPeer(ctx context.Context, issuer, endpoint string) (any, error)
	RemovePeer(ctx context.Context, issuer string) error
}

// AccessBackend is a Backend that also reads and sets contribution levels
// (package access): GET and PUT /admin/v1/accounts/{ref}/access.
type AccessBackend interface {
	ShowAccess(ctx context.Context, ref string) (any, error)
	// SetAccess gives the account level until the RFC 3339 time until
	// ("" for basic).
	SetAccess(ctx context.Context, ref, level, until string) (any, error)
}

// Config configures the API.
type Config struct {
	// Token is the admin token; "" for none. It must be at least
	// MinTokenLength characters.
	Token string
	// ClientTokens checks an access token issued by this cloud through
	// client credentials and returns its client and scopes; nil for none.
	// It returns ErrInvalidToken (possibly wrapped) for a token it refuses.
	ClientTokens func(ctx context.Context, token string) (clientID string, scopes []string, err error)
	// Metrics serves /metrics; nil for none.
	Metrics http.Handler
	Backend Backend
	Log     *slog.Logger
	// Realm is the realm of WWW-Authenticate (the issuer).
	Realm string
}

// API is the admin HTTP surface.
type API struct {
	cfg       Config
	tokenHash []byte // SHA-256 of Config.Token, nil when none
}

// New checks the configuration and builds the API. The admin token itself
// is not kept, only its hash.
func New(cfg Config) (*API, error) {
	if cfg.Backend == nil {
		return nil, errors.New("admin: no backend")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &API{cfg: cfg}
	if cfg.Token != "" {
		if err := CheckToken(cfg.Token); err != nil {
			return nil, err
		}
		h := sha256.Sum256([]byte(cfg.Token))
		a.tokenHash = h[:]
	}
	a.cfg.Token = ""
	return a, nil
}

// CheckToken reports whether t may be an admin token: long enough, and
// printable ASCII without spaces (it travels in a header).
func CheckToken(t string) error {
	if len(t) < MinTokenLength {
		return fmt.Errorf("the admin token must be at least %d characters (make one with: openssl rand -base64 32)", MinTokenLength)
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return errors.New("the admin token must be printable ASCII without spaces")
		}
	}
	return nil
}

// HasToken reports whether an admin token is configured.
func (a *API) HasToken() bool { return a.tokenHash != nil }

// Handler is the whole admin listener: /metrics, /debug/pprof/ and
// /admin/v1, all behind authentication.
func (a *API) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(httpx.RequestID, middleware.Recoverer)
	r.Use(httpx.Bound(func(*http.Request) httpx.Limit {
		return httpx.Limit{Body: MaxBody, Query: 4096, JSON: true}
	}))
	r.Use(a.authenticate)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &Error{http.StatusNotFound, "not_found", "No such route."})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &Error{http.StatusMethodNotAllowed, "method_not_allowed", "The route does not take " + r.Method + "."})
	})
	if a.cfg.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", a.cfg.Metrics)
	}
	r.Get("/debug/pprof/", pprof.Index)
	r.Get("/debug/pprof/cmdline", pprof.Cmdline)
	r.Get("/debug/pprof/profile", pprof.Profile)
	r.Get("/debug/pprof/symbol", pprof.Symbol)
	r.Get("/debug/pprof/trace", pprof.Trace)
	r.Get("/debug/pprof/{name}", func(w http.ResponseWriter, r *http.Request) {
		pprof.Handler(chi.URLParam(r, "name")).ServeHTTP(w, r)
	})
	r.Route("/admin/v1", func(r chi.Router) {
		r.Get("/accounts", a.listAccounts)
		r.Get("/accounts/{ref}", a.one(func(ctx context.Context, ref string, _ *http.Request) (any, error) {
			return a.cfg.Backend.ShowAccount(ctx, ref)
		}))
		r.Post("/accounts/{ref}/disable", a.one(func(ctx context.Context, ref string, _ *http.Request) (any, error) {
			return a.cfg.Backend.DisableAccount(ctx, ref)
		}))
		r.Post("/accounts/{ref}/enable", a.one(func(ctx context.Context, ref string, _ *http.Request) (any, error) {
			return a.cfg.Backend.EnableAccount(ctx, ref)
		}))
		r.Delete("/accounts/{ref}", a.one(func(ctx context.Context, ref string, _ *http.Request) (any, error) {
			return nil, a.cfg.Backend.DeleteAccount(ctx, ref)
		}))
		r.Post("/accounts/{ref}/reset-password", a.one(func(ctx context.Context, ref string, r *http.Request) (any, error) {
			var body struct {
				Password string `json:"password"`
			}
			if err := decodeBody(r, &body, true); err != nil {
				return nil, err
			}
			return a.cfg.Backend.ResetPassword(ctx, ref, body.Password)
		}))
		if ab, ok := a.cfg.Backend.(AccessBackend); ok {
			r.Get("/accounts/{ref}/access", a.one(func(ctx context.Context, ref string, _ *http.Request) (any, error) {
				return ab.ShowAccess(ctx, ref)
			}))
			r.Put("/accounts/{ref}/access", a.one(func(ctx context.Context, ref string, r *http.Request) (any, error) {
				var body struct {
					Level     string `json:"level"`
					ExpiresAt string `json:"expires_at"`
				}
				if err := decodeBody(r, &body, false); err != nil {
					return nil, err
				}
				if body.Level == "" {
					return nil, BadRequest("level is required")
				}
				return ab.SetAccess(ctx, ref, body.Level, body.ExpiresAt)
			}))
		}
		r.Get("/clients", a.list(a.cfg.Backend.ListClients))
		r.Get("/clients/{ref}", a.one(func(ctx context.Context, id string, _ *http.Request) (any, error) {
			return a.cfg.Backend.ShowClient(ctx, id)
		}))
		r.Post("/clients", a.run(func(ctx context.Context, r *http.Request) (any, error) {
			body, err := objectBody(r)
			if err != nil {
				return nil, err
			}
			return a.cfg.Backend.CreateClient(ctx, body)
		}, http.StatusCreated))
		r.Delete("/clients/{ref}", a.one(func(ctx context.Context, id string, _ *http.Request) (any, error) {
			return nil, a.cfg.Backend.DeleteClient(ctx, id)
		}))
		r.Get("/keys", a.list(a.cfg.Backend.ListKeys))
		r.Post("/keys/rotate", a.run(func(ctx context.Context, r *http.Request) (any, error) {
			var body struct {
				Alg string `json:"alg"`
			}
			if err := decodeBody(r, &body, true); err != nil {
				return nil, err
			}
			return a.cfg.Backend.RotateKey(ctx, body.Alg)
		}, http.StatusCreated))
		r.Get("/peers", a.list(a.cfg.Backend.ListPeers))
		r.Post("/peers", a.run(func(ctx context.Context, r *http.Request) (any, error) {
			var body struct {
				Issuer   string `json:"issuer"`
				Endpoint string `json:"endpoint"`
			}
			if err := decodeBody(r, &body, false); err != nil {
				return nil, err
			}
			if body.Issuer == "" {
				return nil, BadRequest("issuer is required")
			}
			return a.cfg.Backend.AddPeer(ctx, body.Issuer, body.Endpoint)
		}, http.StatusCreated))
		r.Delete("/peers", a.run(func(ctx context.Context, r *http.Request) (any, error) {
			q := r.URL.Query()
			if len(q["issuer"]) != 1 || q.Get("issuer") == "" {
				return nil, BadRequest("give the peer as one ?issuer=URL")
			}
			return nil, a.cfg.Backend.RemovePeer(ctx, q.Get("issuer"))
		}, http.StatusNoContent))
	})
	return r
}

// authenticate lets through a request with an admin token, or a client
// credentials token with the scope its method needs.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok {
			a.challenge(w, "invalid_request", "An admin token or an access token with the admin scope is required (Authorization: Bearer).")
			return
		}
		if a.tokenHash != nil {
			h := sha256.Sum256([]byte(tok))
			if subtle.ConstantTimeCompare(h[:], a.tokenHash) == 1 {
				a.serveLogged(next, w, r, "admin token")
				return
			}
		}
		if a.cfg.ClientTokens == nil {
			a.challenge(w, "invalid_token", "The token is not the admin token.")
			return
		}
		clientID, scopes, err := a.cfg.ClientTokens(r.Context(), tok)
		if errors.Is(err, ErrInvalidToken) {
			a.challenge(w, "invalid_token", "The token is not the admin token nor a live client credentials access token of this cloud.")
			return
		}
		if err != nil {
			a.cfg.Log.ErrorContext(r.Context(), "admin: checking an access token", "err", err)
			writeError(w, Unavailable(err))
			return
		}
		// Reads need admin:read, except the profiles: /debug/pprof/cmdline
		// shows the command line (a --db URL may hold a password) and a
		// goroutine dump the values on the stacks.
		need := ScopeAdmin
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			need = ScopeRead
		}
		if !hasScope(scopes, need) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope", scope=%q`, a.cfg.Realm, need))
			writeError(w, &Error{http.StatusForbidden, "insufficient_scope", "The access token was not granted the scope " + need + "."})
			return
		}
		a.serveLogged(next, w, r, "client "+clientID)
	})
}

// serveLogged serves an authenticated request; a change (any method but
// GET and HEAD) is logged at info level with who made it, the route
// pattern (not the path, which may hold a handle or DID) and the status.
func (a *API) serveLogged(next http.Handler, w http.ResponseWriter, r *http.Request, by string) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		next.ServeHTTP(w, r)
		return
	}
	ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
	next.ServeHTTP(ww, r)
	route := "unmatched"
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		route = rc.RoutePattern()
	}
	a.cfg.Log.InfoContext(r.Context(), "admin change", "by", by, "method", r.Method, "route", route,
		"status", ww.Status(), "request_id", middleware.GetReqID(r.Context()))
}

func hasScope(scopes []string, need string) bool {
	for _, s := range scopes {
		if s == ScopeAdmin || s == need {
			return true
		}
	}
	return false
}

func bearer(r *http.Request) (string, bool) {
	vs := r.Header.Values("Authorization")
	if len(vs) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(vs[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func (a *API) challenge(w http.ResponseWriter, code, desc string) {
	if code == "invalid_request" {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q`, a.cfg.Realm))
	} else {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error=%q`, a.cfg.Realm, code))
	}
	writeError(w, &Error{http.StatusUnauthorized, code, desc})
}

func (a *API) listAccounts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k, v := range q {
		if k != "after" && k != "limit" {
			a.fail(w, r, BadRequest("unknown parameter %q", k))
			return
		}
		if len(v) != 1 {
			a.fail(w, r, BadRequest("parameter %q given more than once", k))
			return
		}
	}
	limit := DefaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			a.fail(w, r, BadRequest("limit must be a number from 1 to %d", MaxLimit))
			return
		}
		limit = n
	}
	page, err := a.cfg.Backend.ListAccounts(r.Context(), q.Get("after"), limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if page.Accounts == nil {
		page.Accounts = []any{}
	}
	writeJSON(w, http.StatusOK, page)
}

func (a *API) list(f func(context.Context) ([]any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.Query()) > 0 {
			a.fail(w, r, BadRequest("this list takes no parameters"))
			return
		}
		out, err := f(r.Context())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if out == nil {
			out = []any{}
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// one serves a route about one object named by {ref}; a nil result is 204.
func (a *API) one(f func(ctx context.Context, ref string, r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ref, err := url.PathUnescape(chi.URLParam(r, "ref"))
		if err != nil || ref == "" || len(ref) > 2048 {
			a.fail(w, r, BadRequest("no object named"))
			return
		}
		out, err := f(r.Context(), ref, r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if out == nil {
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (a *API) run(f func(ctx context.Context, r *http.Request) (any, error), status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out, err := f(r.Context(), r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if out == nil || status == http.StatusNoContent {
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, status, out)
	}
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *Error
	var ue *unavailableError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &ue):
		a.cfg.Log.ErrorContext(r.Context(), "admin: storage unavailable", "path", r.URL.Path, "err", err)
	default:
		a.cfg.Log.ErrorContext(r.Context(), "admin: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, err)
}

// decodeBody decodes a JSON object body into v strictly (unknown keys
// refused); an empty body is allowed when optional.
func decodeBody(r *http.Request, v any, optional bool) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return BadRequest("the body could not be read")
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		if optional {
			return nil
		}
		return BadRequest("a JSON object body is required")
	}
	if err := checkJSONType(r); err != nil {
		return err
	}
	if err := (httpx.StrictJSON{DisallowUnknown: true}).Decode(b, v); err != nil {
		return BadRequest("%v", err)
	}
	return nil
}

// objectBody reads a body that must be one JSON object.
func objectBody(r *http.Request) ([]byte, error) {
	if err := checkJSONType(r); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, BadRequest("the body could not be read")
	}
	var m map[string]json.RawMessage
	if err := (httpx.StrictJSON{}).Decode(b, &m); err != nil {
		return nil, BadRequest("%v", err)
	}
	if m == nil {
		return nil, BadRequest("the body must be a JSON object")
	}
	return b, nil
}

func checkJSONType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, _ := strings.Cut(ct, ";")
	if strings.TrimSpace(strings.ToLower(mt)) != "application/json" {
		return &Error{http.StatusUnsupportedMediaType, "invalid_request", "send the body as application/json"}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var ae *Error
	var ue *unavailableError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &ue):
		w.Header().Set("Retry-After", "5")
		ae = &Error{http.StatusServiceUnavailable, "temporarily_unavailable", "The database did not answer; retry later."}
	default:
		ae = &Error{http.StatusInternalServerError, "server_error", "The request failed; the server log has the reason."}
	}
	writeJSON(w, ae.Status, map[string]string{"error": ae.Code, "error_description": ae.Description})
}
