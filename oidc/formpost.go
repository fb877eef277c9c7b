package oidc

// Authorization responses, success and error alike, are written here rather
// than by fosite's writers, for three rules of the protocol:
//
//   - every response carries iss, the issuer (RFC 9207), so that a client
//     talking to several providers can tell which one answered (mix-up
//     defence; discovery says authorization_response_iss_parameter_supported);
//   - state is returned only when the request carried one: state is
//     optional (OpenID Connect Core 3.1.2.1), and an empty state= makes
//     some clients reject the response as forged;
//   - response_mode=form_post (OAuth 2.0 Form Post Response Mode) answers
//     with a page whose form posts the parameters to the redirect URI. The
//     pages' CSP allows no inline script, so the page loads
//     /static/formpost.js (script-src 'self') to submit the form, and shows
//     a button for browsers without script.

import (
	"bytes"
	"html/template"
	"net/http"
	"net/url"

	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/internal/httpx"
)

// supportedResponseModes are the response modes a client may ask for; the
// default (no response_mode) is query for the code flow.
var supportedResponseModes = []fosite.ResponseModeType{fosite.ResponseModeDefault, fosite.ResponseModeQuery, fosite.ResponseModeFormPost}

// GetResponseModes lets fosite accept response_mode query and form_post
// from every client (fosite.ResponseModeClient).
func (c *Client) GetResponseModes() []fosite.ResponseModeType { return supportedResponseModes }

var _ fosite.ResponseModeClient = (*Client)(nil)

// formPostCSP is the CSP of the form_post page: the pages' own, plus our
// one script. form-action already allows the http(s) redirect URIs.
const formPostCSP = httpx.PageCSP + "; script-src 'self'"

var formPostPage = template.Must(template.New("form_post").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Returning to the service · Commons ID</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/formpost.js" defer></script>
</head>
<body>
<main>
<form method="post" action="{{.Action}}" id="form-post">
{{- range $k, $vs := .Params}}{{range $vs}}
<input type="hidden" name="{{$k}}" value="{{.}}">
{{- end}}{{end}}
<p>Returning you to the service…</p>
<noscript><button type="submit">Continue</button></noscript>
</form>
</main>
</body>
</html>
`))

// writeAuthorizeResponse sends a successful authorization response.
func (p *Provider) writeAuthorizeResponse(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, resp fosite.AuthorizeResponder) {
	for k := range resp.GetHeader() {
		w.Header().Set(k, resp.GetHeader().Get(k))
	}
	params := url.Values{}
	for k, v := range resp.GetParameters() {
		params[k] = v
	}
	p.writeAuthorizeParams(w, r, ar, params)
}

// writeAuthorizeErrorRedirect sends an error to the client's redirect URI;
// the caller has checked that the redirect URI is valid.
func (p *Provider) writeAuthorizeErrorRedirect(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	rfc := fosite.ErrorToRFC6749Error(err).WithExposeDebug(false)
	params := rfc.ToValues()
	params.Set("state", ar.GetState())
	p.writeAuthorizeParams(w, r, ar, params)
}

// writeAuthorizeParams delivers the parameters of an authorization response
// in the request's response mode, with iss and without an empty state.
func (p *Provider) writeAuthorizeParams(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, params url.Values) {
	if params.Get("state") == "" {
		params.Del("state")
	}
	params.Set("iss", p.Issuer)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	redirect := *ar.GetRedirectURI()
	redirect.Fragment = ""
	if ar.GetResponseMode() == fosite.ResponseModeFormPost {
		var buf bytes.Buffer
		if err := formPostPage.Execute(&buf, map[string]any{"Action": redirect.String(), "Params": params}); err != nil {
			p.serverError(w, r, err)
			return
		}
		httpx.SetPageHeaders(w, formPostCSP)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		w.Write(buf.Bytes())
		return
	}
	// Query, the code flow's mode (fragment is not offered): the redirect
	// URI's own query parameters stay, ours are added.
	q := redirect.Query()
	for k, v := range params {
		q[k] = v
	}
	redirect.RawQuery = q.Encode()
	w.Header().Set("Location", redirect.String())
	w.WriteHeader(http.StatusSeeOther)
}
