package server

import (
	"net/http"
	"strings"

	"github.com/onecommons/commonsid/access"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/web"
)

// Request bounds, by endpoint family. They are enforced for every route
// before routing, so that no handler reads more than its family allows and
// none sees a multipart body it does not expect.
const (
	// FormBodyBytes bounds form posts (protocol endpoints, sign-in, sign-up,
	// consent, logout, dashboard) and the JSON bodies of registration and
	// the dashboard API.
	FormBodyBytes = 64 << 10
	// DefaultBodyBytes bounds the body of any other request: the remaining
	// routes take none.
	DefaultBodyBytes = 8 << 10
	// QueryBytes bounds the raw query string of any request but /authorize.
	QueryBytes = 8 << 10
	// AuthorizeQueryBytes bounds the query of /authorize, which may carry a
	// claims request and a request object besides the usual parameters.
	AuthorizeQueryBytes = 16 << 10
	// MaxHeaderBytes bounds the request line and headers (http.Server adds
	// a little slack of its own); it leaves room for the longest query and
	// the cookies.
	MaxHeaderBytes = 64 << 10
)

// HSTS is the Strict-Transport-Security of an https cloud: two years, its
// subdomains included.
const HSTS = "max-age=63072000; includeSubDomains"

// repeatableParams may be given more than once at the OAuth endpoints,
// whose other parameters may not (RFC 6749 §3.1): resource names one
// target each (RFC 8707 §2).
var repeatableParams = []string{"resource"}

// limitFor chooses the bounds of a request by its path.
func limitFor(r *http.Request) httpx.Limit {
	p := r.URL.Path
	form := httpx.Limit{Body: FormBodyBytes, Query: QueryBytes}
	api := httpx.Limit{Body: FormBodyBytes, Query: QueryBytes, JSON: true}
	switch {
	case p == "/authorize":
		// A browser endpoint: when redirect_uri itself is doubled there is
		// no trustworthy place to redirect an error to, so every refusal is
		// a page.
		return httpx.Limit{Body: FormBodyBytes, Query: AuthorizeQueryBytes, Unique: true, Repeatable: repeatableParams}
	case p == "/token", p == "/revoke", p == "/introspect", p == "/par":
		return httpx.Limit{Body: FormBodyBytes, Query: QueryBytes, Unique: true, Repeatable: repeatableParams, JSON: true}
	case p == "/userinfo", p == "/register", strings.HasPrefix(p, "/register/"),
		strings.HasPrefix(p, "/account/api/"), strings.HasPrefix(p, "/login/passkey/"):
		return api
	case p == "/federation/v1/witness":
		// A did:webvh log to witness, up to the log limit of did/webvh.
		return httpx.Limit{Body: int64(webvh.DefaultLimits.MaxLogBytes), Query: QueryBytes}
	case p == access.NoticePath:
		// A payment service's notice: the handler answers 413 past 16 KiB.
		return httpx.Limit{Body: access.MaxNoticeBytes + 1, Query: QueryBytes, JSON: true}
	case p == "/signup/import":
		return httpx.Limit{Body: web.MaxImportBytes, Query: QueryBytes, Multipart: true}
	case p == "/consent", p == "/logout", p == "/login", p == "/signup",
		p == "/account", strings.HasPrefix(p, "/account/"):
		return form
	}
	return httpx.Limit{Body: DefaultBodyBytes, Query: QueryBytes}
}

// hsts announces that the cloud is reached over https only.
func hsts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", HSTS)
		next.ServeHTTP(w, r)
	})
}
