package webvh

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/net/idna"
)

// MaxDIDLength bounds a did:webvh DID.
const MaxDIDLength = 2048

// Identifier is a parsed did:webvh DID: did:webvh:{SCID}:{host}[%3A{port}][:{segment}…].
type Identifier struct {
	SCID string
	// Host is the ASCII (IDNA) domain name, without the port.
	Host string
	// Port is 0 when the DID names none.
	Port int
	// Path holds the decoded method-specific path segments.
	Path []string
}

// ParseDID parses a bare did:webvh DID (no DID URL path, query or fragment)
// by the method-specific identifier rules of the specification. The SCID
// may be the creation placeholder "{SCID}" only when allowPlaceholder is
// set.
func ParseDID(s string) (*Identifier, error) {
	return parseDID(s, false)
}

func parseDID(s string, allowPlaceholder bool) (*Identifier, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidDID, fmt.Sprintf(format, a...))
	}
	if len(s) > MaxDIDLength {
		return nil, bad("longer than %d characters", MaxDIDLength)
	}
	rest, ok := strings.CutPrefix(s, "did:webvh:")
	if !ok {
		return nil, bad("%q does not start with did:webvh:", s)
	}
	if strings.ContainsAny(rest, "/?#") {
		return nil, bad("%q is a DID URL, not a bare DID", s)
	}
	parts := strings.Split(rest, ":")
	if len(parts) < 2 {
		return nil, bad("%q has no SCID and domain", s)
	}
	id := &Identifier{SCID: parts[0]}
	if !(allowPlaceholder && id.SCID == scidPlaceholder) && !isSCID(id.SCID) {
		return nil, bad("SCID %q is not 46 base58btc characters", id.SCID)
	}
	host, port, err := parseDomain(parts[1])
	if err != nil {
		return nil, bad("%v", err)
	}
	id.Host, id.Port = host, port
	for _, seg := range parts[2:] {
		if !validRawChars(seg) {
			return nil, bad("path segment %q has characters not allowed in a DID", seg)
		}
		d, err := url.PathUnescape(seg)
		if err != nil {
			return nil, bad("path segment %q: invalid percent-encoding", seg)
		}
		switch {
		case d == "":
			return nil, bad("empty path segment")
		case d == "." || d == "..":
			return nil, bad("path segment %q is not allowed", d)
		case strings.ContainsAny(d, "/\\\x00"):
			return nil, bad("path segment %q contains '/', '\\' or NUL", d)
		case strings.TrimFunc(d, unicode.IsSpace) != d:
			return nil, bad("path segment %q begins or ends with whitespace", d)
		}
		id.Path = append(id.Path, d)
	}
	return id, nil
}

// validRawChars reports whether s holds only DID idchars (ALPHA, DIGIT, '.',
// '-', '_'), percent signs (checked by decoding) and, for internationalized
// names as the specification's examples use them, non-ASCII letters.
func validRawChars(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '.', r == '-', r == '_', r == '%':
		case r > unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsNumber(r)):
		default:
			return false
		}
	}
	return true
}

// parseDomain validates and decodes the domain component: an encoded,
// fully qualified domain name with an optional %3A port.
func parseDomain(raw string) (string, int, error) {
	if !validRawChars(raw) {
		return "", 0, fmt.Errorf("domain %q has characters not allowed in a DID", raw)
	}
	name, port := raw, 0
	if i := max(strings.LastIndex(raw, "%3A"), strings.LastIndex(raw, "%3a")); i >= 0 {
		name = raw[:i]
		p := raw[i+3:]
		if p == "" || len(p) > 5 || strings.Trim(p, "0123456789") != "" {
			return "", 0, fmt.Errorf("domain %q: port must be 1 to 5 digits after %%3A", raw)
		}
		n, _ := strconv.Atoi(p)
		if n < 1 || n > 65535 {
			return "", 0, fmt.Errorf("domain %q: port %d out of range", raw, n)
		}
		port = n
	}
	dec, err := url.PathUnescape(name)
	if err != nil {
		return "", 0, fmt.Errorf("domain %q: invalid percent-encoding", raw)
	}
	if strings.Contains(dec, ":") {
		return "", 0, fmt.Errorf("domain %q holds more than one port separator", raw)
	}
	ascii, err := idna.Lookup.ToASCII(dec)
	if err != nil {
		return "", 0, fmt.Errorf("domain %q is not a valid domain name: %v", raw, err)
	}
	ascii = strings.ToLower(ascii)
	if net.ParseIP(strings.Trim(ascii, "[]")) != nil || endsInNumber(ascii) {
		return "", 0, fmt.Errorf("domain %q is an IP address", raw)
	}
	if len(ascii) > 253 {
		return "", 0, fmt.Errorf("domain %q is longer than 253 octets", raw)
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", 0, fmt.Errorf("domain %q is not a fully qualified domain name", raw)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return "", 0, fmt.Errorf("domain %q has an empty or over-long label", raw)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", 0, fmt.Errorf("domain %q: label %q begins or ends with '-'", raw, l)
		}
		for _, c := range []byte(l) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", 0, fmt.Errorf("domain %q: label %q is not a host name label", raw, l)
			}
		}
	}
	return ascii, port, nil
}

// endsInNumber reports whether a URL parser (WHATWG URL "ends in a number")
// would read host as an IPv4 address, e.g. "127.1" or "0x7f.0.0.1".
func endsInNumber(host string) bool {
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	last := labels[len(labels)-1]
	if last == "" {
		return false
	}
	if strings.Trim(last, "0123456789") == "" {
		return true
	}
	if h, ok := strings.CutPrefix(last, "0x"); ok {
		return strings.Trim(h, "0123456789abcdef") == ""
	}
	return false
}

// String returns the canonical DID (port separator %3A, path segments
// percent-encoded with uppercase hex).
func (id *Identifier) String() string {
	return "did:webvh:" + id.SCID + ":" + id.HostPath()
}

// HostPath returns the part of the DID after the SCID.
func (id *Identifier) HostPath() string {
	s := id.Host
	if id.Port != 0 {
		s += "%3A" + strconv.Itoa(id.Port)
	}
	for _, p := range id.Path {
		s += ":" + escapeSegment(p)
	}
	return s
}

func escapeSegment(s string) string {
	// url.PathEscape leaves ':' alone, which would split the segment again.
	return strings.ReplaceAll(url.PathEscape(s), ":", "%3A")
}

// base returns https://host[:port][/path…].
func (id *Identifier) base() string {
	s := "https://" + id.Host
	if id.Port != 0 {
		s += ":" + strconv.Itoa(id.Port)
	}
	for _, p := range id.Path {
		s += "/" + escapeSegment(p)
	}
	return s
}

// BaseURL returns the HTTPS location of the DID's files (no trailing slash):
// the endpoint of the implicit #files service.
func (id *Identifier) BaseURL() string { return id.base() }

func (id *Identifier) file(name string) string {
	if len(id.Path) == 0 {
		return id.base() + "/.well-known/" + name
	}
	return id.base() + "/" + name
}

// LogURL returns the HTTPS URL of the DID log (did.jsonl).
func (id *Identifier) LogURL() string { return id.file("did.jsonl") }

// WitnessURL returns the HTTPS URL of the witness proofs (did-witness.json).
func (id *Identifier) WitnessURL() string { return id.file("did-witness.json") }

// WebDID returns the parallel did:web DID (same host and path, no SCID).
func (id *Identifier) WebDID() string {
	return "did:web:" + id.HostPath()
}

// WebDocumentURL returns the HTTPS URL of the parallel did:web document
// (did.json beside did.jsonl).
func (id *Identifier) WebDocumentURL() string { return id.file("did.json") }
