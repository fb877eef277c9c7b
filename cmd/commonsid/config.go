package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/internal/safehttp"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/store/sqlstore"
)

// Config is the whole configuration, from flags and COMMONSID_* variables
// (flags win).
type Config struct {
	Addr            string
	Issuer          string
	DataDir         string
	DB              string // empty: sqlite:<DataDir>/commonsid.db
	Secret          string // base64 key-encryption key; empty: <DataDir>/kek
	LogFormat       string // auto, text or json
	LogLevel        string
	WebDir          string
	ShutdownTimeout time.Duration

	Registration      string // open, token or closed
	RegistrationToken string // initial access token for mode token
	CodeTTL           time.Duration
	AccessTTL         time.Duration
	RefreshTTL        time.Duration
	RateLimit         string // on, off, or a scale factor
	Demo              bool   // also run the sample service on the next port
	// OutboundLoopback is auto (outbound fetches may reach loopback only
	// when the issuer is on a loopback host) or deny (never).
	OutboundLoopback string
	// OutboundAllow lists networks (CIDR, comma-separated) that outbound
	// fetches may reach although they are private: peers on the
	// operator's own network.
	OutboundAllow string
	// AccountDID is the DID method of new accounts: key or webvh
	// (account_did.go).
	AccountDID string
	// Resources lists resource servers (RFC 8707 resource URIs,
	// comma-separated) every client may ask access tokens for.
	Resources string

	// ChangeIssuer lets `serve` rename a cloud whose recorded issuer
	// others already depend on (see resolveIssuer).
	ChangeIssuer bool

	// issuerGiven is set when --issuer or COMMONSID_ISSUER names the
	// issuer; otherwise the issuer recorded in the database is used.
	issuerGiven bool
	// serving is set for `serve`, which records the issuer.
	serving bool
	// mustExist is set for read-only commands: a data folder or database
	// that holds no cloud is reported, not created.
	mustExist bool

	outbound *outboundClient // built once, see outbound.go
}

// issuerFlag is --issuer: it remembers that it was given.
type issuerFlag struct{ c *Config }

func (f issuerFlag) String() string {
	if f.c == nil {
		return ""
	}
	return f.c.Issuer
}

func (f issuerFlag) Set(s string) error {
	f.c.Issuer, f.c.issuerGiven = s, true
	return nil
}

// Defaults.
const (
	defaultAddr   = "127.0.0.1:8080"
	defaultIssuer = "http://localhost:8080"
	defaultData   = "./commonsid-data"
	dbFile        = "commonsid.db"
)

func envOr(env func(string) string, key, def string) string {
	if v := env(key); v != "" {
		return v
	}
	return def
}

// storageFlags registers the flags that every command shares.
func (c *Config) storageFlags(fs *flag.FlagSet, env func(string) string) {
	fs.StringVar(&c.DataDir, "data", envOr(env, "COMMONSID_DATA", defaultData), "data folder: SQLite database and key-encryption key (env COMMONSID_DATA)")
	fs.StringVar(&c.DB, "db", env("COMMONSID_DB"), "database: sqlite:PATH or postgres://… (env COMMONSID_DB; default sqlite:DATA/commonsid.db)")
	c.Issuer = defaultIssuer
	if v := env("COMMONSID_ISSUER"); v != "" {
		c.Issuer, c.issuerGiven = v, true
	}
	fs.Var(issuerFlag{c}, "issuer", "issuer URL of this cloud (env COMMONSID_ISSUER); default: the issuer serve recorded in the database, else "+defaultIssuer+". A different one than recorded is refused")
	fs.StringVar(&c.LogFormat, "log-format", envOr(env, "COMMONSID_LOG_FORMAT", "auto"), "log format: auto (text on a terminal, else json), text or json")
	fs.StringVar(&c.LogLevel, "log-level", envOr(env, "COMMONSID_LOG_LEVEL", "info"), "log level: debug, info, warn or error")
	c.Secret = env("COMMONSID_SECRET")
	c.OutboundLoopback = envOr(env, "COMMONSID_OUTBOUND_LOOPBACK", "auto")
	c.OutboundAllow = env("COMMONSID_OUTBOUND_ALLOW")
	c.Resources = env("COMMONSID_RESOURCES")
	fs.StringVar(&c.AccountDID, "account-did", envOr(env, "COMMONSID_ACCOUNT_DID", "key"), "DID method of new accounts: key (did:key) or webvh (did:webvh, served by this cloud; needs an issuer on a DNS name) (env COMMONSID_ACCOUNT_DID)")
}

// serveFlags registers the flags of `serve`.
func (c *Config) serveFlags(fs *flag.FlagSet, env func(string) string) {
	c.serving = true
	fs.BoolVar(&c.ChangeIssuer, "change-issuer", false, "rename the cloud to --issuer although accounts, peers or live tokens depend on the recorded issuer (they break: see the error without it)")
	fs.StringVar(&c.Addr, "addr", envOr(env, "COMMONSID_ADDR", defaultAddr), "listen address host:port (env COMMONSID_ADDR)")
	fs.StringVar(&c.WebDir, "web-dir", env("COMMONSID_WEB_DIR"), "serve templates and static files from this web/ folder instead of the embedded copy")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long to drain in-flight requests on SIGINT/SIGTERM")
	fs.StringVar(&c.Registration, "registration", envOr(env, "COMMONSID_REGISTRATION", "open"), "dynamic client registration: open, token (COMMONSID_REGISTRATION_TOKEN required) or closed")
	c.RegistrationToken = env("COMMONSID_REGISTRATION_TOKEN")
	fs.BoolVar(&c.Demo, "demo", false, "also start a sample service (a real OpenID Connect client) on the next port")
	fs.StringVar(&c.RateLimit, "rate-limit", envOr(env, "COMMONSID_RATE_LIMIT", "on"), "rate limits on login, sign-up, token and registration: on, off, or a factor such as 2.5")
	fs.DurationVar(&c.CodeTTL, "code-ttl", envDuration(env, "COMMONSID_CODE_TTL", 60*time.Second), "authorization code lifetime")
	fs.DurationVar(&c.AccessTTL, "access-ttl", envDuration(env, "COMMONSID_ACCESS_TTL", 15*time.Minute), "access token lifetime")
	fs.DurationVar(&c.RefreshTTL, "refresh-ttl", envDuration(env, "COMMONSID_REFRESH_TTL", 30*24*time.Hour), "refresh token lifetime")
}

func envDuration(env func(string) string, key string, def time.Duration) time.Duration {
	if v := env(key); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// DSN is the database to use.
func (c *Config) DSN() string {
	if c.DB != "" {
		return c.DB
	}
	return "sqlite:" + filepath.Join(c.DataDir, dbFile)
}

// needsDataDir reports whether the data folder is used: for the SQLite file
// inside it or for the key-encryption key file.
func (c *Config) needsDataDir() bool {
	return c.Secret == "" || c.DB == ""
}

// Validate reports every problem at once.
func (c *Config) Validate(serving bool) error {
	var errs []error
	if serving {
		if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("--addr %q must be host:port", c.Addr))
		}
		if c.ShutdownTimeout <= 0 {
			errs = append(errs, errors.New("--shutdown-timeout must be positive"))
		}
		switch c.Registration {
		case "open", "closed":
		case "token":
			if len(c.RegistrationToken) < 32 {
				errs = append(errs, errors.New("--registration token needs COMMONSID_REGISTRATION_TOKEN of at least 32 characters"))
			}
		default:
			errs = append(errs, fmt.Errorf("--registration %q: use open, token or closed", c.Registration))
		}
		for name, d := range map[string]time.Duration{"--code-ttl": c.CodeTTL, "--access-ttl": c.AccessTTL, "--refresh-ttl": c.RefreshTTL} {
			if d <= 0 {
				errs = append(errs, fmt.Errorf("%s must be positive", name))
			}
		}
		if _, err := c.Limits(); err != nil {
			errs = append(errs, err)
		}
		if c.CodeTTL > 10*time.Minute {
			errs = append(errs, errors.New("--code-ttl must be at most 10m (RFC 6749 §4.1.2)"))
		}
	}
	if err := validateIssuer(c.Issuer); err != nil {
		errs = append(errs, err)
	}
	if err := validateAccountDID(c.AccountDID, c.Issuer); err != nil && validateIssuer(c.Issuer) == nil {
		errs = append(errs, err)
	}
	if c.DataDir == "" && c.needsDataDir() {
		errs = append(errs, errors.New("--data must name a folder"))
	}
	if _, _, err := sqlstore.ParseDSN(c.DSN()); err != nil {
		errs = append(errs, fmt.Errorf("--db: %w", err))
	}
	switch c.OutboundLoopback {
	case "", "auto", "deny":
	default:
		errs = append(errs, fmt.Errorf("COMMONSID_OUTBOUND_LOOPBACK %q: use auto or deny", c.OutboundLoopback))
	}
	if err := oidc.ValidateResources(c.resources(), oidc.MaxCloudResources); err != nil {
		errs = append(errs, fmt.Errorf("COMMONSID_RESOURCES: %w", err))
	}
	if _, err := safehttp.ParseNets(c.OutboundAllow); err != nil {
		errs = append(errs, fmt.Errorf("COMMONSID_OUTBOUND_ALLOW: %w", err))
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("--log-format %q: use auto, text or json", c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level %q: use debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

func validateIssuer(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("--issuer %q must be an absolute URL such as https://id.example.org", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("--issuer %q must not have a query, fragment or user info", s)
	}
	if strings.HasSuffix(u.Path, "/") {
		return fmt.Errorf("--issuer %q must not end with '/'", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("--issuer %q must use https (plain http is allowed only for localhost)", s)
		}
	default:
		return fmt.Errorf("--issuer %q must use https", s)
	}
	if _, err := did.WebDID(s); err != nil {
		return fmt.Errorf("--issuer: %w", err)
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// String prints the configuration with the secret redacted.
func (c *Config) String() string {
	secret := "(data folder kek file)"
	if c.Secret != "" {
		secret = "(set, redacted)"
	}
	return fmt.Sprintf("addr=%s issuer=%s data=%s db=%s secret=%s log-format=%s",
		c.Addr, c.Issuer, c.DataDir, redact(c.DSN()), secret, c.LogFormat)
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Limits returns the rate limits the configuration asks for.
func (c *Config) Limits() (*limits.Limits, error) {
	switch c.RateLimit {
	case "", "on":
		return &limits.Limits{Scale: 1}, nil
	case "off":
		return &limits.Limits{}, nil
	}
	f, err := strconv.ParseFloat(c.RateLimit, 64)
	if err != nil || f <= 0 {
		return nil, fmt.Errorf("--rate-limit %q: use on, off or a positive factor", c.RateLimit)
	}
	return &limits.Limits{Scale: f}, nil
}

// resources is COMMONSID_RESOURCES as a list.
func (c *Config) resources() []string {
	var out []string
	for _, r := range strings.Split(c.Resources, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}
