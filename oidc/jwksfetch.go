package oidc

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/internal/safehttp"
)

// guardedJWKS fetches the keys of private_key_jwt clients registered with a
// jwks_uri through the guarded outbound client (package safehttp: no
// internal addresses, same-origin redirects only, 5 s, 256 KiB), with one
// retry and no request logging. fosite's own errors name the status or the
// parse error of what answered; the client is told only that the URL
// could not be fetched.
type guardedJWKS struct {
	inner fosite.JWKSFetcherStrategy
	log   *slog.Logger
}

func newJWKSFetcher(out *safehttp.Client, log *slog.Logger) fosite.JWKSFetcherStrategy {
	c := retryablehttp.NewClient()
	c.Logger, c.RetryMax = nil, 1
	c.RetryWaitMin, c.RetryWaitMax = 100*time.Millisecond, 500*time.Millisecond
	c.HTTPClient = out.HTTPClient()
	c.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if errors.Is(err, safehttp.ErrRefused) || errors.Is(err, safehttp.ErrTooLarge) {
			return false, err // asking again changes nothing
		}
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &guardedJWKS{inner: fosite.NewDefaultJWKSFetcherStrategy(fosite.JWKSFetcherWithHTTPClient(c)), log: log}
}

func (g *guardedJWKS) Resolve(ctx context.Context, location string, ignoreCache bool) (*jose.JSONWebKeySet, error) {
	set, err := g.inner.Resolve(ctx, location, ignoreCache)
	if err != nil {
		g.log.DebugContext(ctx, "jwks_uri fetch failed", "url", location, "err", err)
		return nil, fosite.ErrInvalidClient.WithHintf("could not fetch %s", location)
	}
	return set, nil
}
