package main

import (
	"log/slog"
	"net/url"
	"sync"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/internal/safehttp"
)

// outboundClient is the cloud's one guarded outbound client and what is
// built on it (see package safehttp).
type outboundClient struct {
	*safehttp.Client
	resolver *did.Resolver
}

var outboundMu sync.Mutex

// allowLoopback reports whether outbound requests may reach loopback: only
// when the issuer itself is on a loopback host, and not if the operator
// denies it.
func (c *Config) allowLoopback() bool {
	if c.OutboundLoopback == "deny" {
		return false
	}
	u, err := url.Parse(c.Issuer)
	return err == nil && safehttp.IsLoopbackHost(u.Hostname())
}

// Outbound returns the guarded client every fetch of an outside URL goes
// through (sector_identifier_uri, jwks_uri, did:web, peers), built once
// per configuration so that its refusal count covers the whole process.
func (c *Config) Outbound(log *slog.Logger) *outboundClient {
	outboundMu.Lock()
	defer outboundMu.Unlock()
	if c.outbound == nil {
		nets, _ := safehttp.ParseNets(c.OutboundAllow) // checked by Validate
		sc := safehttp.New(safehttp.Options{AllowLoopback: c.allowLoopback(), AllowNets: nets, Log: log})
		c.outbound = &outboundClient{Client: sc, resolver: &did.Resolver{HTTP: sc, WebVH: webvhFetcher(sc)}}
	}
	return c.outbound
}
