package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/onecommons/commonsid/admin"
	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/server"
)

// defaultAdminAddr is where the admin API listens unless told otherwise:
// loopback only. When --addr has port 0 (an ephemeral port), the default
// admin address has port 0 too.
const defaultAdminAddr = "127.0.0.1:8090"

// adminFlags registers the admin listener's settings (serveFlags).
func (c *Config) adminFlags(fs *flag.FlagSet, env func(string) string) {
	c.stringVar(fs, env, &c.AdminAddr, "admin-addr", "COMMONSID_ADMIN_ADDR", "",
		"admin API, /metrics and /debug/pprof listener host:port, or off (default "+defaultAdminAddr+"; a non-loopback address needs COMMONSID_ADMIN_TOKEN)")
	c.AdminToken = env("COMMONSID_ADMIN_TOKEN")
	if f := env("COMMONSID_ADMIN_TOKEN_FILE"); f != "" {
		if c.AdminToken != "" {
			c.envProblem("", "COMMONSID_ADMIN_TOKEN_FILE", f, errors.New("set COMMONSID_ADMIN_TOKEN or COMMONSID_ADMIN_TOKEN_FILE, not both"))
		} else if t, err := readTokenFile(f); err != nil {
			c.envProblem("", "COMMONSID_ADMIN_TOKEN_FILE", f, err)
		} else {
			c.AdminToken = t
		}
	}
	c.boolVar(fs, env, &c.PublicMetrics, "public-metrics", "COMMONSID_PUBLIC_METRICS", false,
		"also serve /metrics on the public listener (off by default: the admin listener always serves it)")
}

// readTokenFile reads a token from the first line of a file (at most 4 KiB).
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, _ := f.Read(buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return "", errors.New("the file holds no token")
	}
	return line, nil
}

// adminListenAddr is the admin listener's address ("" when off) and whether
// it is the default rather than given.
func (c *Config) adminListenAddr() (string, bool) {
	switch a := strings.TrimSpace(c.AdminAddr); {
	case strings.EqualFold(a, "off"):
		return "", false
	case a != "":
		return a, false
	}
	if _, port, err := net.SplitHostPort(c.Addr); err == nil && port == "0" {
		return "127.0.0.1:0", true
	}
	return defaultAdminAddr, true
}

// validateAdmin checks the admin settings (Validate, when serving).
func (c *Config) validateAdmin() []error {
	var errs []error
	n := c.settingName("admin-addr")
	if c.AdminToken != "" {
		if err := admin.CheckToken(c.AdminToken); err != nil {
			errs = append(errs, fmt.Errorf("COMMONSID_ADMIN_TOKEN: %w", err))
		}
	}
	addr, _ := c.adminListenAddr()
	if addr == "" {
		return errs
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return append(errs, fmt.Errorf("%s %q must be host:port or off", n, addr))
	}
	if !isLoopbackHost(host) && c.AdminToken == "" {
		errs = append(errs, fmt.Errorf("%s %q is not a loopback address: set COMMONSID_ADMIN_TOKEN (or COMMONSID_ADMIN_TOKEN_FILE) to expose the admin API there, or listen on 127.0.0.1", n, addr))
	}
	return errs
}

// startAdmin starts the admin listener beside the public one; it returns
// nil when it is off. A default address that cannot be bound (another
// cloud on the machine has it) is logged and skipped; a given one is an
// error.
func startAdmin(cl *cloud, cfg *Config, fed *federation.Federation, provider *oidc.Provider, reg *prometheus.Registry, log *slog.Logger) (*http.Server, error) {
	addr, isDefault := cfg.adminListenAddr()
	if addr == "" {
		log.Info("admin API is off")
		return nil, nil
	}
	api, err := admin.New(admin.Config{
		Token: cfg.AdminToken,
		ClientTokens: func(ctx context.Context, tok string) (string, []string, error) {
			id, scopes, err := provider.VerifyClientToken(ctx, tok)
			if errors.Is(err, oidc.ErrInvalidAccessToken) {
				return "", nil, admin.ErrInvalidToken
			}
			return id, scopes, err
		},
		Metrics: server.MetricsHandler(reg),
		Backend: &adminBackend{cl: cl, fed: fed},
		Log:     log,
		Realm:   cfg.Issuer + "/admin",
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if isDefault {
			log.Warn("admin API not started: its default address is taken; set --admin-addr (COMMONSID_ADMIN_ADDR) or off", "addr", addr, "err", err)
			return nil, nil
		}
		return nil, fmt.Errorf("%s: listen on %s: %w", cfg.settingName("admin-addr"), addr, err)
	}
	hs := &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// No WriteTimeout: /debug/pprof/profile and trace stream for as
		// long as asked (?seconds=).
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: server.MaxHeaderBytes,
	}
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	if !isLoopbackHost(host) {
		log.Warn("admin API on a non-loopback address: only the admin token and admin-scoped client tokens are accepted; the listener speaks plain HTTP, put TLS in front of it", "admin_addr", ln.Addr().String())
	}
	log.Info("admin API", "admin_addr", ln.Addr().String(), "admin_token", api.HasToken(), "public_metrics", cfg.PublicMetrics)
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin API stopped", "err", err)
		}
	}()
	return hs, nil
}
