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
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/onecommons/commonsid/access"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/mail"
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
	"login_second_factor", "login_recovery_kit", "account_mfa_codes", "too_many", "forgot", "reset", "verify_email"}

// Templates holds one parsed template set per page and language
// (templateKey).
type Templates map[string]*template.Template

func templateKey(lang, page string) string { return lang + "/" + page }

// ParseTemplates parses every page, in every language (locale.go), from dir
// (the web/ folder on disk) or, with dir empty, from the embedded copy. Each
// page is base + the page + every partial (a template file that is not a
// page). It fails on the first bad template.
func ParseTemplates(dir string) (Templates, error) {
	fsys, err := files(dir)
	if err != nil {
		return nil, err
	}
	all, err := fs.Glob(fsys, "templates/*.html")
	if err != nil {
		return nil, err
	}
	isPage := map[string]bool{"base": true}
	for _, p := range pages {
		isPage[p] = true
	}
	var partials []string
	for _, f := range all {
		if isPage[strings.TrimSuffix(path.Base(f), ".html")] {
			continue
		}
		// A partial defines named templates only; a file with its own
		// content is a page (listed in pages).
		if b, err := fs.ReadFile(fsys, f); err != nil {
			return nil, err
		} else if !bytes.Contains(b, []byte(`{{define "content"}}`)) {
			partials = append(partials, f)
		}
	}
	out := Templates{}
	for _, lang := range messages.langs {
		funcs := messages.funcs(lang)
		for _, p := range pages {
			files := append([]string{"templates/base.html", "templates/" + p + ".html"}, partials...)
			t, err := template.New(p).Funcs(funcs).ParseFS(fsys, files...)
			if err != nil {
				return nil, fmt.Errorf("parse template %s: %w", p, err)
			}
			out[templateKey(lang, p)] = t
		}
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
	// Mail sends the verification and password-reset links (account_links.go);
	// nil sends none. Issuer is the cloud's URL the links start with.
	Mail   mail.Sender
	Issuer string

	deviceKeyOnce    sync.Once
	processDeviceKey []byte
	// notices counts the notices being sent apart from their requests
	// (signin_notices.go); WaitNotices waits for them.
	notices sync.WaitGroup
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
	// Access reads contribution levels for the dashboard
	// (account_access.go); nil hides the section.
	Access *access.Service
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

	// PageInfo tells the login, sign-up and consent pages about the
	// authorization request a return_to leads back to (the service's name,
	// ui_locales); nil: pages know nothing of it.
	PageInfo func(ctx context.Context, returnTo string) PageInfo
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
		h.mountAccountLinks(r)
		static, _ := files(h.WebDir)
		r.Handle("/static/*", http.FileServerFS(static))
	})
	// Unknown paths: the styled 404 page for browsers, plain text for
	// programs.
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept"), "text/html") {
			http.NotFound(w, r)
			return
		}
		SecurityHeaders(http.HandlerFunc(h.NotFound)).ServeHTTP(w, r)
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

// Render executes a page into a buffer, then writes it, in the language
// chosen for the request (locale.go), with the header's signed-in person.
func (h *Handler) Render(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	lang, service := h.pageContext(r, data)
	t, ok := h.Templates[templateKey(lang, page)]
	if !ok {
		h.Log.ErrorContext(r.Context(), "no template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	data["Cloud"] = h.Cloud
	data["Sharing"] = sharingChoices // the federation sharing choices, explained (sharing.go)
	data["Lang"] = lang
	if _, ok := data["Service"]; !ok && service != "" {
		data["Service"] = service
	}
	if _, ok := data["Me"]; !ok {
		data["Me"] = h.signedInHandle(r)
	}
	if _, ok := data["FieldErrors"]; !ok {
		data["FieldErrors"] = map[string]*fieldError{}
		data["FirstInvalid"] = ""
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "base", data); err != nil {
		h.Log.ErrorContext(r.Context(), "render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", lang)
	w.Header().Add("Vary", "Accept-Language")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// PageInfo is what a page learns from the authorization request it belongs
// to: the service's name and the request's ui_locales.
type PageInfo struct {
	Service   string
	UILocales string
}

// pageContext chooses the page's language (locale.go) and names the
// service of the authorization request the page belongs to, if any.
func (h *Handler) pageContext(r *http.Request, data map[string]any) (lang, service string) {
	ui, _ := data["UILocales"].(string)
	if h.PageInfo != nil {
		if rt := pageReturnTo(r, data); rt != "" {
			info := h.PageInfo(r.Context(), rt)
			service = info.Service
			if ui == "" {
				ui = info.UILocales
			}
		}
	}
	if ui == "" {
		ui = formValue(r, "ui_locales")
	}
	if l, ok := messages.fromUILocales(ui); ok {
		return l, service
	}
	if l, ok := messages.fromAcceptLanguage(r.Header.Get("Accept-Language")); ok {
		return l, service
	}
	return DefaultLanguage, service
}

// pageReturnTo is the authorization request a page belongs to: its
// return_to (in the data, the query or the form) or its challenge.
func pageReturnTo(r *http.Request, data map[string]any) string {
	if rt, _ := data["ReturnTo"].(string); rt != "" {
		return rt
	}
	if rt := localPath(formValue(r, "return_to")); rt != "" {
		return rt
	}
	if ch := formValue(r, "challenge"); ch != "" && len(ch) <= 100 {
		return "/authorize/resume?challenge=" + url.QueryEscape(ch)
	}
	return ""
}

// formValue reads a parameter of the query, or of a form already parsed
// (never the body itself).
func formValue(r *http.Request, name string) string {
	if v := r.URL.Query().Get(name); v != "" {
		return v
	}
	if r.PostForm != nil {
		return r.PostForm.Get(name)
	}
	return ""
}

// signedInHandle is the handle of the person signed in to this browser, or
// "" (the page header).
func (h *Handler) signedInHandle(r *http.Request) string {
	if h.Sessions == nil {
		return ""
	}
	c, err := r.Cookie(h.sessionCookie())
	if err != nil || c.Value == "" {
		return ""
	}
	_, a, err := h.Sessions.Resolve(r.Context(), c.Value)
	if err != nil {
		return ""
	}
	return a.Handle
}

// NotFound answers an unknown path with the 404 page.
func (h *Handler) NotFound(w http.ResponseWriter, r *http.Request) {
	h.Render(w, r, http.StatusNotFound, "error", map[string]any{"Title": "Not found", "Message": "There is nothing here.", "Status": http.StatusNotFound})
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request) error {
	h.Render(w, r, http.StatusOK, "home", nil)
	return nil
}

type signupForm struct{ Handle, Name, Email string }

func (h *Handler) signupForm(w http.ResponseWriter, r *http.Request) error {
	h.Render(w, r, http.StatusOK, "signup", map[string]any{"Form": signupForm{}, "ReturnTo": localPath(r.URL.Query().Get("return_to")), "UILocales": r.URL.Query().Get("ui_locales")})
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
		errs, status := formErrors(err)
		if status == 0 {
			return err
		}
		d := fieldErrorData(errs, signupFields)
		d["Form"], d["ReturnTo"], d["UILocales"] = f, localPath(r.PostFormValue("return_to")), r.PostFormValue("ui_locales")
		h.Render(w, r, status, "signup", d)
		return nil
	}
	h.Log.InfoContext(r.Context(), "account created", "via", "signup")
	h.sendVerificationLogged(r, a.DID)
	if err := h.applySignupSharing(r, a); err != nil {
		return err
	}
	if h.Sessions == nil {
		if kit != nil {
			h.recoveryKit(w, r, a, kit, "/login")
			return nil
		}
		h.Render(w, r, http.StatusOK, "signup_done", map[string]any{"Account": a})
		return nil
	}
	// Signed in at once, and on to where the person was going: the
	// authorization request, else the welcome page and the dashboard.
	if err := h.startSession(w, r, a, amrPassword, map[string]any{"method": "password"}); err != nil {
		return err
	}
	rt := localPath(r.PostFormValue("return_to"))
	if kit != nil {
		if rt == "" {
			rt = "/account"
		}
		h.recoveryKit(w, r, a, kit, rt)
		return nil
	}
	if rt != "" {
		http.Redirect(w, r, rt, http.StatusSeeOther)
		return nil
	}
	h.Render(w, r, http.StatusOK, "signup_done", map[string]any{"Account": a, "Me": a.Handle, "SignedIn": true})
	return nil
}

// fieldError is one problem of a form, tied to its field: the message id
// (locale.go) and the detail the message shows.
type fieldError struct {
	Field, ID, Detail string
}

// signupFields are the sign-up form's fields in page order: the first with
// a problem gets the focus.
var signupFields = []string{"handle", "name", "email", "password"}

// formErrors turns validation and conflict errors into the problems of the
// form; status 0 means the error is not the person's to fix.
func formErrors(err error) ([]*fieldError, int) {
	if errors.Is(err, identity.ErrHandleTaken) {
		return []*fieldError{{Field: "handle", ID: "signup_error_handle_taken"}}, http.StatusConflict
	}
	var out []*fieldError
	for _, e := range unjoin(err) {
		var ve *identity.ValidationError
		if !errors.As(e, &ve) {
			return nil, 0
		}
		out = append(out, &fieldError{Field: ve.Field, ID: "signup_error_" + ve.Field, Detail: ve.Message})
	}
	return out, http.StatusBadRequest
}

// fieldErrorData is what a form page shows of its problems: the list, the
// problem of each field, and the first field to focus.
func fieldErrorData(errs []*fieldError, order []string) map[string]any {
	byField := map[string]*fieldError{}
	for _, e := range errs {
		if byField[e.Field] == nil {
			byField[e.Field] = e
		}
	}
	first := ""
	for _, f := range order {
		if byField[f] != nil {
			first = f
			break
		}
	}
	return map[string]any{"Errors": errs, "FieldErrors": byField, "FirstInvalid": first}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
