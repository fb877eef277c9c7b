// Package demo is a small sample service (an OpenID Connect relying party
// built on go-oidc and x/oauth2) that `commonsid serve --demo` runs beside the
// provider, so that a newcomer can log in, consent and see exactly which
// claims the service received.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// App is the sample service.
type App struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	RedirectURL  string
	Log          *slog.Logger

	mu       sync.Mutex
	provider *oidc.Provider
}

const stateCookie = "commonsid_demo_flow"

func (a *App) discover(ctx context.Context) (*oidc.Provider, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.provider != nil {
		return a.provider, nil
	}
	p, err := oidc.NewProvider(ctx, a.Issuer)
	if err != nil {
		return nil, err
	}
	a.provider = p
	return p, nil
}

func (a *App) config(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: a.ClientID, ClientSecret: a.ClientSecret, Endpoint: p.Endpoint(), RedirectURL: a.RedirectURL,
		Scopes: []string{oidc.ScopeOpenID, "profile", "email", "did"}}
}

// Handler serves the sample service.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /callback", a.callback)
	return secure(mux)
}

func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

func random() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

type flow struct {
	State, Nonce, Verifier string
}

func (a *App) home(w http.ResponseWriter, r *http.Request) {
	render(w, http.StatusOK, map[string]any{"Issuer": a.Issuer})
}

func (a *App) login(w http.ResponseWriter, r *http.Request) {
	p, err := a.discover(r.Context())
	if err != nil {
		render(w, http.StatusBadGateway, map[string]any{"Error": "The provider at " + a.Issuer + " cannot be reached: " + err.Error()})
		return
	}
	f := flow{State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier()}
	b, _ := json.Marshal(f)
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: 600})
	http.Redirect(w, r, a.config(p).AuthCodeURL(f.State, oauth2.S256ChallengeOption(f.Verifier), oidc.Nonce(f.Nonce)), http.StatusFound)
}

func (a *App) callback(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	fail := func(msg string) { render(w, http.StatusBadRequest, map[string]any{"Error": msg}) }
	c, err := r.Cookie(stateCookie)
	if err != nil {
		fail("The sign-in expired; start again.")
		return
	}
	var f flow
	raw, _ := base64.RawURLEncoding.DecodeString(c.Value)
	if json.Unmarshal(raw, &f) != nil || r.URL.Query().Get("state") != f.State {
		fail("The state does not match; start again.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: "", Path: "/", MaxAge: -1})
	if e := r.URL.Query().Get("error"); e != "" {
		fail("The provider answered " + e + ": " + r.URL.Query().Get("error_description"))
		return
	}
	p, err := a.discover(ctx)
	if err != nil {
		fail(err.Error())
		return
	}
	tok, err := a.config(p).Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		fail("Code exchange failed: " + err.Error())
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&oidc.Config{ClientID: a.ClientID}).Verify(ctx, rawID)
	if err != nil || idt.Nonce != f.Nonce {
		fail("The ID token did not verify.")
		return
	}
	var idClaims map[string]any
	idt.Claims(&idClaims)
	ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		fail("UserInfo failed: " + err.Error())
		return
	}
	var uiClaims map[string]any
	ui.Claims(&uiClaims)
	render(w, http.StatusOK, map[string]any{"Subject": idt.Subject, "IDToken": rows(idClaims), "UserInfo": rows(uiClaims), "Issuer": a.Issuer})
}

type row struct{ Name, Value string }

func rows(m map[string]any) []row {
	var out []row
	for k, v := range m {
		b, _ := json.Marshal(v)
		out = append(out, row{k, string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

var page = template.Must(template.New("demo").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo service · Commons ID</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;word-break:break-all}.button{display:inline-block;padding:.6rem 1.2rem;background:#1f6f5c;color:#fff;text-decoration:none;border-radius:4px}
.error{border-left:4px solid #a3261f;padding:.5rem 1rem;background:#fdecea}</style></head><body>
<h1>Demo service</h1>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p><p><a class="button" href="/login">Try again</a></p>
{{else if .Subject}}<p>You are signed in. This service knows you as <code id="sub">{{.Subject}}</code>: a pairwise identifier that no other service shares.</p>
<h2>Claims in the ID token</h2><table id="id-token"><tr><th>claim</th><th>value</th></tr>{{range .IDToken}}<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>{{end}}</table>
<h2>Claims from UserInfo (what you agreed to share)</h2><table id="userinfo"><tr><th>claim</th><th>value</th></tr>{{range .UserInfo}}<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>{{end}}</table>
<p><a class="button" href="/login">Log in again</a></p>
{{else}}<p>A sample service that signs people in with Commons ID at <code>{{.Issuer}}</code> using plain OpenID Connect.</p>
<p><a class="button" id="login" href="/login">Log in</a></p>{{end}}
</body></html>`))

func render(w http.ResponseWriter, status int, data map[string]any) {
	var buf bytes.Buffer
	if err := page.Execute(&buf, data); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
