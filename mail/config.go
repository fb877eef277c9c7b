package mail

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Security of the connection to the SMTP server.
const (
	// SecurityStartTLS: a plain connection upgraded with STARTTLS before
	// anything else is said; a server without STARTTLS is refused (smtp://).
	SecurityStartTLS Security = "starttls"
	// SecurityTLS: TLS from the first byte (smtps://).
	SecurityTLS Security = "tls"
	// SecurityNone: no encryption at all (smtp://…?starttls=off), allowed
	// only for a server on a loopback address.
	SecurityNone Security = "none"
)

// Security says how the connection to the SMTP server is protected.
type Security string

// Authentication mechanisms offered to the server when the URL carries a
// user name.
const (
	AuthAuto  = "auto"  // PLAIN when the server offers it, else LOGIN
	AuthPlain = "plain" // SASL PLAIN (RFC 4616)
	AuthLogin = "login" // the LOGIN mechanism
)

// Timeouts of an SMTP delivery.
const (
	DefaultTimeout = 15 * time.Second
	MinTimeout     = time.Second
	MaxTimeout     = 5 * time.Minute
)

const maxURLBytes = 2048

// Config is the SMTP server mail is delivered through, parsed from a URL by
// ParseURL. String redacts the password.
type Config struct {
	Host     string
	Port     int
	Security Security
	// Username and Password authenticate to the server; empty Username: no
	// authentication.
	Username string
	Password string
	// Auth is the mechanism: AuthAuto, AuthPlain or AuthLogin.
	Auth string
	// From is the sender of every message, "Name <address>" or an address.
	From string
	// Timeout bounds one delivery: connecting, the greeting, TLS, AUTH
	// and the transfer of the message.
	Timeout time.Duration
	// CAFile is a PEM file of certificate authorities trusted for the
	// server's certificate instead of the system's roots.
	CAFile string
	// InsecureSkipVerify accepts any certificate; loopback servers only.
	InsecureSkipVerify bool
	// HELO is the name this cloud greets the server with (default: the
	// machine's host name).
	HELO string
}

// ParseURL reads the configuration of an SMTP server:
//
//	smtp://user:pass@host:587?from=id@example.org     STARTTLS required
//	smtps://user:pass@host:465?from=id@example.org    TLS from the start
//	smtp://127.0.0.1:1025?starttls=off&from=…         no TLS (loopback only)
//
// Query parameters: from (the sender; defaults to the user name when that
// is an address), auth (plain, login; default: plain when offered, else
// login), timeout (a Go duration, 1s–5m, default 15s), ca_file (PEM roots
// to trust), insecure_skip_verify (loopback only), starttls=off (smtp://
// on loopback only), helo. An unknown parameter is an error, so that a
// typo does not silently weaken the connection. Errors name the problem
// and never repeat the password.
func ParseURL(raw string) (*Config, error) {
	if raw == "" {
		return nil, errors.New("smtp URL is empty")
	}
	if len(raw) > maxURLBytes {
		return nil, fmt.Errorf("smtp URL is longer than %d bytes", maxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, password included: say only what
		// kind of problem it is.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("smtp URL does not parse: %s", redactErr(err, raw))
	}
	c := &Config{Timeout: DefaultTimeout, Auth: AuthAuto}
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		c.Security, c.Port = SecurityStartTLS, 587
	case "smtps":
		c.Security, c.Port = SecurityTLS, 465
	case "":
		return nil, errors.New("smtp URL has no scheme: write smtp://host:587 (STARTTLS) or smtps://host:465 (TLS)")
	default:
		return nil, fmt.Errorf("smtp URL scheme %q is not supported: use smtp:// (STARTTLS) or smtps:// (TLS)", u.Scheme)
	}
	if u.Opaque != "" {
		return nil, errors.New("smtp URL has no host: write smtp://host:587")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, errors.New("smtp URL has a path: put the sender in ?from=")
	}
	if u.Fragment != "" {
		return nil, errors.New("smtp URL has a fragment (#…)")
	}
	c.Host = u.Hostname()
	if c.Host == "" {
		return nil, errors.New("smtp URL has no host")
	}
	if strings.ContainsAny(c.Host, " \t\r\n/\\%") {
		return nil, fmt.Errorf("smtp URL host %q is not a host name", c.Host)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("smtp URL port %q is not a port (1–65535)", p)
		}
		c.Port = n
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
		if c.Username == "" {
			return nil, errors.New("smtp URL has a password but no user name")
		}
		if strings.ContainsAny(c.Username+c.Password, "\x00\r\n") {
			return nil, errors.New("smtp URL user name or password holds a NUL or line break")
		}
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("smtp URL query does not parse: %v", err)
	}
	var problems []error
	starttls := ""
	for key, vals := range q {
		if len(vals) != 1 {
			problems = append(problems, fmt.Errorf("smtp URL parameter %q is given %d times", key, len(vals)))
			continue
		}
		v := vals[0]
		switch key {
		case "from":
			c.From = v
		case "auth":
			switch strings.ToLower(v) {
			case AuthPlain, AuthLogin, AuthAuto:
				c.Auth = strings.ToLower(v)
			default:
				problems = append(problems, fmt.Errorf("smtp URL auth=%q is not supported: use plain or login", v))
			}
		case "timeout":
			d, err := time.ParseDuration(v)
			switch {
			case err != nil:
				problems = append(problems, fmt.Errorf("smtp URL timeout=%q is not a duration such as 30s", v))
			case d < MinTimeout || d > MaxTimeout:
				problems = append(problems, fmt.Errorf("smtp URL timeout=%s is outside %s–%s", d, MinTimeout, MaxTimeout))
			default:
				c.Timeout = d
			}
		case "ca_file":
			if v == "" {
				problems = append(problems, errors.New("smtp URL ca_file is empty"))
			}
			c.CAFile = v
		case "insecure_skip_verify":
			b, err := parseBool(v)
			if err != nil {
				problems = append(problems, fmt.Errorf("smtp URL insecure_skip_verify=%q: %v", v, err))
			}
			c.InsecureSkipVerify = b
		case "starttls":
			starttls = strings.ToLower(v)
			if starttls != "off" && starttls != "on" {
				problems = append(problems, fmt.Errorf("smtp URL starttls=%q: only starttls=off is known (STARTTLS is on by default)", v))
			}
		case "helo":
			if v == "" || len(v) > 253 || strings.ContainsAny(v, " \t\r\n") {
				problems = append(problems, fmt.Errorf("smtp URL helo=%q is not a host name", v))
			}
			c.HELO = v
		default:
			problems = append(problems, fmt.Errorf("smtp URL parameter %q is unknown (known: from, auth, timeout, ca_file, insecure_skip_verify, starttls, helo)", key))
		}
	}

	loopback := isLoopback(c.Host)
	if starttls == "off" {
		switch {
		case c.Security == SecurityTLS:
			problems = append(problems, errors.New("smtp URL starttls=off does not apply to smtps:// (TLS from the start)"))
		case !loopback:
			problems = append(problems, fmt.Errorf("smtp URL starttls=off is allowed only for a loopback server, not %q: mail and passwords would cross the network in clear", c.Host))
		default:
			c.Security = SecurityNone
		}
	}
	if c.InsecureSkipVerify && !loopback {
		problems = append(problems, fmt.Errorf("smtp URL insecure_skip_verify is allowed only for a loopback server, not %q: give the server's CA with ca_file instead", c.Host))
	}
	if c.InsecureSkipVerify && c.CAFile != "" {
		problems = append(problems, errors.New("smtp URL has both ca_file and insecure_skip_verify: choose one"))
	}
	if c.Security == SecurityNone && (c.CAFile != "" || c.InsecureSkipVerify) {
		problems = append(problems, errors.New("smtp URL starttls=off uses no TLS: ca_file and insecure_skip_verify do not apply"))
	}
	if c.Username == "" && c.Auth != AuthAuto {
		problems = append(problems, fmt.Errorf("smtp URL auth=%s needs a user name (smtp://user:pass@host)", c.Auth))
	}

	if c.From == "" {
		if a, err := mail.ParseAddress(c.Username); err == nil && strings.Contains(c.Username, "@") {
			c.From = a.Address
		} else {
			problems = append(problems, errors.New("smtp URL has no sender: add ?from=id@your-domain"))
		}
	}
	if c.From != "" {
		if _, err := parseFrom(c.From); err != nil {
			problems = append(problems, fmt.Errorf("smtp URL from: %w", err))
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return c, nil
}

// String is the configuration as a URL with the password redacted, for logs
// and `config show`.
func (c *Config) String() string {
	if c == nil {
		return "<nil>"
	}
	u := url.URL{Scheme: "smtp", Host: net.JoinHostPort(c.Host, strconv.Itoa(c.Port))}
	if c.Security == SecurityTLS {
		u.Scheme = "smtps"
	}
	if c.Username != "" {
		if c.Password != "" {
			u.User = url.UserPassword(c.Username, "REDACTED")
		} else {
			u.User = url.User(c.Username)
		}
	}
	q := url.Values{}
	q.Set("from", c.From)
	if c.Security == SecurityNone {
		q.Set("starttls", "off")
	}
	if c.Auth != "" && c.Auth != AuthAuto {
		q.Set("auth", c.Auth)
	}
	if c.Timeout != 0 && c.Timeout != DefaultTimeout {
		q.Set("timeout", c.Timeout.String())
	}
	if c.CAFile != "" {
		q.Set("ca_file", c.CAFile)
	}
	if c.InsecureSkipVerify {
		q.Set("insecure_skip_verify", "true")
	}
	if c.HELO != "" {
		q.Set("helo", c.HELO)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "", "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, errors.New("want true or false")
}

// isLoopback reports whether host names this machine: "localhost" or a
// loopback address. Other names are not resolved: what they resolve to can
// change after start-up.
func isLoopback(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// redactErr renders err without any copy of the URL's user information.
func redactErr(err error, raw string) string {
	s := err.Error()
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			s = strings.ReplaceAll(s, p, "REDACTED")
		}
	}
	// The URL did not parse, so its password cannot be found reliably:
	// drop everything between "://" and the last "@".
	if i := strings.Index(raw, "://"); i >= 0 {
		if j := strings.LastIndex(raw, "@"); j > i {
			if secret := raw[i+3 : j]; secret != "" {
				s = strings.ReplaceAll(s, secret, "REDACTED")
				if k := strings.Index(secret, ":"); k >= 0 && k+1 < len(secret) {
					s = strings.ReplaceAll(s, secret[k+1:], "REDACTED")
				}
			}
		}
	}
	return s
}
