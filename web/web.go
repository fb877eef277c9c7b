package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/portable"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

//go:embed templates static
var embedded embed.FS

// pages are parsed at start-up, each as base + page.
var pages = []string{"home", "signup", "signup_done", "error", "login", "consent", "peer_consent", "logout", "logged_out",
	"account", "account_profile", "account_services", "account_activity", "account_sessions", "account_privacy",
	"account_security", "account_data", "account_deleted", "moved", "imported", "recovery_kit", "account_recovery", "recover", "recover_done",
	"login_second_factor", "account_mfa_codes", "too_many"}

// Templates holds one parsed template set per page.
type Templates map[string]*template.Template

// ParseTemplates parses every page from dir (the web/ folder on disk) or,
// with dir empty, from the embedded copy. It fails on the first bad template.
func ParseTemplates(dir string) (Templates, error) {
	fsys, err := files(dir)
	if err != nil {
		return nil, err
	}
	out := Templates{}
	for _, p := range pages {
		files := []string{"templates/base.html", "templates/" + p + ".html"}
		if strings.HasPrefix(p, "account") {
			files = append(files, "templates/account_nav.html", "templates/account_mfa.html")
		}
		t, err := template.New(p).ParseFS(fsys, files...)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", p, err)
		}
		out[p] = t
	}
	return out, nil
}

func files(dir string) (fs.FS, error) {
	if dir == "" {
		return embedded, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "templates", "base.html")); err != nil {
		return nil, fmt.Errorf("--web-dir %s does not hold templates/base.html: %w", dir, err)
	}
	return os.DirFS(dir), nil
}

// SessionCookie is the name of the browser sign-on cookie.
const SessionCookie = "commonsid_session"

// Handler serves the pages.
type Handler struct {
	Accounts  *identity.Service
	Sessions  *identity.Sessions
	Privacy   privacy.Store
	Templates Templates
	Log       *slog.Logger
	Cloud     string // the cloud's DID, shown in the footer
	WebDir    string // serve static files from disk when set
	// SecureCookies marks cookies Secure (the issuer is https).
	SecureCookies bool
	Now           func() time.Time
	Limits        *limits.Limits
	// DeviceKey is the key of the known-device cookie's MAC, the same on
	// every replica (signin_limits.go); empty: a key of this process.
	DeviceKey []byte
	// OnLockout is told when failures start slowing sign-ins to an
	// account (to mail the person); nil tells nobody.
	OnLockout func(ctx context.Context, a *identity.Account, n LockoutNotice)
	// ResetPath is the page to choose a new password, linked from the
	// 429 page; empty links none.
	ResetPath string

	deviceKeyOnce    sync.Once
	processDeviceKey []byte
	// PrivacySvc applies settings changes and revocations.
	PrivacySvc *privacy.Service
	// Events records what peers replicate (account.deleted…); nil records
	// nothing.
	Events interface {
		AppendEvent(ctx context.Context, typ, accountDID string, at time.Time, payload map[string]any) error
	}
	// Portable exports and imports accounts ("Download my identity",
	// "Bring my identity"); nil hides both.
	Portable *portable.Service
	// Services describes a service by client_id for the dashboard.
	Services func(ctx context.Context, clientID string) (*ServiceInfo, error)
	// WebAuthn, Passkeys and Ceremonies enable passkeys; with any of them
	// nil the cloud runs without.
	WebAuthn   *webauthn.WebAuthn
	Passkeys   identity.PasskeyStore
	Ceremonies identity.CeremonyStore
	// HomeClouds lists the peer clouds offered on the sign-in page
	// ("sign in with your home cloud"); nil offers none.
	HomeClouds func(ctx context.Context) ([]HomeCloud, error)

	// EndingSignIns prepares the logout tokens owed to services when a
	// person's sign-in with them ends (backchannel.go); nil tells nobody.
	EndingSignIns func(ctx context.Context, did, clientID string) (queue func(ctx context.Context) error)

	// The federation, for recovery at this cloud and the person's key
	// changes (recover.go, recovery.go). LatestDIDLog returns the latest
	// witnessed log (and did-witness.json) of a SCID held here or by a peer
	// (nil: this cloud's copy only); MemberWitnesses the witness ids of the
	// commons; CollectWitness the did-witness.json of a new log (existing:
	// the file so far). Without the last two, moves and kit rotations are
	// refused.
	LatestDIDLog    func(ctx context.Context, scid string) (log, witness []byte, err error)
	MemberWitnesses func(ctx context.Context) ([]string, error)
	CollectWitness  func(ctx context.Context, log, existing []byte) ([]byte, error)
}

// Mount adds the routes to r.
func (h *Handler) Mount(r chi.Router) {
	if h.Limits != nil && h.Limits.Page == nil {
		h.Limits.Page = h.TooManyPage
	}
	r.Group(func(r chi.Router) {
		r.Use(SecurityHeaders)
		r.Method(http.MethodGet, "/", h.wrap(h.home))
		r.Method(http.MethodGet, "/signup", h.wrap(h.signupForm))
		r.With(crossOrigin, h.Limits.PerIP(20, time.Hour, false)).Method(http.MethodPost, "/signup", h.wrap(h.signup))
		r.Method(http.MethodGet, "/login", h.wrap(h.loginForm))
		// The password's budgets are spent in the handler (signin_limits.go).
		r.With(crossOrigin, h.Limits.PerIP(30, time.Minute, false)).Method(http.MethodPost, "/login", h.wrap(h.login))
		h.mountAccount(r)
		h.mountPortable(r)
		r.Get("/dids/{did}", h.accountDIDDocument)
		h.mountDIDLogs(r)
		h.mountPasskeys(r)
		h.mountSecondFactors(r)
		h.mountRecovery(r)
		h.mountRecover(r)
		static, _ := files(h.WebDir)
		r.Handle("/static/*", http.FileServerFS(static))
	})
}

func crossOrigin(next http.Handler) http.Handler {
	return http.NewCrossOriginProtection().Handler(next)
}

// scriptPages load /static/passkey.js; no other page runs script.
var scriptPages = map[string]bool{"/login": true, "/account/security": true, secondFactorPath: true}

// SecurityHeaders sets the headers every page carries. form-action also
// allows http(s) targets because browsers apply it to the redirects that
// follow a form post: signing in ends with a redirect to the service.
// connect-src lets the passkey script call the JSON endpoints.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		csp := httpx.PageCSP
		if scriptPages[r.URL.Path] {
			csp = httpx.ScriptCSP
		}
		httpx.SetPageHeaders(w, csp)
		next.ServeHTTP(w, r)
	})
}

// httpError is an error with the status and message to show.
type httpError struct {
	status int
	title  string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// wrap adapts a handler that returns an error: not-found → 404, bad input →
// 400, anything else is logged and shown as a 500 page.
func (h *Handler) wrap(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil || h.renderTooMany(w, r, err) {
			return
		}
		var he *httpError
		var ve *identity.ValidationError
		switch {
		case errors.As(err, &he):
		case errors.Is(err, store.ErrNotFound):
			he = &httpError{http.StatusNotFound, "Not found", "There is nothing here."}
		case errors.As(err, &ve):
			he = &httpError{http.StatusBadRequest, "Bad request", ve.Error()}
		default:
			// Store errors name the handle or DID they were about:
			// the cause alone keeps personal data out of the log.
			// What is left failed for the server's reasons, in practice
			// the database: nothing was done, and trying again later may
			// work (503 with Retry-After).
			h.Log.ErrorContext(r.Context(), "page failed, answered 503", "path", r.URL.Path, "request_id", middleware.GetReqID(r.Context()), "err", identity.RootCause(err))
			w.Header().Set("Retry-After", RetryAfterSeconds)
			he = &httpError{http.StatusServiceUnavailable, "Temporarily unavailable", "The server could not complete the request right now. Nothing was changed; please try again in a moment."}
		}
		h.Render(w, r, he.status, "error", map[string]any{"Title": he.title, "Message": he.msg})
	})
}

// Render executes a page into a buffer, then writes it.
func (h *Handler) Render(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any) {
	t, ok := h.Templates[page]
	if !ok {
		h.Log.ErrorContext(r.Context(), "no template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if data == nil {
		data = map[string]any{}
	}
	data["Cloud"] = h.Cloud
	data["Sharing"] = sharingChoices // the federation sharing choices, explained (sharing.go)
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "base", data); err != nil {
		h.Log.ErrorContext(r.Context(), "render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request) error {
	h.Render(w, r, http.StatusOK, "home", nil)
	return nil
}

type signupForm struct{ Handle, Name, Email string }

func (h *Handler) signupForm(w http.ResponseWriter, r *http.Request) error {
	h.Render(w, r, http.StatusOK, "signup", map[string]any{"Form": signupForm{}, "ReturnTo": localPath(r.URL.Query().Get("return_to"))})
	return nil
}

const maxFormBytes = 64 << 10

func (h *Handler) signup(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return &httpError{http.StatusBadRequest, "Bad request", "The form could not be read."}
	}
	f := signupForm{Handle: r.PostFormValue("handle"), Name: r.PostFormValue("name"), Email: r.PostFormValue("email")}
	a, kit, err := h.Accounts.CreateWithRecoveryKit(r.Context(), identity.CreateParams{
		Handle: f.Handle, Email: f.Email, Name: f.Name, Password: r.PostFormValue("password"),
	})
	if err != nil {
		msgs, status := formErrors(err)
		if status == 0 {
			return err
		}
		h.Render(w, r, status, "signup", map[string]any{"Form": f, "Errors": msgs, "ReturnTo": localPath(r.PostFormValue("return_to"))})
		return nil
	}
	h.Log.InfoContext(r.Context(), "account created", "via", "signup")
	if err := h.applySignupSharing(r, a); err != nil {
		return err
	}
	if rt := localPath(r.PostFormValue("return_to")); rt != "" && h.Sessions != nil {
		// Signed in at once, and back to where the person was going.
		if err := h.startSession(w, r, a, amrPassword, map[string]any{"method": "password"}); err != nil {
			return err
		}
		if kit != nil {
			h.recoveryKit(w, r, a, kit, rt)
			return nil
		}
		http.Redirect(w, r, rt, http.StatusSeeOther)
		return nil
	}
	if kit != nil {
		h.recoveryKit(w, r, a, kit, "/login")
		return nil
	}
	h.Render(w, r, http.StatusOK, "signup_done", map[string]any{"Account": a})
	return nil
}

// formErrors turns validation and conflict errors into messages for the
// form; status 0 means the error is not the person's to fix.
func formErrors(err error) ([]string, int) {
	if errors.Is(err, identity.ErrHandleTaken) {
		return []string{"That handle is already taken. Please choose another."}, http.StatusConflict
	}
	var msgs []string
	for _, e := range unjoin(err) {
		var ve *identity.ValidationError
		if !errors.As(e, &ve) {
			return nil, 0
		}
		msgs = append(msgs, strings.ToUpper(ve.Field[:1])+ve.Field[1:]+" "+ve.Message+".")
	}
	return msgs, http.StatusBadRequest
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
