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
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/internal/safehttp"
	"github.com/onecommons/commonsid/mail"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/store/sqlstore"
	"github.com/onecommons/commonsid/terms"
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
	ServiceTerms      string // the commons' terms for services: open or commons (package terms)
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
	// OIDFedTrustAnchors lists trust anchors (entity identifiers,
	// comma-separated) whose relying parties may register automatically,
	// besides the anchors joined with commons join (autoreg.go).
	OIDFedTrustAnchors string
	// AccountDID is the DID method of new accounts: key or webvh
	// (account_did.go).
	AccountDID string
	// Resources lists resource servers (RFC 8707 resource URIs,
	// comma-separated) every client may ask access tokens for.
	Resources string

	// TrustedProxies lists the reverse proxies (CIDR, comma-separated)
	// whose Forwarded / X-Forwarded-For headers name the client.
	TrustedProxies string
	// SMTP is the mail server's URL (mail.ParseURL); empty writes mail to
	// the data folder's outbox.
	SMTP string

	// ChangeIssuer lets `serve` rename a cloud whose recorded issuer
	// others already depend on (see resolveIssuer).
	ChangeIssuer bool

	// issuerGiven is set when --issuer or COMMONSID_ISSUER names the
	// issuer; otherwise the issuer recorded in the database is used.
	issuerGiven bool
	// serving is set for `serve`, which records the issuer.
	serving bool
	// exclusive is set for `keys rotate-kek`: it takes the cloud's lock
	// alone (sqlstore.DB.LockCloud), refusing while anything else runs.
	exclusive bool
	// mustExist is set for read-only commands: a data folder or database
	// that holds no cloud is reported, not created.
	mustExist bool

	// BackchannelRetry is COMMONSID_BACKCHANNEL_RETRY (0: the default).
	BackchannelRetry time.Duration
	// PprofAddr is COMMONSID_PPROF_ADDR: host:port of the profiling
	// listener, empty for none.
	PprofAddr string
	// AdminAddr is --admin-addr (COMMONSID_ADMIN_ADDR): host:port of the
	// admin API listener (admin_serve.go), "off" for none.
	AdminAddr string
	// AdminToken is COMMONSID_ADMIN_TOKEN, or the first line of the file
	// COMMONSID_ADMIN_TOKEN_FILE names.
	AdminToken string
	// PublicMetrics is COMMONSID_PUBLIC_METRICS: whether the public
	// listener serves /metrics too (off by default; the admin listener
	// always does).
	PublicMetrics bool
	// OTLPEndpoint is --otlp-endpoint (COMMONSID_OTLP_ENDPOINT): the
	// OpenTelemetry collector of request traces (tracing.go); tracingEnv
	// reads the standard OTEL_* variables.
	OTLPEndpoint string
	tracingEnv   func(string) string

	// AccessLevels is COMMONSID_ACCESS_LEVELS and ContributionSecrets
	// COMMONSID_CONTRIBUTION_SECRETS (access.go): the contribution levels
	// beyond basic, and the secrets shared with payment services.
	AccessLevels        string
	ContributionSecrets string

	// fromEnv maps a flag to the COMMONSID_* variable its value came
	// from; envErrs are the variables that do not parse; flagsGiven are
	// the flags on the command line.
	fromEnv    map[string]string
	envErrs    []envProblem
	flagsGiven map[string]bool

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

// Every setting has a flag, a COMMONSID_* variable or both. A value that
// does not parse is refused, never replaced by the default: a variable's
// problem is kept until Validate reports it with the variable's name, unless
// the flag that overrides the variable is given.

// envProblem is a COMMONSID_* value that does not parse; flag is the flag
// that overrides it ("" when none does).
type envProblem struct {
	flag string
	err  error
}

// settingName is how Validate names a setting: its flag, or the variable
// when the value came from there.
func (c *Config) settingName(flagName string) string {
	if e := c.fromEnv[flagName]; e != "" {
		return e
	}
	return "--" + flagName
}

func (c *Config) noteEnv(flagName, envName string) {
	if c.fromEnv == nil {
		c.fromEnv = map[string]string{}
	}
	c.fromEnv[flagName] = envName
}

func (c *Config) envProblem(flagName, envName, v string, err error) {
	c.envErrs = append(c.envErrs, envProblem{flag: flagName, err: fmt.Errorf("%s=%q: %v", envName, v, err)})
}

// flagGiven records that flagName was given on the command line: its value
// replaces the variable's, good or bad.
func (c *Config) flagGiven(flagName string) {
	delete(c.fromEnv, flagName)
	if c.flagsGiven == nil {
		c.flagsGiven = map[string]bool{}
	}
	c.flagsGiven[flagName] = true
}

// trackedValue wraps a flag's value to record that the flag was given.
type trackedValue struct {
	flag.Value
	c    *Config
	name string
}

func (v *trackedValue) String() string {
	if v == nil || v.Value == nil {
		return ""
	}
	return v.Value.String()
}

func (v *trackedValue) Set(s string) error {
	if err := v.Value.Set(s); err != nil {
		return err
	}
	v.c.flagGiven(v.name)
	return nil
}

// trackedBool is trackedValue for a boolean flag (given alone, no value).
type trackedBool struct{ trackedValue }

func (*trackedBool) IsBoolFlag() bool { return true }

type stringValue string

func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
func (s *stringValue) String() string     { return string(*s) }

// durationValue is a time.Duration that must carry its unit: "15" is an
// error, not fifteen nanoseconds or a default.
type durationValue time.Duration

func (d *durationValue) Set(v string) error {
	p, err := parseDuration(v)
	if err != nil {
		return err
	}
	*d = durationValue(p)
	return nil
}

func (d *durationValue) String() string { return time.Duration(*d).String() }

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "time: ")
		return 0, fmt.Errorf("%s: use a number with a unit (ms, s, m or h), such as 90s, 15m or 720h", msg)
	}
	return d, nil
}

// boolValue accepts true/false, 1/0, yes/no and on/off; anything else is an
// error.
type boolValue bool

func (b *boolValue) Set(v string) error {
	p, err := parseBool(v)
	if err != nil {
		return err
	}
	*b = boolValue(p)
	return nil
}

func (b *boolValue) String() string { return strconv.FormatBool(bool(*b)) }

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "t", "true", "yes", "on":
		return true, nil
	case "0", "f", "false", "no", "off":
		return false, nil
	}
	return false, errors.New("not a boolean: use true or false")
}

// stringVar registers a string flag whose default comes from envName (when
// set) or def.
func (c *Config) stringVar(fs *flag.FlagSet, env func(string) string, p *string, name, envName, def, usage string) {
	*p = def
	if envName != "" {
		if v := env(envName); v != "" {
			*p = v
			c.noteEnv(name, envName)
		}
		usage += " (env " + envName + ")"
	}
	fs.Var(&trackedValue{(*stringValue)(p), c, name}, name, usage)
}

// durationVar is stringVar for a duration: a variable that is not one is
// reported by Validate.
func (c *Config) durationVar(fs *flag.FlagSet, env func(string) string, p *time.Duration, name, envName string, def time.Duration, usage string) {
	*p = def
	if envName != "" {
		if v := env(envName); v != "" {
			if d, err := parseDuration(v); err != nil {
				c.envProblem(name, envName, v, err)
			} else {
				*p = d
				c.noteEnv(name, envName)
			}
		}
		usage += " (env " + envName + ")"
	}
	fs.Var(&trackedValue{(*durationValue)(p), c, name}, name, usage)
}

// boolVar is stringVar for a boolean.
func (c *Config) boolVar(fs *flag.FlagSet, env func(string) string, p *bool, name, envName string, def bool, usage string) {
	*p = def
	if envName != "" {
		if v := env(envName); v != "" {
			if b, err := parseBool(v); err != nil {
				c.envProblem(name, envName, v, err)
			} else {
				*p = b
				c.noteEnv(name, envName)
			}
		}
		usage += " (env " + envName + ")"
	}
	fs.Var(&trackedBool{trackedValue{(*boolValue)(p), c, name}}, name, usage)
}

// envOnlyDuration reads a duration that has a variable and no flag.
func (c *Config) envOnlyDuration(env func(string) string, envName string, def time.Duration) time.Duration {
	v := env(envName)
	if v == "" {
		return def
	}
	d, err := parseDuration(v)
	if err == nil && d <= 0 {
		err = errors.New("must be positive")
	}
	if err != nil {
		c.envProblem("", envName, v, err)
		return def
	}
	return d
}

// GlobalFlags are the flags of storageFlags, which every command that
// opens the cloud takes: they may also come before the command
// (`commonsid --data DIR serve`). Each takes a value.
var GlobalFlags = []string{"data", "db", "issuer", "log-format", "log-level", "account-did"}

// storageFlags registers the flags that every command shares.
func (c *Config) storageFlags(fs *flag.FlagSet, env func(string) string) {
	c.stringVar(fs, env, &c.DataDir, "data", "COMMONSID_DATA", defaultData, "data folder: SQLite database and key-encryption key")
	c.stringVar(fs, env, &c.DB, "db", "COMMONSID_DB", "", "database: sqlite:PATH or postgres://… (default sqlite:DATA/commonsid.db)")
	c.Issuer = defaultIssuer
	if v := env("COMMONSID_ISSUER"); v != "" {
		c.Issuer, c.issuerGiven = v, true
		c.noteEnv("issuer", "COMMONSID_ISSUER")
	}
	fs.Var(&trackedValue{issuerFlag{c}, c, "issuer"}, "issuer", "issuer URL of this cloud (env COMMONSID_ISSUER); default: the issuer serve recorded in the database, else "+defaultIssuer+". A different one than recorded is refused")
	c.stringVar(fs, env, &c.LogFormat, "log-format", "COMMONSID_LOG_FORMAT", "auto", "log format: auto (text on a terminal, else json), text or json")
	c.stringVar(fs, env, &c.LogLevel, "log-level", "COMMONSID_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	c.Secret = env("COMMONSID_SECRET")
	c.OutboundLoopback = envOr(env, "COMMONSID_OUTBOUND_LOOPBACK", "auto")
	c.OutboundAllow = env("COMMONSID_OUTBOUND_ALLOW")
	c.OIDFedTrustAnchors = env("COMMONSID_OIDFED_TRUST_ANCHORS")
	c.Resources = env("COMMONSID_RESOURCES")
	c.AccessLevels = env("COMMONSID_ACCESS_LEVELS")
	c.stringVar(fs, env, &c.AccountDID, "account-did", "COMMONSID_ACCOUNT_DID", "auto", "DID method of new accounts: auto (webvh when the issuer is known and its host is a DNS name, else key), webvh (did:webvh, served by this cloud and witnessed by its peers; needs an issuer on a DNS name) or key (did:key, never rotates)")
}

// serveFlags registers the flags of `serve`.
func (c *Config) serveFlags(fs *flag.FlagSet, env func(string) string) {
	c.serving = true
	c.boolVar(fs, env, &c.ChangeIssuer, "change-issuer", "", false, "rename the cloud to --issuer although accounts, peers or live tokens depend on the recorded issuer (they break: see the error without it)")
	c.stringVar(fs, env, &c.Addr, "addr", "COMMONSID_ADDR", defaultAddr, "listen address host:port")
	c.stringVar(fs, env, &c.WebDir, "web-dir", "COMMONSID_WEB_DIR", "", "serve templates and static files from this web/ folder instead of the embedded copy")
	c.durationVar(fs, env, &c.ShutdownTimeout, "shutdown-timeout", "COMMONSID_SHUTDOWN_TIMEOUT", 30*time.Second, "how long to drain in-flight requests on SIGINT/SIGTERM")
	c.stringVar(fs, env, &c.Registration, "registration", "COMMONSID_REGISTRATION", "open", "dynamic client registration: open, token (COMMONSID_REGISTRATION_TOKEN required) or closed")
	c.RegistrationToken = env("COMMONSID_REGISTRATION_TOKEN")
	c.stringVar(fs, env, &c.ServiceTerms, "service-terms", "COMMONSID_SERVICE_TERMS", "open", "the commons' terms for services: open (every service registers; those outside the terms are labelled) or commons (dynamic registration requires source_code_uri, policy_uri, tos_uri and commons_commitments; see docs/commons-terms.md)")
	c.boolVar(fs, env, &c.Demo, "demo", "", false, "also start a sample service (a real OpenID Connect client) on the next port")
	c.stringVar(fs, env, &c.RateLimit, "rate-limit", "COMMONSID_RATE_LIMIT", "on", "rate limits on login, sign-up, token and registration: on, off, or a factor such as 2.5")
	c.durationVar(fs, env, &c.CodeTTL, "code-ttl", "COMMONSID_CODE_TTL", 60*time.Second, "authorization code lifetime")
	c.durationVar(fs, env, &c.AccessTTL, "access-ttl", "COMMONSID_ACCESS_TTL", 15*time.Minute, "access token lifetime")
	c.durationVar(fs, env, &c.RefreshTTL, "refresh-ttl", "COMMONSID_REFRESH_TTL", 30*24*time.Hour, "refresh token lifetime")
	// Read by serve itself (envDuration): checked here so that a bad
	// value stops serve at start.
	c.BackchannelRetry = c.envOnlyDuration(env, "COMMONSID_BACKCHANNEL_RETRY", 0)
	c.envOnlyDuration(env, "COMMONSID_DID_WITNESS_INTERVAL", 0)
	c.envOnlyDuration(env, "COMMONSID_OIDFED_STATEMENT_TTL", 0) // commons.go
	c.envOnlyDuration(env, "COMMONSID_OIDFED_REFRESH", 0)
	c.PprofAddr = env("COMMONSID_PPROF_ADDR")
	c.stringVar(fs, env, &c.TrustedProxies, "trusted-proxies", "COMMONSID_TRUSTED_PROXIES", "", "reverse proxies (CIDR, comma-separated) whose Forwarded / X-Forwarded-For name the client address used by the per-IP limits and the activity log")
	c.stringVar(fs, env, &c.SMTP, "smtp", "COMMONSID_SMTP", "", "mail server, smtp://user:pass@host:587?from=id@example.org (STARTTLS) or smtps://…:465; empty: mail is written to the data folder's mail/ outbox")
	c.adminFlags(fs, env) // admin_serve.go
	c.ContributionSecrets = env("COMMONSID_CONTRIBUTION_SECRETS")
	c.tracingFlags(fs, env) // tracing.go
}

// envDuration reads a duration variable that serveFlags has already
// checked (a bad one stopped serve in Validate).
func envDuration(env func(string) string, key string, def time.Duration) time.Duration {
	if v := env(key); v != "" {
		if d, err := parseDuration(v); err == nil {
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

// Validate reports every problem at once, each with the flag or COMMONSID_*
// variable it came from.
func (c *Config) Validate(serving bool) error {
	var errs []error
	for _, p := range c.envErrs {
		if p.flag == "" || !c.flagsGiven[p.flag] {
			errs = append(errs, p.err)
		}
	}
	n := c.settingName
	if serving {
		if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("%s %q must be host:port", n("addr"), c.Addr))
		}
		if c.ShutdownTimeout <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", n("shutdown-timeout")))
		}
		switch c.Registration {
		case "open", "closed":
		case "token":
			if len(c.RegistrationToken) < 32 {
				errs = append(errs, fmt.Errorf("%s token needs COMMONSID_REGISTRATION_TOKEN of at least 32 characters", n("registration")))
			}
		default:
			errs = append(errs, fmt.Errorf("%s %q: use open, token or closed", n("registration"), c.Registration))
		}
		if _, err := terms.ParseMode(c.ServiceTerms); err != nil {
			errs = append(errs, fmt.Errorf("%s %v", n("service-terms"), err))
		}
		for _, f := range []struct {
			name string
			d    time.Duration
		}{{"code-ttl", c.CodeTTL}, {"access-ttl", c.AccessTTL}, {"refresh-ttl", c.RefreshTTL}} {
			if f.d <= 0 {
				errs = append(errs, fmt.Errorf("%s must be positive", n(f.name)))
			}
		}
		if _, err := c.Limits(); err != nil {
			errs = append(errs, err)
		}
		if _, err := httpx.ParseTrustedProxies(c.TrustedProxies); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", c.settingName("trusted-proxies"), err))
		}
		if c.SMTP != "" {
			if _, err := mail.ParseURL(c.SMTP); err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", c.settingName("smtp"), err))
			}
		}
		if c.CodeTTL > 10*time.Minute {
			errs = append(errs, fmt.Errorf("%s must be at most 10m (RFC 6749 §4.1.2)", n("code-ttl")))
		}
		errs = append(errs, c.validateAdmin()...)   // admin_serve.go
		errs = append(errs, c.validateSecrets()...) // access.go
		errs = append(errs, c.validateTracing()...) // tracing.go
		if c.PprofAddr != "" {
			if _, port, err := net.SplitHostPort(c.PprofAddr); err != nil || port == "" {
				errs = append(errs, fmt.Errorf("COMMONSID_PPROF_ADDR %q must be host:port", c.PprofAddr))
			}
		}
	}
	if err := validateIssuerNamed(n("issuer"), c.Issuer); err != nil {
		errs = append(errs, err)
	}
	if err := validateAccountDID(c.AccountDID, c.Issuer); err != nil && validateIssuer(c.Issuer) == nil {
		errs = append(errs, err)
	}
	if c.DataDir == "" && c.needsDataDir() {
		errs = append(errs, fmt.Errorf("%s must name a folder", n("data")))
	}
	if _, _, err := sqlstore.ParseDSN(c.DSN()); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", n("db"), err))
	}
	switch c.OutboundLoopback {
	case "", "auto", "deny":
	default:
		errs = append(errs, fmt.Errorf("COMMONSID_OUTBOUND_LOOPBACK %q: use auto or deny", c.OutboundLoopback))
	}
	errs = append(errs, c.validateLevels()...) // access.go
	if err := oidc.ValidateResources(c.resources(), oidc.MaxCloudResources); err != nil {
		errs = append(errs, fmt.Errorf("COMMONSID_RESOURCES: %w", err))
	}
	errs = append(errs, c.validateTrustAnchors()...) // autoreg.go
	if _, err := safehttp.ParseNets(c.OutboundAllow); err != nil {
		errs = append(errs, fmt.Errorf("COMMONSID_OUTBOUND_ALLOW: %w", err))
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("%s %q: use auto, text or json", n("log-format"), c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("%s %q: use debug, info, warn or error", n("log-level"), c.LogLevel))
	}
	return errors.Join(errs...)
}

func validateIssuer(s string) error { return validateIssuerNamed("--issuer", s) }

// validateIssuerNamed checks an issuer URL; name is the flag or variable
// that gave it.
func validateIssuerNamed(name, s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%s %q must be an absolute URL such as https://id.example.org", name, s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%s %q must not have a query, fragment or user info", name, s)
	}
	if strings.HasSuffix(u.Path, "/") {
		return fmt.Errorf("%s %q must not end with '/'", name, s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("%s %q must use https (plain http is allowed only for localhost)", name, s)
		}
	default:
		return fmt.Errorf("%s %q must use https", name, s)
	}
	if _, err := did.WebDID(s); err != nil {
		return fmt.Errorf("%s: %w", name, err)
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
		return nil, fmt.Errorf("%s %q: use on, off or a positive factor", c.settingName("rate-limit"), c.RateLimit)
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
