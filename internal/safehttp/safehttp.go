package safehttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultMaxBytes = 256 << 10
	// MaxRedirects is how many same-origin redirects a request follows.
	MaxRedirects = 3
	// dialTimeout bounds one TCP connect, streaming included.
	dialTimeout = 5 * time.Second
	// headerTimeout bounds the wait for response headers on the streaming
	// client (the body of a stream may then run for hours).
	headerTimeout = 30 * time.Second
)

// Kinds of failure, for errors.Is; the text of an Error never shows them.
var (
	ErrRefused  = errors.New("refused by the outbound address policy")
	ErrTooLarge = errors.New("response over the size limit")
	ErrTimeout  = errors.New("timed out")
	ErrStatus   = errors.New("unexpected response status")
	ErrFailed   = errors.New("request failed")
)

// Error is a failed fetch. Its text names only the URL; errors.Is finds
// its kind.
type Error struct {
	URL  string
	Kind error
}

func (e *Error) Error() string { return "could not fetch " + e.URL }

// Unwrap returns the kind (never the underlying cause, which may describe
// what answered at the address).
func (e *Error) Unwrap() error { return e.Kind }

// Options configure a Client.
type Options struct {
	// AllowLoopback lets requests reach loopback addresses and use plain
	// http to loopback hosts. Set it only when this cloud's own issuer is
	// on a loopback host.
	AllowLoopback bool
	// AllowNets are networks the operator has chosen to reach although
	// the policy refuses them (a private network where peers run). They
	// come from configuration only, never from outside input.
	AllowNets []netip.Prefix
	// Timeout bounds a whole call, redirects and body included; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// MaxBytes bounds a response body; zero means DefaultMaxBytes.
	MaxBytes int64
	// Log receives the causes of failures; nil means slog.Default().
	Log *slog.Logger
}

// Client is a guarded outbound HTTP client; it is safe for concurrent use.
type Client struct {
	opts      Options
	refused   atomic.Int64
	byReason  [numReasons]atomic.Int64
	transport *http.Transport
	limited   *http.Client
	streaming *http.Client
	// lookup resolves a host name; tests replace it.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// New returns a client with the given options.
func New(o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	c := &Client{opts: o}
	c.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	c.transport = &http.Transport{
		Proxy:                  nil, // a proxy would dial for us, past the address check
		DialContext:            c.dial,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    dialTimeout,
		ResponseHeaderTimeout:  headerTimeout,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
	}
	c.limited = &http.Client{
		Transport:     &guard{c: c, limit: o.MaxBytes},
		CheckRedirect: c.checkRedirect,
		Timeout:       o.Timeout,
	}
	c.streaming = &http.Client{
		Transport:     &guard{c: c},
		CheckRedirect: c.checkRedirect,
	}
	return c
}

// HTTPClient returns an *http.Client that applies every rule, for
// libraries that take one: its total time limit is Options.Timeout and its
// response bodies stop with an error at Options.MaxBytes.
func (c *Client) HTTPClient() *http.Client { return c.limited }

// Streaming returns an *http.Client with the address, scheme and redirect
// rules but no total time limit and no size limit, for long-lived streams
// and for callers that bound both themselves (a context deadline, an
// io.LimitReader).
func (c *Client) Streaming() *http.Client { return c.streaming }

// Refused is how many requests the policy has refused so far.
func (c *Client) Refused() int64 { return c.refused.Load() }

// AllowsLoopback reports whether loopback addresses may be reached.
func (c *Client) AllowsLoopback() bool { return c.opts.AllowLoopback }

// Get fetches rawURL and returns its body, which must answer 200 within
// the client's time limit and be at most maxBytes long (zero: the client's
// MaxBytes). accept, when set, is sent as the Accept header.
func (c *Client) Get(ctx context.Context, rawURL, accept string, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = c.opts.MaxBytes
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	fail := func(kind error) error { return &Error{URL: redacted(rawURL), Kind: kind} }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		c.refuse(reasonURL, "malformed URL", "url", redacted(rawURL))
		return nil, fail(ErrRefused)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.streaming.Do(req)
	if err != nil {
		return nil, fail(kindOf(ctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.log().Debug("outbound request answered", "url", redacted(rawURL), "status", resp.StatusCode)
		return nil, fail(ErrStatus)
	}
	if resp.ContentLength > maxBytes {
		c.log().Debug("outbound response too large", "url", redacted(rawURL), "length", resp.ContentLength, "limit", maxBytes)
		return nil, fail(ErrTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		c.log().Debug("outbound response unreadable", "url", redacted(rawURL), "err", err)
		return nil, fail(kindOf(ctx, err))
	}
	if int64(len(body)) > maxBytes {
		c.log().Debug("outbound response too large", "url", redacted(rawURL), "limit", maxBytes)
		return nil, fail(ErrTooLarge)
	}
	return body, nil
}

// kindOf classifies a failure.
func kindOf(ctx context.Context, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return ErrTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return ErrFailed
}

func (c *Client) log() *slog.Logger {
	if c.opts.Log != nil {
		return c.opts.Log
	}
	return slog.Default()
}

// refuse counts and logs a refusal.
func (c *Client) refuse(r reason, msg string, args ...any) {
	c.refused.Add(1)
	c.byReason[r].Add(1)
	c.log().Warn("outbound request refused: "+msg, args...)
}

// redacted is a URL for errors and logs, without user info.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return strings.ToValidUTF8(raw, "?")
	}
	return u.Redacted()
}

// checkURL applies the scheme and user-info rules to one request URL,
// and says which rule refused it.
func (c *Client) checkURL(u *url.URL) (reason, error) {
	if u.User != nil {
		return reasonURL, errors.New("user info in the URL")
	}
	if u.Host == "" {
		return reasonURL, errors.New("no host")
	}
	switch u.Scheme {
	case "https":
		return 0, nil
	case "http":
		if c.opts.AllowLoopback && IsLoopbackHost(u.Hostname()) {
			return 0, nil
		}
		return reasonScheme, errors.New("plain http")
	}
	return reasonScheme, fmt.Errorf("scheme %q", u.Scheme)
}

func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if len(via) > MaxRedirects {
		c.refuse(reasonRedirect, "too many redirects", "url", first.Redacted())
		return &Error{URL: first.Redacted(), Kind: ErrRefused}
	}
	if req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
		c.refuse(reasonRedirect, "redirect to another origin", "url", first.Redacted(), "location", req.URL.Redacted())
		return &Error{URL: first.Redacted(), Kind: ErrRefused}
	}
	return nil
}

// guard is the RoundTripper of both clients: it checks each request's URL
// (so every redirect hop too), turns every failure into an *Error after
// logging its cause, and bounds the body when limit is set.
type guard struct {
	c     *Client
	limit int64
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	c := g.c
	target := req.URL.Redacted()
	if r, err := c.checkURL(req.URL); err != nil {
		c.refuse(r, err.Error(), "url", target)
		return nil, &Error{URL: target, Kind: ErrRefused}
	}
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		kind := kindOf(req.Context(), err)
		if kind != ErrRefused {
			c.log().Debug("outbound request failed", "url", target, "err", err)
		}
		return nil, &Error{URL: target, Kind: kind}
	}
	if g.limit > 0 {
		if resp.ContentLength > g.limit {
			resp.Body.Close()
			c.log().Debug("outbound response too large", "url", target, "length", resp.ContentLength, "limit", g.limit)
			return nil, &Error{URL: target, Kind: ErrTooLarge}
		}
		resp.Body = &limitedBody{rc: resp.Body, left: g.limit, url: target}
	}
	return resp, nil
}

// limitedBody fails a read past the limit (rather than ending quietly, so a
// truncated document is never taken for a whole one).
type limitedBody struct {
	rc   io.ReadCloser
	left int64
	url  string
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, err := b.rc.Read(one[:]); n > 0 {
			return 0, &Error{URL: b.url, Kind: ErrTooLarge}
		} else {
			return 0, err
		}
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// dial resolves the host, refuses it unless every address is allowed, and
// connects to the checked addresses only.
func (c *Client) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var port uint16
	if _, err := fmt.Sscanf(portStr, "%d", &port); err != nil {
		return nil, fmt.Errorf("port %q", portStr)
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		if addrs, err = c.lookup(ctx, host); err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("%s: no addresses", host)
		}
	}
	for _, a := range addrs {
		if !c.allowed(a) {
			c.refuse(reasonAddress, "address not allowed", "host", host, "addr", a.String())
			return nil, &Error{URL: host, Kind: ErrRefused}
		}
	}
	d := &net.Dialer{Timeout: dialTimeout, Control: c.control}
	var first error
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, port).String())
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// control checks the address the socket is about to connect to: the last
// word, whatever resolved it.
func (c *Client) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !c.allowed(ap.Addr()) {
		c.refuse(reasonAddress, "address not allowed at connect", "addr", address)
		return &Error{URL: address, Kind: ErrRefused}
	}
	return nil
}

var (
	refusedV4 = prefixes(
		"0.0.0.0/8",      // "this network", unspecified
		"10.0.0.0/8",     // private
		"100.64.0.0/10",  // CGNAT
		"127.0.0.0/8",    // loopback
		"169.254.0.0/16", // link-local, cloud metadata
		"172.16.0.0/12",  // private
		"192.0.0.0/24",   // IETF protocol assignments
		"192.168.0.0/16", // private
		"198.18.0.0/15",  // benchmarking
		"224.0.0.0/4",    // multicast
		"240.0.0.0/4",    // reserved, broadcast
	)
	refusedV6 = prefixes(
		"::/96",         // unspecified, loopback, IPv4-compatible
		"100::/64",      // discard
		"fc00::/7",      // unique local (private)
		"fe80::/10",     // link-local
		"fec0::/10",     // site-local
		"ff00::/8",      // multicast
		"2001:db8::/32", // documentation
	)
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	nat64Loc  = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour = netip.MustParsePrefix("2002::/16")
	loopV4    = netip.MustParsePrefix("127.0.0.0/8")
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// allowed applies the policy with the operator's allowed networks.
func (c *Client) allowed(a netip.Addr) bool {
	if Allowed(a, c.opts.AllowLoopback) {
		return true
	}
	a = a.WithZone("").Unmap()
	for _, p := range c.opts.AllowNets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseNets parses a comma-separated list of networks in CIDR notation
// (10.1.0.0/16,fd00:1::/48); an empty list is nil.
func ParseNets(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a network in CIDR notation (such as 10.1.0.0/16)", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Allowed reports whether an address may be connected to: a public
// address, or a loopback one when allowLoopback is set.
func Allowed(a netip.Addr, allowLoopback bool) bool {
	if !a.IsValid() {
		return false
	}
	a = a.WithZone("")
	if a.Is4In6() {
		a = a.Unmap()
	}
	if a.Is4() {
		if allowLoopback && loopV4.Contains(a) {
			return true
		}
		for _, p := range refusedV4 {
			if p.Contains(a) {
				return false
			}
		}
		return true
	}
	if a == netip.IPv6Loopback() {
		return allowLoopback
	}
	for _, p := range refusedV6 {
		if p.Contains(a) {
			return false
		}
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		// NAT64 maps the last 32 bits to IPv4: the same rules apply.
		return Allowed(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), false)
	case nat64Loc.Contains(a):
		return false // local-use NAT64: an operator's own translation
	case sixToFour.Contains(a):
		// 6to4 embeds an IPv4 address in bits 16..47.
		return Allowed(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), false)
	}
	return true
}

// IsLoopbackHost reports a host name or literal that denotes this machine:
// localhost, *.localhost, 127.0.0.0/8 or ::1 (brackets allowed).
func IsLoopbackHost(h string) bool {
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return false
	}
	return a.Unmap().IsLoopback()
}
