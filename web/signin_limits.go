package web

// Limits that protect the owner of an account.
//
// Every password check counts failures in budgets with a progressive delay
// (internal/limits): the first failures are free, then each further attempt
// waits 2, 4, 8 … seconds after the last, up to 15 minutes. A sign-in
// spends from
//
//   - the account's budget: one for the account whatever it was called
//     (its handle and every DID resolve to it first); a name that is no
//     account gets a budget of its own, keyed by the name as typed, so
//     that the answer does not tell whether an account exists;
//   - the source's budget: the client's address (its /64 for IPv6), as a
//     trusted proxy forwarded it (httpx.TrustProxies);
//
// unless the browser is a device the account knows: a signed device cookie
// (set at every successful sign-in, one year) that names the account. Then
// only that device's own budget counts, so an attacker's failures
// elsewhere never slow the owner on their own device, while a stolen or
// guessing device is still slowed. When the account's budget is spent, an
// account with a second factor still takes the right password, and the
// sign-in must then pass the second factor.
//
// The password asked again behind a session (to change it, to delete the
// account, to export it, to re-authenticate) spends one budget per account
// (recheckPassword); checks of the recovery phrase spend another
// (spendCheck); both through Limits.Take.
// When a budget is spent the person sees the 429 page with the wait in
// words, Retry-After, and a way back; JSON clients get a JSON error.
// The first failure that starts an account's delay calls OnLockout.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/store"
)

// DeviceCookie is the name of the known-device cookie (with the __Host-
// prefix under https, as the session cookie).
const DeviceCookie = "commonsid_device"

// DeviceCookieLife is how long a browser stays a known device after its
// last sign-in.
const DeviceCookieLife = 365 * 24 * time.Hour

// maxDeviceAccounts is how many accounts one device cookie remembers.
const maxDeviceAccounts = 5

// LockoutNotice describes the failure that started an account's delay.
type LockoutNotice struct {
	Failures  int
	At        time.Time
	Until     time.Time // the earliest next attempt from an unknown device
	IP        string
	UserAgent string
}

// DeviceCookieName is the device cookie's name: see SessionCookieName.
func DeviceCookieName(secure bool) string {
	if secure {
		return "__Host-" + DeviceCookie
	}
	return DeviceCookie
}

func (h *Handler) deviceCookie() string { return DeviceCookieName(h.SecureCookies) }

// deviceMACKey is the key of the device cookie's MAC: DeviceKey, or a key of
// this process when none is given (devices are then known until restart).
func (h *Handler) deviceMACKey() []byte {
	if len(h.DeviceKey) > 0 {
		return h.DeviceKey
	}
	h.deviceKeyOnce.Do(func() {
		h.processDeviceKey = make([]byte, 32)
		rand.Read(h.processDeviceKey)
	})
	return h.processDeviceKey
}

var b64 = base64.RawURLEncoding

// deviceEntry is one account a device cookie names: "id~tag~mac", where id
// is the device's random id, tag a short hash of the account's DID (to
// find the entry) and mac the HMAC of both under the cloud's key.
func (h *Handler) deviceEntry(id []byte, accountDID string) string {
	tag := sha256.Sum256([]byte("commonsid/device-account\x00" + accountDID))
	m := hmac.New(sha256.New, h.deviceMACKey())
	m.Write([]byte("commonsid/device-cookie\x00"))
	m.Write(id)
	m.Write([]byte{0})
	m.Write([]byte(accountDID))
	return b64.EncodeToString(id) + "~" + b64.EncodeToString(tag[:9]) + "~" + b64.EncodeToString(m.Sum(nil)[:18])
}

// deviceEntries reads the device cookie: the device id (nil when none is
// valid) and the valid entries, newest first, as (entry, tag) pairs.
func (h *Handler) deviceEntries(r *http.Request) (id []byte, entries []string) {
	c, err := r.Cookie(h.deviceCookie())
	if err != nil || len(c.Value) > 1024 {
		return nil, nil
	}
	for _, e := range strings.Split(c.Value, ".") {
		parts := strings.Split(e, "~")
		if len(parts) != 3 {
			continue
		}
		raw, err := b64.DecodeString(parts[0])
		if err != nil || len(raw) != 16 {
			continue
		}
		if id == nil {
			id = raw
		}
		if string(raw) == string(id) {
			entries = append(entries, e)
		}
		if len(entries) == maxDeviceAccounts {
			break
		}
	}
	return id, entries
}

// knownDevice returns the id of the browser's device when its cookie names
// the account a with a valid MAC.
func (h *Handler) knownDevice(r *http.Request, accountDID string) (string, bool) {
	id, entries := h.deviceEntries(r)
	if id == nil {
		return "", false
	}
	want := h.deviceEntry(id, accountDID)
	for _, e := range entries {
		if hmac.Equal([]byte(e), []byte(want)) {
			return b64.EncodeToString(id), true
		}
	}
	return "", false
}

// rememberDevice makes the browser a known device of the account: its
// cookie names the account first, keeps up to maxDeviceAccounts others it
// named, and lives DeviceCookieLife.
func (h *Handler) rememberDevice(w http.ResponseWriter, r *http.Request, accountDID string) {
	id, entries := h.deviceEntries(r)
	if id == nil {
		id = make([]byte, 16)
		rand.Read(id)
		entries = nil
	}
	mine := h.deviceEntry(id, accountDID)
	out := []string{mine}
	for _, e := range entries {
		if e != mine && len(out) < maxDeviceAccounts {
			out = append(out, e)
		}
	}
	http.SetCookie(w, &http.Cookie{
		Name: h.deviceCookie(), Value: strings.Join(out, "."), Path: "/", MaxAge: int(DeviceCookieLife / time.Second),
		HttpOnly: true, Secure: h.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
}

// sourceKey is the source budget's key: the client's IPv4 address, or the
// /64 of an IPv6 one (a single host's usual share).
func sourceKey(r *http.Request) string {
	a, err := netip.ParseAddr(httpx.ClientIP(r))
	if err != nil {
		return httpx.ClientIP(r)
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// unknownAccountKey is the budget key of a name that is no account here.
func unknownAccountKey(username string) string {
	n := strings.ToLower(strings.TrimSpace(username))
	if len(n) > 256 {
		n = n[:256]
	}
	return "unknown\x00" + n
}

// signInGuard is the budgets one password sign-in spent.
type signInGuard struct {
	acct *identity.Account // nil: no such account
	// The attempts counted: at the source and the account, or at the
	// known device alone.
	source, account, device *limits.Attempt
	// wait > 0: the sign-in may not be tried now.
	wait time.Duration
	// secondFactor: the account's budget is spent, but the account has a
	// second factor: the right password leads to it, never to a session.
	secondFactor bool
	accountWait  time.Duration
}

// guardSignIn spends from the budgets of a password sign-in as username
// (see the top of this file). An error is the store's.
func (h *Handler) guardSignIn(r *http.Request, username string) (*signInGuard, error) {
	ctx := r.Context()
	g := &signInGuard{}
	a, err := h.Accounts.Lookup(ctx, username)
	switch {
	case err == nil:
		g.acct = a
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	if a != nil {
		if dev, ok := h.knownDevice(r, a.DID); ok {
			g.device, g.wait, err = h.Limits.Take(ctx, limits.Device, dev+"\x00"+a.DID)
			return g, err
		}
	}
	g.source, g.wait, err = h.Limits.Take(ctx, limits.Source, sourceKey(r))
	if err != nil || g.wait > 0 {
		return g, err
	}
	key := unknownAccountKey(username)
	if a != nil {
		key = accountKey(a.DID)
	}
	acc, wait, err := h.Limits.Take(ctx, limits.Account, key)
	if err != nil {
		g.source.Refund(ctx)
		return nil, err
	}
	if wait > 0 {
		if a != nil && h.hasSecondFactor(ctx, a) {
			g.secondFactor, g.accountWait = true, wait
			return g, nil
		}
		// Not tried: the source is not charged for it.
		g.source.Refund(ctx)
		g.source, g.wait = nil, wait
		return g, nil
	}
	g.account = acc
	return g, nil
}

func (h *Handler) hasSecondFactor(ctx context.Context, a *identity.Account) bool {
	m := h.mfa()
	if m == nil {
		return false
	}
	need, _, err := m.NeedsSecondFactor(ctx, a.DID, true)
	return err == nil && need
}

// noVerdict takes back every attempt: the password was not checked.
func (g *signInGuard) noVerdict(ctx context.Context) {
	g.source.Refund(ctx)
	g.account.Refund(ctx)
	g.device.Refund(ctx)
}

// succeeded forgets the failures of the account's (or the device's)
// budget; the source is not charged for a right password.
func (g *signInGuard) succeeded(ctx context.Context) {
	g.source.Refund(ctx)
	g.account.Clear(ctx)
	g.device.Clear(ctx)
}

// awaitsSecondFactor takes back the attempts of a right password whose
// sign-in still needs its second factor: it is no failure, but the owner
// has not proved themselves yet, so nothing is forgotten until the second
// factor passes (secondFactorPassed).
func (g *signInGuard) awaitsSecondFactor(ctx context.Context) {
	g.noVerdict(ctx)
}

// secondFactorPassed forgets the failures of the account's password
// budget and of this device's, and of the account's second-factor codes:
// the owner proved themselves with both factors. The budgets of sources
// (the addresses of whoever failed) are left as they are.
func (h *Handler) secondFactorPassed(r *http.Request, accountDID string) {
	ctx := r.Context()
	forget := func(p limits.Policy, key string) {
		if err := h.Limits.Clear(ctx, p, key); err != nil {
			h.Log.WarnContext(ctx, "failure budget not cleared", "budget", p.Name, "err", identity.RootCause(err))
		}
	}
	forget(limits.Account, accountKey(accountDID))
	forget(limits.SecondFactor, accountKey(accountDID))
	if dev, ok := h.knownDevice(r, accountDID); ok {
		forget(limits.Device, dev+"\x00"+accountDID)
	}
}

// accountKey is the key of an account's password and second-factor
// budgets (its handle and every DID resolve to it).
func accountKey(accountDID string) string { return "account\x00" + accountDID }

// failed tells the person when this failure started the account's delay.
func (h *Handler) failedSignIn(r *http.Request, g *signInGuard) {
	if g.acct == nil || !g.account.Started(limits.Account) || h.OnLockout == nil {
		return
	}
	now := h.Now().UTC()
	n := LockoutNotice{Failures: g.account.Count, At: now, Until: now.Add(limits.Account.Delay(g.account.Count)),
		IP: clientIP(r), UserAgent: h.meta(r).UserAgent}
	a, notify := g.acct, h.OnLockout
	// Apart from the request: the answer takes no longer, and says
	// nothing more, whether or not a notice goes out. At most one an hour
	// per account (signin_notices.go), however often the delay starts.
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), noticeTimeout)
		defer cancel()
		if !h.noticeAllowed(ctx, lockoutMailBudget, a.DID) {
			return
		}
		notify(ctx, a, n)
	}()
}

// tooManyError is a password or phrase check refused because its budget is
// spent. As an *apiError it is 429 slow_down with the wait in words.
type tooManyError struct {
	wait time.Duration
	msg  string
}

func (e *tooManyError) Error() string { return e.msg }

// As lets the account pages and API show it as their own errors.
func (e *tooManyError) As(target any) bool {
	if p, ok := target.(**apiError); ok {
		*p = &apiError{http.StatusTooManyRequests, "slow_down", e.msg}
		return true
	}
	return false
}

func tooMany(wait time.Duration, what string) *tooManyError {
	return &tooManyError{wait: wait, msg: what + " " + TryAgainIn(wait) + "."}
}

// setRetryAfter sets Retry-After when err is a spent budget.
func setRetryAfter(w http.ResponseWriter, err error) {
	var tm *tooManyError
	if errors.As(err, &tm) {
		w.Header().Set("Retry-After", retryAfter(tm.wait))
	}
}

func retryAfter(wait time.Duration) string {
	s := int((wait + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}

// takeCheck spends one attempt of the account's budget of checks behind a
// session; over budget it returns a *tooManyError.
func (h *Handler) takeCheck(r *http.Request, accountDID string) (*limits.Attempt, error) {
	at, wait, err := h.Limits.Take(r.Context(), limits.Check, accountDID)
	if err != nil {
		return nil, h.errUnavailable(r, "password check", err)
	}
	if wait > 0 {
		return nil, tooMany(wait, "Too many wrong attempts.")
	}
	return at, nil
}

// recheckPassword checks the signed-in person's password again (to change
// it, to delete the account, to export it, to re-authenticate), within the
// account's budget of checks. It returns identity.ErrBadCredentials for a
// wrong password, a *tooManyError over budget, or the 503 answer of a
// store failure.
func (h *Handler) recheckPassword(r *http.Request, password string) (*identity.Account, error) {
	m := current(r)
	at, err := h.takeCheck(r, m.acct.DID)
	if err != nil {
		return nil, err
	}
	a, err := h.Accounts.Authenticate(r.Context(), m.acct.Handle, password)
	switch {
	case errors.Is(err, identity.ErrBadCredentials):
		return nil, err
	case err != nil:
		at.Refund(r.Context())
		return nil, h.errUnavailable(r, "password check", err)
	}
	at.Clear(r.Context())
	return a, nil
}

// TryAgainIn says how long to wait in words: "Try again in 2 minutes".
func TryAgainIn(wait time.Duration) string {
	switch {
	case wait <= 0:
		return "Try again now"
	case wait < time.Minute:
		s := int((wait + time.Second - 1) / time.Second)
		return "Try again in " + plural(s, "second")
	case wait < time.Hour:
		return "Try again in " + plural(int((wait+time.Minute-1)/time.Minute), "minute")
	default:
		return "Try again in " + plural(int((wait+time.Hour-1)/time.Hour), "hour")
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// wantsJSON reports whether the client asked for JSON rather than a page.
func wantsJSON(r *http.Request) bool {
	acc := r.Header.Get("Accept")
	return strings.Contains(acc, "application/json") && !strings.Contains(acc, "text/html")
}

// TooManyPage answers 429: the page with the wait in words, a way back to
// the sign-in page and to a password reset (ResetPath), or for a JSON
// client the JSON error; both with Retry-After.
func (h *Handler) TooManyPage(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	w.Header().Set("Retry-After", retryAfter(wait))
	if wantsJSON(r) {
		writeAPIError(w, http.StatusTooManyRequests, "slow_down", "too many attempts; "+strings.ToLower(TryAgainIn(wait)[:1])+TryAgainIn(wait)[1:]+" (Retry-After)")
		return
	}
	login := "/login"
	if rt := localPath(r.FormValue("return_to")); rt != "" {
		login += "?return_to=" + url.QueryEscape(rt)
	}
	h.Render(w, r, http.StatusTooManyRequests, "too_many", map[string]any{
		"Wait": TryAgainIn(wait), "WaitFor": wait, "Login": login, "Reset": h.ResetPath,
	})
}

// renderTooMany answers a spent budget with the 429 page; false when err is
// something else.
func (h *Handler) renderTooMany(w http.ResponseWriter, r *http.Request, err error) bool {
	var tm *tooManyError
	if !errors.As(err, &tm) {
		return false
	}
	h.TooManyPage(w, r, tm.wait)
	return true
}

// spendCheck spends one of the account's recovery-phrase checks behind a
// session (each counts, whatever its answer); false with the wait when the
// budget is spent. A store failure refuses briefly.
func (h *Handler) spendCheck(r *http.Request) (bool, time.Duration) {
	_, wait, err := h.Limits.Take(r.Context(), limits.Phrase, current(r).acct.DID)
	if err != nil {
		h.errUnavailable(r, "recovery check budget", err)
		return false, 5 * time.Second
	}
	if wait > 0 {
		// Whole seconds, rounded up, for Retry-After.
		wait = (wait + time.Second - 1).Truncate(time.Second)
	}
	return wait == 0, wait
}
