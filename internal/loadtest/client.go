package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Fixed values of the set-up.
const (
	discoveryPath = "/.well-known/openid-configuration"
	sessionCookie = "commonsid_session"
	// redirectURI is registered for the relying party and never followed:
	// nothing listens on port 9.
	redirectURI = "http://127.0.0.1:9/cb"
	flowScope   = "openid profile email offline_access"
	ccScope     = "bench.read"
	maxBody     = 1 << 20
	// setupParallel bounds concurrent logins during set-up: each one costs
	// the server a password hash.
	setupParallel = 8
)

// discovery holds the endpoints the scenarios use, rebased onto the base URL.
type discovery struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	UserinfoEndpoint      string `json:"userinfo_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
	RegistrationEndpoint  string `json:"registration_endpoint"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// env is what the scenarios share: the transport, the endpoints, and what
// set-up has made so far (clients, the person, signed-in browsers), reused
// from one run to the next.
type env struct {
	cfg  Config
	base *url.URL
	tr   *connTransport
	hc   *http.Client // no cookies; redirects are returned, not followed
	disc discovery

	cc, rp   *registered
	person   *person
	browsers []*browser
	rssNoted bool
}

// registered is a client made through dynamic registration.
type registered struct {
	id, secret string
	auth       string // the Authorization header value
}

type person struct{ handle, password string }

// browser is one virtual user agent: its own cookie jar (and so its own
// sign-on session) over the shared transport.
type browser struct{ c *http.Client }

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func newEnv(ctx context.Context, cfg Config) (*env, error) {
	base, err := parseBase(cfg.URL)
	if err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, base: base, tr: newConnTransport(base, maxOf(cfg.Concurrency)+16, cfg.Timeout)}
	e.hc = &http.Client{Transport: e.tr, CheckRedirect: noRedirect}
	if err := e.discover(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) close() { e.tr.CloseIdleConnections() }

// url returns the address of a path on the server.
func (e *env) url(path string) string { return e.base.String() + path }

// rebase moves an endpoint the discovery document names onto the base URL,
// keeping its path and query: requests go only where the operator said.
func (e *env) rebase(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return "", fmt.Errorf("discovery names %q, which is not an absolute URL", raw)
	}
	out := *e.base
	out.Path, out.RawPath, out.RawQuery = u.Path, u.RawPath, u.RawQuery
	return out.String(), nil
}

func (e *env) discover(ctx context.Context) error {
	req, err := newGet(ctx, e.url(discoveryPath))
	if err != nil {
		return err
	}
	resp, err := send(e.hc, req)
	if err != nil {
		return fmt.Errorf("server not reachable: %w", err)
	}
	if resp.status != http.StatusOK {
		return statusError(req, resp)
	}
	var d discovery
	if err := json.Unmarshal(resp.body, &d); err != nil {
		return fmt.Errorf("discovery document: %w", err)
	}
	for _, p := range []*string{&d.AuthorizationEndpoint, &d.TokenEndpoint, &d.UserinfoEndpoint, &d.JWKSURI,
		&d.RegistrationEndpoint, &d.IntrospectionEndpoint} {
		if *p, err = e.rebase(*p); err != nil {
			return err
		}
	}
	e.disc = d
	return nil
}

// need reports the first endpoint missing from the discovery document.
func (e *env) need(endpoints ...string) error {
	names := map[string]string{
		"authorization_endpoint": e.disc.AuthorizationEndpoint, "token_endpoint": e.disc.TokenEndpoint,
		"userinfo_endpoint": e.disc.UserinfoEndpoint, "jwks_uri": e.disc.JWKSURI,
		"registration_endpoint": e.disc.RegistrationEndpoint, "introspection_endpoint": e.disc.IntrospectionEndpoint,
	}
	for _, n := range endpoints {
		if names[n] == "" {
			return fmt.Errorf("the discovery document names no %s", n)
		}
	}
	return nil
}

// response is a read HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

func newGet(ctx context.Context, u string) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
}

func newForm(ctx context.Context, u string, form url.Values) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req, nil
}

// send does the request and reads the body (up to 1 MiB, the rest is
// drained so the connection can be reused).
func send(c *http.Client, req *http.Request) (*response, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	if b, ok := resp.Body.(*bufferedBody); ok {
		return &response{status: resp.StatusCode, header: resp.Header, body: b.b[:min(len(b.b), maxBody)]}, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", req.Method, req.URL.Path, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

var titleRE = regexp.MustCompile(`(?is)<title>(.*?)</title>`)

// statusError describes an unexpected answer briefly: the status and the
// start of a JSON body, or the title of an HTML page.
func statusError(req *http.Request, r *response) error {
	return fmt.Errorf("%s %s: status %d: %s", req.Method, req.URL.Path, r.status, excerpt(r))
}

func excerpt(r *response) string {
	if strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		if m := titleRE.FindSubmatch(r.body); m != nil {
			return "page " + strconv.Quote(strings.Join(strings.Fields(string(m[1])), " "))
		}
		return "an HTML page"
	}
	s := strings.Join(strings.Fields(string(r.body)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return "empty body"
	}
	return s
}

// basicAuth builds client_secret_basic credentials: id and secret are
// form-urlencoded before joining (RFC 6749 §2.3.1).
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// randomString returns n random bytes, base64url without padding.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// pkce returns a fresh S256 code verifier and its challenge (RFC 7636).
func pkce() (verifier, challenge string) {
	verifier = randomString(32) // 43 characters
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// register makes a client through dynamic client registration.
func (e *env) register(ctx context.Context, meta map[string]any) (*registered, error) {
	if err := e.need("registration_endpoint"); err != nil {
		return nil, err
	}
	body, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.disc.RegistrationEndpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if e.cfg.RegistrationToken != "" {
		req.Header.Set("Authorization", "Bearer "+e.cfg.RegistrationToken)
	}
	resp, err := send(e.hc, req)
	if err != nil {
		return nil, err
	}
	if resp.status != http.StatusCreated {
		err := statusError(req, resp)
		if resp.status == http.StatusUnauthorized || resp.status == http.StatusForbidden {
			err = fmt.Errorf("%w (registration needs a token, or is closed, on this server)", err)
		}
		return nil, err
	}
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil || out.ClientID == "" || out.ClientSecret == "" {
		return nil, fmt.Errorf("POST %s: the registration answer holds no client_id and client_secret", req.URL.Path)
	}
	return &registered{id: out.ClientID, secret: out.ClientSecret, auth: basicAuth(out.ClientID, out.ClientSecret)}, nil
}

// ccClient registers, once, the confidential client of client_credentials.
func (e *env) ccClient(ctx context.Context) (*registered, error) {
	if e.cc != nil {
		return e.cc, nil
	}
	c, err := e.register(ctx, map[string]any{
		"client_name": "bench-cc", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_basic", "scope": ccScope,
	})
	if err != nil {
		return nil, fmt.Errorf("register the client_credentials client: %w", err)
	}
	e.cc = c
	return c, nil
}

// rpClient registers, once, the relying party of the code flow.
func (e *env) rpClient(ctx context.Context) (*registered, error) {
	if e.rp != nil {
		return e.rp, nil
	}
	c, err := e.register(ctx, map[string]any{
		"client_name": "bench-rp", "redirect_uris": []string{redirectURI},
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
	})
	if err != nil {
		return nil, fmt.Errorf("register the relying party: %w", err)
	}
	e.rp = c
	return c, nil
}

// tokenResponse is the part of a token endpoint answer the scenarios check.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// token posts to the token endpoint with the client's basic credentials and
// expects 200 with an access token.
func (e *env) token(ctx context.Context, cl *registered, form url.Values) (*tokenResponse, error) {
	req, err := newForm(ctx, e.disc.TokenEndpoint, form)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", cl.auth)
	resp, err := send(e.hc, req)
	if err != nil {
		return nil, err
	}
	if resp.status != http.StatusOK {
		return nil, fmt.Errorf("%s: %w", form.Get("grant_type"), statusError(req, resp))
	}
	var t tokenResponse
	if err := json.Unmarshal(resp.body, &t); err != nil || t.AccessToken == "" {
		return nil, fmt.Errorf("%s: POST %s: 200 without an access_token", form.Get("grant_type"), req.URL.Path)
	}
	return &t, nil
}

// clientCredentials gets an access token for the client itself.
func (e *env) clientCredentials(ctx context.Context, cl *registered) (*tokenResponse, error) {
	return e.token(ctx, cl, url.Values{"grant_type": {"client_credentials"}, "scope": {ccScope}})
}

// signUp creates, once, the person whose browsers sign in.
func (e *env) signUp(ctx context.Context) (*person, error) {
	if e.person != nil {
		return e.person, nil
	}
	p := &person{password: randomString(18)}
	for range 3 {
		// bench- and six characters of [a-z2-7]: a valid handle.
		p.handle = "bench-" + strings.ToLower(rand.Text()[:6])
		req, err := newForm(ctx, e.url("/signup"), url.Values{"handle": {p.handle}, "email": {p.handle + "@example.org"},
			"name": {"Bench " + p.handle[6:]}, "password": {p.password}})
		if err != nil {
			return nil, err
		}
		resp, err := send(e.hc, req)
		if err != nil {
			return nil, fmt.Errorf("sign up: %w", err)
		}
		switch resp.status {
		case http.StatusOK:
			e.person = p
			return p, nil
		case http.StatusConflict:
			continue // handle taken: draw another
		}
		return nil, fmt.Errorf("sign up: %w", statusError(req, resp))
	}
	return nil, errors.New("sign up: three random handles were all taken")
}

func (e *env) newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{c: &http.Client{Transport: e.tr, Jar: jar, CheckRedirect: noRedirect}}
}

// login signs the browser in with the password form.
func (e *env) login(ctx context.Context, b *browser, p *person) error {
	req, err := newForm(ctx, e.url("/login"), url.Values{"username": {p.handle}, "password": {p.password}, "return_to": {"/"}})
	if err != nil {
		return err
	}
	resp, err := send(b.c, req)
	if err != nil {
		return fmt.Errorf("log in: %w", err)
	}
	if resp.status != http.StatusSeeOther && resp.status != http.StatusFound {
		return fmt.Errorf("log in: %w", statusError(req, resp))
	}
	for _, c := range b.c.Jar.Cookies(e.base) {
		if c.Name == sessionCookie {
			return nil
		}
	}
	return fmt.Errorf("log in: POST %s: no %s cookie came back", req.URL.Path, sessionCookie)
}

// authorize runs the authorization request of the code flow with PKCE and
// returns the code and its verifier. With consent false the server must
// answer with the code at once (session and consent remembered); with
// consent true the consent page is accepted on the way.
func (e *env) authorize(ctx context.Context, b *browser, rp *registered, consent bool) (code, verifier string, err error) {
	verifier, challenge := pkce()
	state := randomString(12)
	q := url.Values{"response_type": {"code"}, "client_id": {rp.id}, "redirect_uri": {redirectURI}, "scope": {flowScope},
		"state": {state}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	req, err := newGet(ctx, e.disc.AuthorizationEndpoint+"?"+q.Encode())
	if err != nil {
		return "", "", err
	}
	cb, _ := url.Parse(redirectURI)
	for range 6 {
		resp, err := send(b.c, req)
		if err != nil {
			return "", "", err
		}
		if resp.status != http.StatusSeeOther && resp.status != http.StatusFound {
			return "", "", statusError(req, resp)
		}
		loc, err := req.URL.Parse(resp.header.Get("Location"))
		if err != nil || resp.header.Get("Location") == "" {
			return "", "", fmt.Errorf("%s %s: %d without a usable Location", req.Method, req.URL.Path, resp.status)
		}
		if loc.Scheme == cb.Scheme && loc.Host == cb.Host && loc.Path == cb.Path {
			lq := loc.Query()
			if code := lq.Get("error"); code != "" {
				return "", "", fmt.Errorf("authorize: error %s: %s", code, lq.Get("error_description"))
			}
			if lq.Get("state") != state {
				return "", "", errors.New("authorize: the redirect carries another state")
			}
			if lq.Get("code") == "" {
				return "", "", errors.New("authorize: the redirect carries no code")
			}
			return lq.Get("code"), verifier, nil
		}
		if loc.Host != e.base.Host {
			return "", "", fmt.Errorf("%s %s: redirected to another host, %s", req.Method, req.URL.Path, loc.Host)
		}
		switch {
		case strings.HasSuffix(loc.Path, "/login"):
			return "", "", fmt.Errorf("%s %s: redirected to the login page: the sign-on session is gone", req.Method, req.URL.Path)
		case strings.HasSuffix(loc.Path, "/consent"):
			if !consent {
				return "", "", fmt.Errorf("%s %s: redirected to the consent page although consent was given", req.Method, req.URL.Path)
			}
			if req, err = e.giveConsent(ctx, b, loc); err != nil {
				return "", "", err
			}
		default: // /authorize/resume and the like
			if req, err = newGet(ctx, loc.String()); err != nil {
				return "", "", err
			}
		}
	}
	return "", "", errors.New("authorize: too many redirects")
}

// giveConsent shows the consent page, allows, and returns the request that
// follows (the resume).
func (e *env) giveConsent(ctx context.Context, b *browser, page *url.URL) (*http.Request, error) {
	req, err := newGet(ctx, page.String())
	if err != nil {
		return nil, err
	}
	resp, err := send(b.c, req)
	if err != nil {
		return nil, err
	}
	if resp.status != http.StatusOK {
		return nil, statusError(req, resp)
	}
	form := url.Values{"challenge": {page.Query().Get("challenge")}, "decision": {"allow"},
		"claim": {"name", "preferred_username", "email"}}
	post := *page
	post.RawQuery = ""
	if req, err = newForm(ctx, post.String(), form); err != nil {
		return nil, err
	}
	if resp, err = send(b.c, req); err != nil {
		return nil, err
	}
	loc := resp.header.Get("Location")
	if (resp.status != http.StatusSeeOther && resp.status != http.StatusFound) || loc == "" {
		return nil, statusError(req, resp)
	}
	next, err := req.URL.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("POST %s: bad Location %q", req.URL.Path, loc)
	}
	if next.Host != e.base.Host {
		return nil, fmt.Errorf("POST %s: redirected to another host, %s", req.URL.Path, next.Host)
	}
	return newGet(ctx, next.String())
}

// exchange trades a code for tokens.
func (e *env) exchange(ctx context.Context, rp *registered, code, verifier string) (*tokenResponse, error) {
	return e.token(ctx, rp, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier}})
}

// userinfo calls the UserInfo endpoint and expects 200 JSON with a sub.
func (e *env) userinfo(ctx context.Context, access string) error {
	req, err := newGet(ctx, e.disc.UserinfoEndpoint)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := send(e.hc, req)
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK {
		return statusError(req, resp)
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(resp.body, &claims); err != nil || claims.Sub == "" {
		return fmt.Errorf("GET %s: 200 without a sub", req.URL.Path)
	}
	return nil
}

// browsersFor returns n signed-in browsers that have each completed one
// authorization, so the person's consent to the relying party is
// remembered. Browsers made for one run are reused by the next.
func (e *env) browsersFor(ctx context.Context, n int) ([]*browser, *registered, error) {
	if err := e.need("authorization_endpoint", "token_endpoint", "userinfo_endpoint"); err != nil {
		return nil, nil, err
	}
	rp, err := e.rpClient(ctx)
	if err != nil {
		return nil, nil, err
	}
	p, err := e.signUp(ctx)
	if err != nil {
		return nil, nil, err
	}
	prepare := func(b *browser) error {
		if err := e.login(ctx, b, p); err != nil {
			return err
		}
		code, verifier, err := e.authorize(ctx, b, rp, true)
		if err != nil {
			return fmt.Errorf("first authorization: %w", err)
		}
		if _, err := e.exchange(ctx, rp, code, verifier); err != nil {
			return fmt.Errorf("first authorization: %w", err)
		}
		return nil
	}
	if len(e.browsers) == 0 {
		// The first one gives consent alone; the others find it remembered.
		b := e.newBrowser()
		if err := prepare(b); err != nil {
			return nil, nil, err
		}
		e.browsers = append(e.browsers, b)
	}
	if missing := n - len(e.browsers); missing > 0 {
		fresh := make([]*browser, missing)
		errs := make([]error, missing)
		sem := make(chan struct{}, setupParallel)
		var wg sync.WaitGroup
		for i := range fresh {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				fresh[i] = e.newBrowser()
				errs[i] = prepare(fresh[i])
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, nil, err
		}
		e.browsers = append(e.browsers, fresh...)
	}
	return e.browsers[:n], rp, nil
}

// rss reads process_resident_memory_bytes from the server's metrics
// (Config.MetricsURL); -1 when it cannot.
func (e *env) rss(ctx context.Context) int64 {
	v, err := e.readRSS(ctx)
	if err != nil && !e.rssNoted {
		e.rssNoted = true
		e.progress("server memory unknown: %v", err)
	}
	return v
}

// maxMetricsBytes bounds the metrics page read for the resident memory.
const maxMetricsBytes = 8 << 20

func (e *env) readRSS(ctx context.Context) (int64, error) {
	u := e.cfg.MetricsURL
	if u == "" {
		u = e.url("/metrics")
	}
	req, err := newGet(ctx, u)
	if err != nil {
		return -1, err
	}
	if e.cfg.MetricsToken != "" {
		req.Header.Set("Authorization", "Bearer "+e.cfg.MetricsToken)
	}
	// The metrics may be on another listener than the base URL, which the
	// scenarios' transport is limited to: a client of its own.
	hc := &http.Client{Timeout: e.cfg.Timeout}
	resp, err := hc.Do(req)
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -1, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	v, ok := parseRSS(io.LimitReader(resp.Body, maxMetricsBytes))
	if !ok {
		return -1, fmt.Errorf("%s has no process_resident_memory_bytes", u)
	}
	return v, nil
}

// parseRSS finds process_resident_memory_bytes in the Prometheus text
// exposition format.
func parseRSS(r io.Reader) (int64, bool) {
	const name = "process_resident_memory_bytes"
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		switch {
		case strings.HasPrefix(rest, "{"):
			i := strings.IndexByte(rest, '}')
			if i < 0 {
				continue
			}
			rest = rest[i+1:]
		case strings.HasPrefix(rest, " "), strings.HasPrefix(rest, "\t"):
		default:
			continue // another metric with this prefix
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil || v < 0 {
			continue
		}
		return int64(v), true
	}
	return 0, false
}
