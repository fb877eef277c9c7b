// Package httpx holds the small HTTP helpers that the page-serving packages
// (web, oidc) share: the security headers of every page, the client's IP,
// and the bounds every request is held to before a handler reads it.
package httpx

import (
	"net/http"
)

// PageCSP is the Content-Security-Policy of every page: no script, no
// inline style, no framing. form-action also allows http(s) targets because
// browsers apply it to the redirects that follow a form post, and signing in
// ends with a redirect to the service.
const PageCSP = "default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'"

// ScriptCSP is PageCSP for the few pages that load our own script
// (passkeys): the script and the JSON endpoints it calls.
const ScriptCSP = PageCSP + "; script-src 'self'; connect-src 'self'"

// SetPageHeaders sets the security headers of a page with the given CSP.
func SetPageHeaders(w http.ResponseWriter, csp string) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cache-Control", "no-store")
}

// PageHeaders is middleware that sets the headers of a script-free page.
func PageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetPageHeaders(w, PageCSP)
		next.ServeHTTP(w, r)
	})
}
