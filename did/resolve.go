package did

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	ariesvdr "github.com/hyperledger/aries-framework-go/pkg/framework/aries/api/vdr"
	"github.com/hyperledger/aries-framework-go/pkg/vdr/key"
	"github.com/hyperledger/aries-framework-go/pkg/vdr/web"

	"github.com/onecommons/commonsid/internal/safehttp"
)

// Limits applied to did:web resolution.
const (
	WebTimeout      = 5 * time.Second
	WebMaxDocument  = 256 << 10
	maxDIDLength    = 4096
	didJWKMaxLength = 2048
)

// ErrUnsupportedMethod reports a DID method this package does not resolve.
var ErrUnsupportedMethod = errors.New("unsupported DID method")

// ErrInvalidDID reports a string that is not a well-formed DID of its method.
var ErrInvalidDID = errors.New("invalid DID")

// Resolver turns DIDs into DID documents. The zero value is ready to use:
// it fetches did:web documents through a guarded client (package safehttp)
// that refuses private, link-local and metadata addresses, and loopback
// unless the DID itself names a loopback host. A server sets HTTP to its
// own guarded client, which refuses loopback unless the server's issuer is
// itself on a loopback host.
type Resolver struct {
	// HTTP carries did:web requests; nil means the default guarded client
	// described above.
	HTTP *safehttp.Client
	// Transport, when set, replaces the network altogether (tests and fuzz
	// targets); the address guard is then not applied.
	Transport http.RoundTripper
	// Timeout bounds one did:web resolution; zero means WebTimeout.
	Timeout time.Duration
	// WebVH fetches did:webvh logs (webvh_resolve.go); nil: did:webvh is not resolved.
	WebVH WebVHFetcher
	// WebVHFallback, when set, gives a did:webvh log from elsewhere (a
	// federation's copies) when the DID's own host cannot be reached or
	// answers an error (webvh_resolve.go).
	WebVHFallback WebVHFallback
}

// The default guarded clients of a zero Resolver: one for DIDs on public
// hosts, one that may reach loopback for DIDs naming a loopback host.
var (
	defaultWeb = sync.OnceValue(func() *safehttp.Client {
		return safehttp.New(safehttp.Options{Timeout: WebTimeout, MaxBytes: WebMaxDocument})
	})
	defaultWebLoopback = sync.OnceValue(func() *safehttp.Client {
		return safehttp.New(safehttp.Options{AllowLoopback: true, Timeout: WebTimeout, MaxBytes: WebMaxDocument})
	})
)

// Resolve returns the DID document of id. did:key and did:jwk are resolved
// offline; did:web fetches the document (see the package documentation).
func (r *Resolver) Resolve(ctx context.Context, id string) (*Document, error) {
	if len(id) > maxDIDLength {
		return nil, fmt.Errorf("%w: longer than %d characters", ErrInvalidDID, maxDIDLength)
	}
	method, _, ok := methodOf(id)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not of the form did:method:id", ErrInvalidDID, id)
	}
	var (
		doc *Document
		err error
	)
	switch method {
	case "key":
		doc, err = resolveKey(id)
	case "jwk":
		doc, err = resolveJWK(id)
	case "web":
		doc, err = r.resolveWeb(ctx, id)
	case "webvh":
		doc, err = r.resolveWebVH(ctx, id)
	default:
		return nil, fmt.Errorf("%w: did:%s", ErrUnsupportedMethod, method)
	}
	if err != nil {
		return nil, err
	}
	if doc.ID != id {
		return nil, fmt.Errorf("resolve %s: document id is %q", id, doc.ID)
	}
	return doc, nil
}

func methodOf(id string) (method, specific string, ok bool) {
	rest, ok := strings.CutPrefix(id, "did:")
	if !ok {
		return "", "", false
	}
	method, specific, ok = strings.Cut(rest, ":")
	if !ok || method == "" || specific == "" {
		return "", "", false
	}
	for _, c := range method {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return "", "", false
		}
	}
	return method, specific, true
}

// didKeyID matches a did:key method-specific id: multibase base58btc.
var didKeyID = regexp.MustCompile(`^z[1-9A-HJ-NP-Za-km-z]{40,200}$`)

func resolveKey(id string) (doc *Document, err error) {
	if !didKeyID.MatchString(strings.TrimPrefix(id, "did:key:")) {
		return nil, fmt.Errorf("%w: %q is not a base58btc did:key", ErrInvalidDID, id)
	}
	// The third-party decoder must never take the process down on hostile
	// input.
	defer func() {
		if r := recover(); r != nil {
			doc, err = nil, fmt.Errorf("%w: %q could not be decoded", ErrInvalidDID, id)
		}
	}()
	res, err := key.New().Read(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidDID, id, err)
	}
	doc, err = fromAries(res.DIDDocument)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", id, err)
	}
	return doc, nil
}

// resolveJWK implements did:jwk: the method-specific id is the base64url
// encoding of a public JWK, and the document has one method, "#0".
func resolveJWK(id string) (*Document, error) {
	enc := strings.TrimPrefix(id, "did:jwk:")
	if len(enc) > didJWKMaxLength {
		return nil, fmt.Errorf("%w: did:jwk longer than %d characters", ErrInvalidDID, didJWKMaxLength)
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: did:jwk is not base64url: %v", ErrInvalidDID, err)
	}
	var k jose.JSONWebKey
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, fmt.Errorf("%w: did:jwk does not hold a JWK: %v", ErrInvalidDID, err)
	}
	if !k.IsPublic() {
		return nil, fmt.Errorf("%w: did:jwk holds a private key", ErrInvalidDID)
	}
	vmID := id + "#0"
	return &Document{
		Context:            []string{ContextV1, ContextJWS2020},
		ID:                 id,
		VerificationMethod: []VerificationMethod{{ID: vmID, Type: "JsonWebKey2020", Controller: id, PublicKeyJWK: &k, key: k.Key}},
		Authentication:     []string{vmID},
		AssertionMethod:    []string{vmID},
	}, nil
}

// JWKDID returns the did:jwk DID of a public key.
func JWKDID(pub any) (string, error) {
	k, err := jwkFromPublic(pub)
	if err != nil {
		return "", err
	}
	b, err := k.MarshalJSON()
	if err != nil {
		return "", fmt.Errorf("marshal JWK: %w", err)
	}
	return "did:jwk:" + base64.RawURLEncoding.EncodeToString(b), nil
}

func jwkFromPublic(pub any) (*jose.JSONWebKey, error) {
	k := &jose.JSONWebKey{Key: pub}
	if !k.Valid() || !k.IsPublic() {
		return nil, fmt.Errorf("unsupported public key type %T", pub)
	}
	if p, ok := pub.(ed25519.PublicKey); ok && len(p) != ed25519.PublicKeySize {
		return nil, errors.New("malformed Ed25519 public key")
	}
	return k, nil
}

func (r *Resolver) resolveWeb(ctx context.Context, id string) (doc *Document, err error) {
	// The third-party parser must never take the process down on a hostile
	// document.
	defer func() {
		if rec := recover(); rec != nil {
			doc, err = nil, fmt.Errorf("resolve %s: malformed DID document", id)
		}
	}()
	host, err := webHost(id)
	if err != nil {
		return nil, err
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = WebTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	local := isLocalhost(host)
	base := r.Transport
	if base == nil {
		sc := r.HTTP
		if sc == nil {
			sc = defaultWeb()
			if local {
				sc = defaultWebLoopback()
			}
		}
		base = sc.Streaming().Transport
	}
	lt := &limitedTransport{ctx: ctx, base: base, limit: WebMaxDocument}
	client := &http.Client{
		// The deadline is ctx's alone (the transport attaches it to every
		// request), so a timeout is always reported as one.
		Transport: lt,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("did:web documents are not fetched through redirects")
		},
	}
	opts := []ariesvdr.DIDMethodOption{ariesvdr.WithOption(web.HTTPClientOpt, client)}
	if local {
		opts = append(opts, ariesvdr.WithOption(web.UseHTTPOpt, true))
	}
	res, err := web.New().Read(id, opts...)
	if err != nil {
		// What answered (a status, an error text, bytes of the body) is
		// not repeated: whoever named the DID may have pointed it at a
		// service that is not theirs.
		fetch := func(kind error) error {
			return fmt.Errorf("resolve %s: %w", id, &safehttp.Error{URL: webURL(id, local), Kind: kind})
		}
		switch {
		case ctx.Err() != nil:
			return nil, fetch(safehttp.ErrTimeout)
		case lt.tooLarge:
			return nil, fetch(safehttp.ErrTooLarge)
		case lt.err != nil:
			var se *safehttp.Error
			if errors.As(lt.err, &se) {
				return nil, fetch(se.Kind)
			}
			return nil, fetch(safehttp.ErrFailed)
		case lt.status != http.StatusOK:
			return nil, fetch(safehttp.ErrStatus)
		}
		return nil, fmt.Errorf("resolve %s: the document at %s is not a valid DID document", id, webURL(id, local))
	}
	doc, err = fromAries(res.DIDDocument)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", id, err)
	}
	return doc, nil
}

// webURL is the URL a did:web DID's document is fetched from (did:web
// method specification: host, optional path segments, did.json).
func webURL(id string, plainHTTP bool) string {
	parts := strings.Split(strings.TrimPrefix(id, "did:web:"), ":")
	host, _ := url.PathUnescape(parts[0])
	scheme := "https://"
	if plainHTTP {
		scheme = "http://"
	}
	if len(parts) == 1 {
		return scheme + host + "/.well-known/did.json"
	}
	path := ""
	for _, seg := range parts[1:] {
		if s, err := url.PathUnescape(seg); err == nil {
			seg = s
		}
		path += "/" + url.PathEscape(seg)
	}
	return scheme + host + path + "/did.json"
}

// webHost returns the host (with port) named by a did:web DID.
func webHost(id string) (string, error) {
	specific := strings.TrimPrefix(id, "did:web:")
	first, _, _ := strings.Cut(specific, ":")
	host, err := url.PathUnescape(first)
	if err != nil || host == "" || strings.ContainsAny(host, "/?#@ ") {
		return "", fmt.Errorf("%w: %q has no valid host", ErrInvalidDID, id)
	}
	return host, nil
}

func isLocalhost(hostport string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// WebDID returns the did:web DID of an issuer URL: the host, with a port
// encoded as %3A, and any path segments joined with ':'.
func WebDID(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return "", fmt.Errorf("issuer %q: %w", issuer, err)
	}
	if u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("issuer %q must be an absolute http(s) URL", issuer)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("issuer %q must not have a query, fragment or user info", issuer)
	}
	out := "did:web:" + strings.ReplaceAll(strings.ToLower(u.Host), ":", "%3A")
	for _, seg := range strings.Split(strings.Trim(u.Path, "/"), "/") {
		if seg != "" {
			out += ":" + url.PathEscape(seg)
		}
	}
	return out, nil
}

// WebDocumentPath returns the URL path at which the did:web document of an
// issuer is served: /.well-known/did.json for a bare host, else PATH/did.json.
func WebDocumentPath(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return "", fmt.Errorf("issuer %q: %w", issuer, err)
	}
	p := strings.Trim(u.Path, "/")
	if p == "" {
		return "/.well-known/did.json", nil
	}
	return "/" + p + "/did.json", nil
}

// limitedTransport attaches the resolution's deadline to every request,
// bounds the document, and remembers what went wrong so that the error can
// be reported without the third party's wording.
type limitedTransport struct {
	ctx   context.Context
	base  http.RoundTripper
	limit int64

	err      error // the round trip's error
	status   int   // the last status answered
	tooLarge bool
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.WithContext(t.ctx)
	req.Header.Set("Accept", "application/did+json, application/json")
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		t.err = err
		return nil, err
	}
	t.status = resp.StatusCode
	if resp.ContentLength > t.limit {
		resp.Body.Close()
		t.tooLarge = true
		return nil, fmt.Errorf("DID document is %d bytes, over the %d byte limit", resp.ContentLength, t.limit)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.limit, t: t}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
	t    *limitedTransport
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Probe for one more byte to tell "exactly at the limit" from "over it".
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			b.t.tooLarge = true
			return 0, fmt.Errorf("DID document over the %d byte limit", WebMaxDocument)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
