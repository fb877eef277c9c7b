package federation

import (
	"net/http"
	"net/url"
	"sync"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/internal/safehttp"
)

// Requests to peers go through the guarded outbound client (package
// safehttp): no internal addresses, same-origin redirects only, and
// loopback only for a cloud whose own issuer is on a loopback host. A
// cloud passes its own client as Federation.HTTP; these are the defaults
// without one. They are the streaming clients, without a total time limit
// (a live stream lasts for hours): every call bounds its time with a
// context and what it reads with a limit.
var (
	defaultPeers         = sync.OnceValue(func() *safehttp.Client { return safehttp.New(safehttp.Options{}) })
	defaultPeersLoopback = sync.OnceValue(func() *safehttp.Client { return safehttp.New(safehttp.Options{AllowLoopback: true}) })
)

// loopbackIssuer reports an issuer URL on a loopback host.
func loopbackIssuer(issuer string) bool {
	u, err := url.Parse(issuer)
	return err == nil && safehttp.IsLoopbackHost(u.Hostname())
}

// guardedFor returns the default guarded client for a cloud or a service
// whose own issuer is issuer.
func guardedFor(issuer string) *safehttp.Client {
	if loopbackIssuer(issuer) {
		return defaultPeersLoopback()
	}
	return defaultPeers()
}

func defaultClient(issuer string) *http.Client { return guardedFor(issuer).Streaming() }

// resolver resolves the account DIDs named in peers' events.
func (f *Federation) resolver() *did.Resolver {
	if f.Resolver != nil {
		return f.Resolver
	}
	return &did.Resolver{HTTP: guardedFor(f.Issuer)}
}
