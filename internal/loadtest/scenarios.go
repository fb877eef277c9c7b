package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
)

// scenario makes the ops of n virtual clients.
type scenario struct {
	name  string
	unit  string // what one op is
	setup func(ctx context.Context, e *env, n int) ([]op, error)
}

var scenarios = []scenario{
	{ScenarioClientCredentials, "request", setupClientCredentials},
	{ScenarioCodeFlow, "flow", setupCodeFlow},
	{ScenarioRefresh, "request", setupRefresh},
	{ScenarioIntrospection, "request", setupIntrospection},
	{ScenarioJWKS, "request", setupJWKS},
	{ScenarioDiscovery, "request", setupDiscovery},
}

func scenarioByName(name string) scenario {
	for _, s := range scenarios {
		if s.name == name {
			return s
		}
	}
	panic("loadtest: unknown scenario " + name) // Config.Validate keeps this away
}

// same gives every virtual client the same stateless op.
func same(n int, o op) []op {
	ops := make([]op, n)
	for i := range ops {
		ops[i] = o
	}
	return ops
}

// client_credentials: POST token with grant_type=client_credentials.
func setupClientCredentials(ctx context.Context, e *env, n int) ([]op, error) {
	if err := e.need("token_endpoint"); err != nil {
		return nil, err
	}
	cl, err := e.ccClient(ctx)
	if err != nil {
		return nil, err
	}
	return same(n, func(ctx context.Context) error {
		_, err := e.clientCredentials(ctx, cl)
		return err
	}), nil
}

// code_flow: authorize (session and consent remembered) → token → userinfo.
func setupCodeFlow(ctx context.Context, e *env, n int) ([]op, error) {
	bs, rp, err := e.browsersFor(ctx, n)
	if err != nil {
		return nil, err
	}
	ops := make([]op, n)
	for i, b := range bs {
		ops[i] = func(ctx context.Context) error {
			code, verifier, err := e.authorize(ctx, b, rp, false)
			if err != nil {
				return err
			}
			t, err := e.exchange(ctx, rp, code, verifier)
			if err != nil {
				return err
			}
			return e.userinfo(ctx, t.AccessToken)
		}
	}
	return ops, nil
}

// refresh: POST token with grant_type=refresh_token. Refresh tokens rotate
// and reuse revokes the chain, so each virtual client keeps its own chain
// and always spends the newest token.
func setupRefresh(ctx context.Context, e *env, n int) ([]op, error) {
	bs, rp, err := e.browsersFor(ctx, n)
	if err != nil {
		return nil, err
	}
	seed := func(ctx context.Context, b *browser) (string, error) {
		code, verifier, err := e.authorize(ctx, b, rp, false)
		if err != nil {
			return "", err
		}
		t, err := e.exchange(ctx, rp, code, verifier)
		if err != nil {
			return "", err
		}
		if t.RefreshToken == "" {
			return "", errors.New("authorization_code: no refresh_token although offline_access was granted")
		}
		return t.RefreshToken, nil
	}
	chains := make([]string, n)
	errs := make([]error, n)
	sem := make(chan struct{}, setupParallel)
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			chains[i], errs[i] = seed(ctx, b)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ops := make([]op, n)
	for i, b := range bs {
		chain := chains[i]
		ops[i] = func(ctx context.Context) error {
			if chain == "" {
				// The last refresh failed, so the chain may be spent or
				// revoked: start a new one.
				c, err := seed(ctx, b)
				if err != nil {
					return err
				}
				chain = c
			}
			t, err := e.token(ctx, rp, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {chain}})
			if err != nil {
				chain = ""
				return err
			}
			if t.RefreshToken == "" {
				chain = ""
				return errors.New("refresh_token: the answer holds no new refresh_token")
			}
			chain = t.RefreshToken
			return nil
		}
	}
	return ops, nil
}

// introspection: POST introspect with an active client_credentials access
// token, authenticated as the client that holds it.
func setupIntrospection(ctx context.Context, e *env, n int) ([]op, error) {
	if err := e.need("token_endpoint", "introspection_endpoint"); err != nil {
		return nil, err
	}
	cl, err := e.ccClient(ctx)
	if err != nil {
		return nil, err
	}
	ops := make([]op, n)
	for i := range ops {
		t, err := e.clientCredentials(ctx, cl)
		if err != nil {
			return nil, err
		}
		form := url.Values{"token": {t.AccessToken}}
		ops[i] = func(ctx context.Context) error {
			req, err := newForm(ctx, e.disc.IntrospectionEndpoint, form)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", cl.auth)
			resp, err := send(e.hc, req)
			if err != nil {
				return err
			}
			if resp.status != http.StatusOK {
				return statusError(req, resp)
			}
			var ir struct {
				Active bool `json:"active"`
			}
			if err := json.Unmarshal(resp.body, &ir); err != nil {
				return fmt.Errorf("POST %s: the answer is not JSON: %w", req.URL.Path, err)
			}
			if !ir.Active {
				return fmt.Errorf("POST %s: a live access token is reported inactive", req.URL.Path)
			}
			return nil
		}
	}
	return ops, nil
}

// jwks: GET jwks_uri.
func setupJWKS(_ context.Context, e *env, n int) ([]op, error) {
	if err := e.need("jwks_uri"); err != nil {
		return nil, err
	}
	return same(n, func(ctx context.Context) error { return e.getOK(ctx, e.disc.JWKSURI, `"keys"`) }), nil
}

// discovery: GET /.well-known/openid-configuration.
func setupDiscovery(_ context.Context, e *env, n int) ([]op, error) {
	u := e.url(discoveryPath)
	return same(n, func(ctx context.Context) error { return e.getOK(ctx, u, `"issuer"`) }), nil
}

// getOK expects 200 with a body holding want.
func (e *env) getOK(ctx context.Context, u, want string) error {
	req, err := newGet(ctx, u)
	if err != nil {
		return err
	}
	resp, err := send(e.hc, req)
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK {
		return statusError(req, resp)
	}
	if !bytes.Contains(resp.body, []byte(want)) {
		return fmt.Errorf("GET %s: 200 without %s", req.URL.Path, want)
	}
	return nil
}
