package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// The interop matrix: the relying-party libraries integrators use most, each
// left at its defaults, run against a real `commonsid serve` on SQLite and on
// PostgreSQL. Every library goes through the same steps (see interopExpect)
// and reports them in the same shape, so one table of expectations applies
// to all of them:
//
//   - Go: golang.org/x/oauth2 with AuthStyle unset, and go-oidc.
//   - Node: openid-client v6 (testdata/interop/node), no client-authentication
//     argument, plus its README flow (PKCE, no state).
//   - Python: Debian's python3-authlib (testdata/interop/python).
//   - A single-page app in Chromium: a public client using oauth4webapi from
//     another origin (testdata/interop/spa, interop_spa_test.go).
//
// A confidential library runs twice: against a client registered without a
// token_endpoint_auth_method (the server's default applies), and against one
// registered with client_secret_post. scripts/interop.sh installs the Node
// and Python libraries.

// interopStep is one step's outcome as a library reported it: ok with what
// it saw, or not ok with the OAuth error code the library surfaced.
type interopStep struct {
	Op      string `json:"op"`
	Step    string `json:"step"`
	OK      bool   `json:"ok"`
	Error   string `json:"error"`
	Message string `json:"message"`
	Issuer  string `json:"issuer"`
	Sub     string `json:"sub"`
	// exchange and refresh
	AccessToken  bool `json:"access_token"`
	RefreshToken bool `json:"refresh_token"`
	Rotated      bool `json:"rotated"`
	// introspection
	Active   *bool  `json:"active"`
	ClientID string `json:"client_id"`
	// logout
	Landing string `json:"landing"`
}

// interopCase is what a library run is given: the server, the registered
// client and a browser that plays the person (alice, already signed up).
type interopCase struct {
	l          *live
	app        *rp
	authMethod string // registered token_endpoint_auth_method; "" for the server's default
	postLogout string
	browser    *browser
}

const interopUser, interopPassword = "alice", "correct horse battery"

// The steps every confidential library runs, in order.
var interopSteps = []string{
	"discovery", "exchange", "userinfo", "refresh", "introspect", "revoke", "introspect_revoked",
	"userinfo_revoked", "revoke_refresh", "dead_refresh", "rotated_refresh", "reused_code", "bad_verifier", "logout",
}

// interopExpect checks one step's outcome. sub is the subject the exchange
// saw (the ID token's), clientID the registered client.
func interopExpect(t *testing.T, l *live, clientID, sub string, s interopStep) {
	t.Helper()
	failed := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: %s (ok=%v error=%q: %s)", s.Step, fmt.Sprintf(format, args...), s.OK, s.Error, s.Message)
	}
	wantOK := func() bool {
		t.Helper()
		if !s.OK {
			failed("the library reported a failure")
		}
		return s.OK
	}
	wantError := func(codes ...string) {
		t.Helper()
		if s.OK || !slices.Contains(codes, s.Error) {
			failed("want the library to surface %s", strings.Join(codes, " or "))
		}
	}
	switch s.Step {
	case "discovery":
		if wantOK() && s.Issuer != l.base {
			failed("issuer %q, want %q", s.Issuer, l.base)
		}
	case "authorize", "authorize_again", "revoke", "revoke_refresh", "logout":
		wantOK()
	case "exchange":
		if wantOK() && (s.Sub == "" || !s.AccessToken || !s.RefreshToken) {
			failed("sub %q, access token %v, refresh token %v", s.Sub, s.AccessToken, s.RefreshToken)
		}
	case "userinfo", "readme_flow":
		if wantOK() && (s.Sub == "" || s.Sub != sub) {
			failed("sub %q, want the ID token's %q", s.Sub, sub)
		}
	case "refresh":
		if wantOK() && (!s.Rotated || !s.AccessToken) {
			failed("rotated %v, access token %v", s.Rotated, s.AccessToken)
		}
	case "introspect":
		if wantOK() && (s.Active == nil || !*s.Active || s.ClientID != clientID || s.Sub != sub) {
			failed("active %v, client_id %q, sub %q", ptrBool(s.Active), s.ClientID, s.Sub)
		}
	case "introspect_revoked":
		if wantOK() && (s.Active == nil || *s.Active) {
			failed("a revoked token introspects as active=%v", ptrBool(s.Active))
		}
	case "userinfo_revoked":
		wantError("invalid_token", "http_401")
	case "dead_refresh", "rotated_refresh", "reused_code", "bad_verifier":
		wantError("invalid_grant")
	default:
		failed("unknown step")
	}
}

func ptrBool(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

// checkInterop runs one subtest per expected step on what a library
// reported, so that `go test -v` prints the matrix.
func checkInterop(t *testing.T, l *live, clientID string, want []string, got []interopStep) {
	t.Helper()
	byStep := map[string]interopStep{}
	var sub string
	for _, s := range got {
		if _, dup := byStep[s.Step]; dup {
			t.Errorf("step %s reported twice", s.Step)
		}
		byStep[s.Step] = s
		if s.Step == "exchange" {
			sub = s.Sub
		}
		if !slices.Contains(want, s.Step) {
			t.Errorf("unexpected step %q reported: %+v", s.Step, s)
		}
	}
	for _, name := range want {
		t.Run(name, func(t *testing.T) {
			s, ok := byStep[name]
			if !ok {
				t.Fatalf("step %s was not reported", name)
			}
			interopExpect(t, l, clientID, sub, s)
		})
	}
}

// requireInteropTool skips, or fails when the test command requires every
// backend (COMMONSID_TEST_REQUIRE_POSTGRES=1, as scripts/test.sh and CI set),
// because an interop library is not installed.
func requireInteropTool(t *testing.T, msg string) {
	t.Helper()
	msg += " (scripts/interop.sh installs it)"
	if os.Getenv("COMMONSID_TEST_REQUIRE_POSTGRES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg) // interop library missing and not required
}

// interopNode returns the node binary and the folder of the Node script, or
// skips/fails when openid-client is not installed.
func interopNode(t *testing.T) (string, string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "interop", "node"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		requireInteropTool(t, "node not found on PATH")
	}
	for _, pkg := range []string{"openid-client", "oauth4webapi"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			requireInteropTool(t, fmt.Sprintf("%s is not installed in %s (npm ci)", pkg, dir))
		}
	}
	return node, dir
}

// interopPython returns Debian's python3 when it imports Authlib and
// requests (python3-authlib, python3-requests).
// COMMONSID_TEST_PYTHON names another interpreter.
func interopPython(t *testing.T) string {
	t.Helper()
	py := os.Getenv("COMMONSID_TEST_PYTHON")
	if py == "" {
		py = "/usr/bin/python3" // Debian's, which sees python3-authlib
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, py, "-c", "import authlib, requests").CombinedOutput(); err != nil {
		requireInteropTool(t, fmt.Sprintf("%s cannot import authlib and requests (python3-authlib, python3-requests): %v %s", py, err, bytes.TrimSpace(out)))
	}
	return py
}

// runInteropScript runs a library's script, plays the browser when it asks
// ({"op":"authorize"|"visit","url":…} answered by the URL the browser was
// sent back to), and returns the steps it reported. The run is bounded by
// one minute.
func runInteropScript(t *testing.T, c *interopCase, name string, args ...string) []interopStep {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	secret, _ := c.app.reg["client_secret"].(string)
	cmd.Env = append(os.Environ(),
		"INTEROP_ISSUER="+c.l.base,
		"INTEROP_CLIENT_ID="+c.app.conf.ClientID,
		"INTEROP_CLIENT_SECRET="+secret,
		"INTEROP_REDIRECT_URI="+c.app.redirect,
		"INTEROP_POST_LOGOUT_REDIRECT_URI="+c.postLogout,
		"INTEROP_AUTH_METHOD="+c.authMethod,
		"AUTHLIB_INSECURE_TRANSPORT=1", // the test issuer is http on loopback
		"PYTHONDONTWRITEBYTECODE=1",
		"NODE_NO_WARNINGS=1",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var steps []interopStep
	done := false
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var msg struct {
			interopStep
			URL string `json:"url"`
		}
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			t.Logf("%s: %s", filepath.Base(args[len(args)-1]), sc.Text())
			continue
		}
		switch msg.Op {
		case "authorize", "visit":
			var p *page
			if msg.Op == "authorize" {
				p = c.browser.authorize(msg.URL, interopUser, interopPassword, nil)
			} else {
				p = c.browser.get(msg.URL)
			}
			if p.url.Port() != "9" {
				t.Logf("%s %s ended at %d %s, not at the service", msg.Op, msg.URL, p.status, p.url)
			}
			if _, err := fmt.Fprintln(stdin, p.url.String()); err != nil {
				t.Errorf("answer the script: %v", err)
			}
		case "step":
			steps = append(steps, msg.interopStep)
		case "done":
			done = true
		}
	}
	stdin.Close()
	werr := cmd.Wait()
	if ctx.Err() != nil {
		t.Errorf("%s did not finish within a minute", strings.Join(args, " "))
	}
	if werr != nil || !done {
		t.Errorf("%s: exit %v, finished %v\n%s", strings.Join(args, " "), werr, done, stderr.String())
	} else if stderr.Len() > 0 {
		t.Logf("stderr of %s:\n%s", strings.Join(args, " "), stderr.String())
	}
	return steps
}

// newInteropCase registers a confidential client for a library: on its own
// loopback host (newRP), with a post-logout redirect on port 9 where the
// test browser stops, and with the given token_endpoint_auth_method ("" to
// leave it to the server's default).
func newInteropCase(t *testing.T, l *live, name, authMethod string) *interopCase {
	t.Helper()
	postLogout := "http://127.0.0.1:9/" + name + "/logged-out"
	extra := map[string]any{"post_logout_redirect_uris": []string{postLogout}}
	if authMethod != "" {
		extra["token_endpoint_auth_method"] = authMethod
	}
	app := newRP(t, l, name, extra)
	return &interopCase{l: l, app: app, authMethod: authMethod, postLogout: postLogout, browser: newBrowser(t)}
}

// TestInterop runs the matrix: each library, at its defaults, on SQLite and
// on PostgreSQL; one subtest per library, registration and step.
func TestInterop(t *testing.T) {
	t.Parallel()
	registrations := []struct{ name, method string }{
		{"registered-default", ""},
		{"registered-post", "client_secret_post"},
	}
	libraries := []struct {
		name string
		run  func(t *testing.T, c *interopCase) []interopStep
		want []string
	}{
		{"go-x-oauth2", runInteropGo, interopSteps},
		{"node-openid-client", func(t *testing.T, c *interopCase) []interopStep {
			node, dir := interopNode(t)
			return runInteropScript(t, c, node, filepath.Join(dir, "script.mjs"))
		}, append(slices.Clone(interopSteps), "readme_flow")},
		{"python-authlib", func(t *testing.T, c *interopCase) []interopStep {
			return runInteropScript(t, c, interopPython(t), filepath.Join("testdata", "interop", "python", "script.py"))
		}, interopSteps},
	}
	for _, backend := range []struct {
		name string
		mk   func(testing.TB) env
	}{{"sqlite", sqliteEnv}, {"postgres", postgresEnv}} {
		t.Run(backend.name, func(t *testing.T) {
			l := startLive(t, backend.mk(t))
			l.env.must(t, interopPassword+"\n", "user", "create", "--username", interopUser,
				"--email", "alice@example.org", "--name", "Alice Liddell", "--password-stdin")
			for _, lib := range libraries {
				for _, reg := range registrations {
					t.Run(lib.name+"/"+reg.name, func(t *testing.T) {
						c := newInteropCase(t, l, lib.name, reg.method)
						steps := lib.run(t, c)
						checkInterop(t, l, c.app.conf.ClientID, lib.want, steps)
					})
				}
			}
			t.Run("spa-oauth4webapi/public-client", func(t *testing.T) {
				steps, clientID := runInteropSPA(t, l)
				checkInterop(t, l, clientID, interopSPASteps, steps)
			})
		})
	}
}

// runInteropGo is the Go relying party: x/oauth2 with AuthStyle unset (so it
// probes Basic, then client_secret_post) and go-oidc. x/oauth2 remembers the
// probed style per Config; the error cases use a fresh Config, as a service
// freshly started would. Go has no revocation or introspection client: those
// authenticate as the registration says.
func runInteropGo(t *testing.T, c *interopCase) []interopStep {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	app := c.app
	var steps []interopStep
	report := func(s interopStep, err error) bool {
		if err != nil {
			s.OK, s.Error, s.Message = false, goErrorCode(err), err.Error()
		} else {
			s.OK = true
		}
		steps = append(steps, s)
		return s.OK
	}
	fresh := func() *oauth2.Config {
		return &oauth2.Config{ClientID: app.conf.ClientID, ClientSecret: app.conf.ClientSecret,
			Endpoint: app.provider.Endpoint(), RedirectURL: app.conf.RedirectURL, Scopes: app.conf.Scopes}
	}
	var meta struct {
		Issuer     string `json:"issuer"`
		EndSession string `json:"end_session_endpoint"`
		Revoke     string `json:"revocation_endpoint"`
		Introspect string `json:"introspection_endpoint"`
	}
	err := app.provider.Claims(&meta) // newRP ran go-oidc's discovery
	report(interopStep{Step: "discovery", Issuer: meta.Issuer}, err)

	// signIn runs code + PKCE through the browser and returns the code.
	signIn := func(verifier, nonce string) (string, error) {
		state := randString(16)
		p := c.browser.authorize(app.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), interopUser, interopPassword, nil)
		q := p.url.Query()
		if e := q.Get("error"); e != "" {
			return "", &oauth2.RetrieveError{ErrorCode: e, ErrorDescription: "authorization response: " + q.Get("error_description")}
		}
		if q.Get("state") != state || q.Get("code") == "" {
			return "", fmt.Errorf("authorization ended at %d %s", p.status, p.url)
		}
		return q.Get("code"), nil
	}
	// clientAuth authenticates a revocation or introspection request as
	// registered: in the form for client_secret_post, else HTTP Basic.
	clientAuth := func(endpoint string, form url.Values) (int, map[string]any) {
		if c.authMethod == "client_secret_post" {
			form.Set("client_id", app.conf.ClientID)
			form.Set("client_secret", app.conf.ClientSecret)
			return postForm(t, endpoint, form, "", "")
		}
		return postForm(t, endpoint, form, app.conf.ClientID, app.conf.ClientSecret)
	}
	endpointErr := func(st int, body map[string]any) error {
		if st == http.StatusOK {
			return nil
		}
		code, _ := body["error"].(string)
		return &oauth2.RetrieveError{Response: &http.Response{StatusCode: st}, ErrorCode: code, ErrorDescription: fmt.Sprint(body["error_description"])}
	}

	verifier, nonce := oauth2.GenerateVerifier(), randString(16)
	code, err := signIn(verifier, nonce)
	var tok *oauth2.Token
	var sub, rawID string
	if err == nil {
		tok, err = app.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	}
	if err == nil {
		rawID, _ = tok.Extra("id_token").(string)
		var idt *oidc.IDToken
		idt, err = app.provider.Verifier(&oidc.Config{ClientID: app.conf.ClientID}).Verify(ctx, rawID)
		if err == nil && idt.Nonce != nonce {
			err = fmt.Errorf("nonce %q, want %q", idt.Nonce, nonce)
		}
		if err == nil {
			sub = idt.Subject
		}
	}
	report(interopStep{Step: "exchange", Sub: sub, AccessToken: tok != nil && tok.AccessToken != "", RefreshToken: tok != nil && tok.RefreshToken != ""}, err)
	if tok != nil && sub != "" {
		userinfo := func(name string, tk *oauth2.Token) {
			ui, err := app.provider.UserInfo(ctx, oauth2.StaticTokenSource(tk))
			s := interopStep{Step: name}
			if err == nil {
				s.Sub = ui.Subject
			}
			report(s, err)
		}
		userinfo("userinfo", tok)
		// Refresh as x/oauth2 does when the access token has expired.
		refreshed, err := app.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if err != nil {
			refreshed = nil
		}
		report(interopStep{Step: "refresh", Rotated: refreshed != nil && refreshed.RefreshToken != "" && refreshed.RefreshToken != tok.RefreshToken,
			AccessToken: refreshed != nil && refreshed.AccessToken != ""}, err)
		live := tok
		if refreshed != nil {
			live = refreshed
		}
		introspect := func(name string) {
			st, in := clientAuth(meta.Introspect, url.Values{"token": {live.AccessToken}})
			s := interopStep{Step: name}
			if active, ok := in["active"].(bool); ok {
				s.Active = &active
			}
			s.ClientID, _ = in["client_id"].(string)
			s.Sub, _ = in["sub"].(string)
			report(s, endpointErr(st, in))
		}
		introspect("introspect")
		st, body := clientAuth(meta.Revoke, url.Values{"token": {live.AccessToken}})
		report(interopStep{Step: "revoke"}, endpointErr(st, body))
		introspect("introspect_revoked")
		userinfo("userinfo_revoked", live)
		st, body = clientAuth(meta.Revoke, url.Values{"token": {live.RefreshToken}})
		report(interopStep{Step: "revoke_refresh"}, endpointErr(st, body))
		_, err = fresh().TokenSource(ctx, &oauth2.Token{RefreshToken: live.RefreshToken}).Token()
		report(interopStep{Step: "dead_refresh"}, errOrSuccess(err))
		_, err = fresh().TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		report(interopStep{Step: "rotated_refresh"}, errOrSuccess(err))
	}
	if code != "" {
		_, err = fresh().Exchange(ctx, code, oauth2.VerifierOption(verifier))
		report(interopStep{Step: "reused_code"}, errOrSuccess(err))
	}
	code2, err := signIn(oauth2.GenerateVerifier(), randString(16))
	if err == nil {
		_, err = fresh().Exchange(ctx, code2, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		err = errOrSuccess(err)
	}
	report(interopStep{Step: "bad_verifier"}, err)
	if rawID != "" {
		state := randString(16)
		p := c.browser.get(meta.EndSession + "?" + url.Values{"id_token_hint": {rawID}, "post_logout_redirect_uri": {c.postLogout}, "state": {state}}.Encode())
		var err error
		landing := p.url.Scheme + "://" + p.url.Host + p.url.Path
		if landing != c.postLogout || p.url.Query().Get("state") != state {
			err = fmt.Errorf("logout ended at %d %s, want %s with state %s", p.status, p.url, c.postLogout, state)
		}
		report(interopStep{Step: "logout", Landing: landing}, err)
	}
	return steps
}

// errSucceeded stands for an error case that the server accepted.
var errSucceeded = errors.New("the request succeeded")

func errOrSuccess(err error) error {
	if err == nil {
		return errSucceeded
	}
	return err
}

// goErrorCode is the OAuth error code a Go relying party can see in err.
func goErrorCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return re.ErrorCode
		}
		if re.Response != nil {
			return fmt.Sprintf("http_%d", re.Response.StatusCode)
		}
	}
	if errors.Is(err, errSucceeded) {
		return "succeeded"
	}
	// go-oidc reports a refused UserInfo request as "401 Unauthorized: …".
	if strings.HasPrefix(err.Error(), "401 ") {
		return "http_401"
	}
	return "exception"
}
