package httpx

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// maxHops bounds how many forwarded hops are read from the right: a chain
// longer than this is not one a deployment builds, and the client is taken
// from the hops read.
const maxHops = 16

// ParseTrustedProxies reads a comma-separated list of CIDR ranges (a bare
// address stands for itself) of the reverse proxies whose forwarding
// headers are believed. An empty list trusts no proxy.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR range or an IP address", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR range (like 10.0.0.0/8 or fd00::/8)", f)
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("%q: write IPv4 ranges in IPv4 form", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

type clientIPKey struct{}

// TrustProxies is middleware that finds the client's address of a request
// that came through one of the trusted reverse proxies: from the Forwarded
// header (RFC 7239) or, without one, X-Forwarded-For, it takes the
// rightmost hop that is not itself a trusted proxy (every hop to its right
// was added by a proxy we trust; anything to its left the client may have
// written). A request whose peer is not trusted keeps the peer's address,
// whatever its headers say. ClientIP returns the result.
func TrustProxies(trusted []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if len(trusted) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ip := forwardedClient(r, trusted); ip != "" {
				r = r.WithContext(context.WithValue(r.Context(), clientIPKey{}, ip))
			}
			next.ServeHTTP(w, r)
		})
	}
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedClient returns the client address r's trusted proxies name, or
// "" to keep the peer's.
func forwardedClient(r *http.Request, trusted []netip.Prefix) string {
	peer, err := netip.ParseAddr(peerHost(r))
	if err != nil || !isTrusted(peer, trusted) {
		return ""
	}
	var hops []string
	if fw := r.Header.Values("Forwarded"); len(fw) > 0 {
		hops = forwardedFor(fw)
	} else if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		for _, v := range xff {
			for _, h := range strings.Split(v, ",") {
				hops = append(hops, strings.TrimSpace(h))
			}
		}
	}
	var last netip.Addr
	for i := len(hops) - 1; i >= 0 && i >= len(hops)-maxHops; i-- {
		a, ok := hopAddr(hops[i])
		if !ok {
			// "unknown", an obfuscated name or garbage: the client
			// cannot be told apart; the last proxy stands for it.
			break
		}
		if !isTrusted(a, trusted) {
			return a.String()
		}
		last = a
	}
	if last.IsValid() {
		// Every hop is a trusted proxy: the leftmost one read is the
		// nearest thing to a client.
		return last.String()
	}
	return ""
}

// forwardedFor returns the for= values of Forwarded headers, in order.
func forwardedFor(values []string) []string {
	var out []string
	for _, v := range values {
		for _, elem := range splitQuoted(v, ',') {
			for _, pair := range splitQuoted(elem, ';') {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "for") {
					out = append(out, strings.Trim(strings.TrimSpace(val), `"`))
				}
			}
		}
		if len(out) > 4*maxHops {
			break
		}
	}
	return out
}

// splitQuoted splits s at sep outside double quotes.
func splitQuoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// hopAddr reads one hop: an IP address, "[IPv6]" or either with a port.
func hopAddr(h string) (netip.Addr, bool) {
	if len(h) > 64 {
		return netip.Addr{}, false
	}
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return ap.Addr().Unmap(), true
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	a, err := netip.ParseAddr(h)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func peerHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ClientIP is the IP address of the client: the peer of the connection, or,
// for a request through a trusted proxy (TrustProxies), the address the
// proxy forwarded.
func ClientIP(r *http.Request) string {
	if ip, ok := r.Context().Value(clientIPKey{}).(string); ok {
		return ip
	}
	return peerHost(r)
}
