package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/demo"
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/server"
	"github.com/onecommons/commonsid/store/sqlstore"
	"github.com/onecommons/commonsid/terms"
	"github.com/onecommons/commonsid/web"
)

func runServe(ctx context.Context, c *cli, args []string) error {
	cfg := &Config{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.storageFlags(fs, c.env)
	cfg.serveFlags(fs, c.env)
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if err := cfg.Validate(true); err != nil {
		return usagef("%v", err)
	}
	log := newLogger(cfg, c.stderr)
	start := time.Now()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tuneMemory(ctx)

	tmpl, err := web.ParseTemplates(cfg.WebDir)
	if err != nil {
		return err
	}
	cl, err := openCloud(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer cl.Close()
	if created, err := cl.keys.Ensure(ctx, keys.DefaultAlg); err != nil {
		return err
	} else if created {
		log.Info("created the cloud signing key", "alg", keys.DefaultAlg)
	}
	if _, err := startFeedEpoch(ctx, cl); err != nil {
		return err
	}
	if on, err := cl.db.Autovacuum(ctx); err == nil && !on {
		log.Warn("PostgreSQL's autovacuum is off: expired tokens are purged, but the space they took is never reused, so the token tables grow on disk without end; turn it on, or run VACUUM regularly (docs/operations.md)")
	}
	cloudDID, _ := did.WebDID(cfg.Issuer)
	secret, err := cl.globalSecret(ctx)
	if err != nil {
		return err
	}
	lim, _ := cfg.Limits()
	// The failure budgets of sign-in live in the database: every replica
	// on it shares them.
	lim.Failures = cl.db
	trusted, _ := httpx.ParseTrustedProxies(cfg.TrustedProxies) // checked by Validate
	sender, err := openMail(cfg, log)
	if err != nil {
		return err
	}
	sessions := &identity.Sessions{Store: cl.db, Accounts: cl.db, Now: time.Now}
	// Passkeys: the relying party is the issuer's host, its origin the issuer.
	webAuthn, err := web.NewWebAuthn(cfg.Issuer)
	if err != nil {
		log.Info("passkeys are off", "reason", err.Error())
	}
	pages := &web.Handler{Accounts: cl.accounts, Sessions: sessions, Privacy: cl.db, Templates: tmpl, Log: log,
		Cloud: cloudDID, WebDir: cfg.WebDir, SecureCookies: strings.HasPrefix(cfg.Issuer, "https://"), Now: time.Now, Limits: lim,
		PrivacySvc: &privacy.Service{Store: cl.db, Grants: cl.db, Now: time.Now},
		Services:   func(ctx context.Context, id string) (*web.ServiceInfo, error) { return describeService(ctx, cl, id) },
		WebAuthn:   webAuthn, Passkeys: cl.db, Ceremonies: cl.db, Portable: cl.portable(), Events: cl.db}
	pages.DeviceKey = deviceKey(secret)
	pages.Access = cl.access() // the dashboard's contribution level (access.go)
	pages.OnLockout = lockoutMailer(sender, cfg.Issuer, log)
	// Verification and password-reset links (web/account_links.go).
	pages.Mail, pages.Issuer, pages.ResetPath = sender, cfg.Issuer, web.ForgotPath
	fed := cl.federation()
	if n, err := upgradeReplicaSecrets(ctx, cl, log); err != nil {
		return err
	} else if n > 0 {
		log.Info("replicas keep their subs and no longer hold a pairwise secret", "replicas", n)
	}
	fed.StartSession, fed.ErrorPage = pages.StartSession, pages.ErrorPage
	fed.OnMovedAway = cl.movedAway
	pages.MemberWitnesses, pages.CollectWitness = fed.MemberWitnesses, fed.CollectWitness
	pages.LatestDIDLog = func(ctx context.Context, scid string) ([]byte, []byte, error) {
		c, err := fed.LatestDIDLog(ctx, scid)
		if err != nil {
			return nil, nil, err
		}
		return c.Log, c.Witness, nil
	}
	pages.HomeClouds = func(ctx context.Context) ([]web.HomeCloud, error) {
		peers, err := cl.db.ListPeers(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]web.HomeCloud, 0, len(peers))
		for _, p := range peers {
			u, _ := url.Parse(p.Issuer)
			out = append(out, web.HomeCloud{Issuer: p.Issuer, Host: u.Host})
		}
		return out, nil
	}
	provider, err := oidc.New(oidc.Config{
		Issuer: cfg.Issuer, CodeLifespan: cfg.CodeTTL, AccessLifespan: cfg.AccessTTL, RefreshLifespan: cfg.RefreshTTL,
		Registration: cfg.Registration, RegistrationToken: cfg.RegistrationToken, GlobalSecret: secret, ServiceTerms: terms.Mode(cfg.ServiceTerms),
		SessionCookie: web.SessionCookieName(strings.HasPrefix(cfg.Issuer, "https://")), Limits: lim, Outbound: cfg.Outbound(log).Client,
		Resources: cfg.resources(),
	}, &oidc.Provider{Store: cl.db, Keys: cl.keys, Accounts: cl.accounts, Sessions: sessions, Privacy: cl.db, Pages: pages, Log: log,
		RemoteService:        cl.remoteService,
		RPResolver:           newRPResolver(cfg, cl.db, cfg.Outbound(log).HTTPClient()), // automatic registration (autoreg.go)
		ReplicaSubjects:      replicaSubjects(fed),
		Access:               cl.access().Current, // access.go
		RevocationsAnnounced: cl.db.Dialect() == sqlstore.Postgres,
		PeerIntrospect: func(ctx context.Context, token string) (map[string]any, bool, error) {
			info, err := fed.IntrospectPeerToken(ctx, token)
			if errors.Is(err, federation.ErrNotPeerToken) {
				return nil, false, nil
			}
			if err != nil {
				return nil, true, err
			}
			if !info.Active {
				return map[string]any{"active": false}, true, nil
			}
			return info.Claims, true, nil
		},
		Discovery: map[string]any{
			"federation_events_endpoint":   cfg.Issuer + "/federation/v1/events",
			"federation_stream_endpoint":   cfg.Issuer + "/federation/v1/stream",
			"federation_members_endpoint":  cfg.Issuer + "/federation/v1/members",
			"federation_keys_endpoint":     cfg.Issuer + federation.KeysPath,
			"federation_subjects_endpoint": cfg.Issuer + federation.SubjectsPath,
			"federation_witness":           fed.WitnessService(),
			"federation_dids_endpoint":     cfg.Issuer + federation.DIDsPath,
		},
	})
	if err != nil {
		return err
	}
	cl.db.OnTokensRevoked(provider.TokensRevoked)
	cl.db.OnEvents(fed.EventsAppended)
	cl.db.OnEvents(provider.EventsAppended)
	fed.ActiveKey = provider.ActiveKey
	fed.ServiceOf = provider.ReturnToClient
	pages.PageInfo = func(ctx context.Context, returnTo string) web.PageInfo {
		name, locales := provider.PageInfo(ctx, returnTo)
		return web.PageInfo{Service: name, UILocales: locales}
	}
	if bc := provider.Backchannel(); bc != nil {
		pages.EndingSignIns = bc.Ending
	}
	go cl.db.ListenTokens(ctx, log)
	// OpenID Federation: the entity configuration, and the commons
	// refresh (commons.go).
	oidfedTTL, oidfedRefresh := commonsTimes(c.env)
	// Request traces to the OpenTelemetry collector, when one is
	// configured (tracing.go); the spans left are sent at exit.
	tracer, err := startTracing(cfg, log)
	if err != nil {
		return err
	}
	defer stopTracing(tracer, log)
	srv := &server.Server{
		Issuer: cfg.Issuer, DB: cl.db, Keys: cl.keys, Log: log,
		Areas: []server.Mounter{pages, provider, fed, cl.noticeHandler(), cloudEntity(cl, provider.DiscoveryDocument, oidfedTTL)},
		// The pool statistics of the database: go_sql_* with db_name="commonsid".
		Collectors:      append(cfg.outboundCollectors(log), collectors.NewDBStatsCollector(cl.db.SQL(), "commonsid")),
		TrustedProxies:  trusted,
		NoPublicMetrics: !cfg.PublicMetrics,
		Trace:           traceMiddleware(tracer),
	}
	h, err := srv.Handler()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    server.MaxHeaderBytes,
	}
	hs.RegisterOnShutdown(fed.Shutdown)
	log.Info("serving", "addr", ln.Addr().String(), "issuer", cfg.Issuer, "did", cloudDID,
		"db", cl.db.Dialect().String(), "startup", time.Since(start).Round(time.Millisecond).String())

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if a := c.env("COMMONSID_PPROF_ADDR"); a != "" {
		// Profiling on its own listener, never on the public one.
		pl, err := net.Listen("tcp", a)
		if err != nil {
			hs.Close()
			return fmt.Errorf("COMMONSID_PPROF_ADDR: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		ps := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go ps.Serve(pl)
		defer ps.Close()
		log.Info("profiling", "addr", pl.Addr().String())
	}
	// The admin API, /metrics and pprof on their own listener (admin_serve.go).
	adminSrv, err := startAdmin(cl, cfg, fed, provider, srv.Registry, log)
	if err != nil {
		hs.Close()
		return err
	}
	if adminSrv != nil {
		defer adminSrv.Close()
	}
	if cfg.Demo {
		ds, err := startDemo(ctx, cl, cfg, ln.Addr().(*net.TCPAddr), log)
		if err != nil {
			hs.Close()
			return err
		}
		defer ds.Close()
	}
	// The background workers end with serve: they are stopped and waited
	// for (a little while) before it returns, so none logs or writes after.
	bg, stopBG := context.WithCancel(ctx)
	var workers sync.WaitGroup
	defer func() {
		stopBG()
		done := make(chan struct{})
		go func() { workers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			log.Warn("background workers still running at exit")
		}
	}()
	workers.Go(func() { purgeLoop(bg, cl, log) })
	// Logout tokens to services; COMMONSID_BACKCHANNEL_RETRY is the wait
	// after a first failed delivery (the next is four times as long).
	workers.Go(func() {
		provider.RunBackchannel(bg, envDuration(c.env, "COMMONSID_BACKCHANNEL_RETRY", oidc.DefaultBackchannelRetry))
	})
	workers.Go(func() { fed.Run(bg) })
	// The witnesses of the did:webvh logs homed here (didwitness.go).
	workers.Go(func() {
		runDIDWitness(bg, cl, fed, envDuration(c.env, "COMMONSID_DID_WITNESS_INTERVAL", DefaultDIDWitnessInterval))
	})
	workers.Go(func() { markFeed(bg, cl) })
	workers.Go(func() { runCommonsLoop(bg, cl, fed, oidfedRefresh) })
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stop() // a second signal kills at once
	log.Info("shutting down: draining in-flight requests", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if adminSrv != nil {
		// Served while the public listener drained; what is left (a
		// profile being taken) is cut at the same deadline.
		adminSrv.Shutdown(sctx)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// purgeLoop removes expired codes, tokens, challenges, sessions and the
// other expiring rows every minute (sweepExpired: what anonymous requests
// write must not pile up between sweeps; the deletes are batched, paused
// while a backlog lasts, and cheap when there is nothing to do), and prunes
// activity and tombstones every ten minutes. Several replicas may run it:
// on PostgreSQL one sweeps at a time, and the deletes are idempotent.
func purgeLoop(ctx context.Context, cl *cloud, log *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	expired := time.NewTicker(time.Minute)
	defer expired.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			purge(ctx, cl, log, time.Now())
		case <-expired.C:
			sweepExpired(ctx, cl.db, log, time.Now())
		}
	}
}

// startDemo runs the sample service on the port after the provider's,
// registered as a client (once; its credentials are kept sealed).
func startDemo(ctx context.Context, cl *cloud, cfg *Config, provider *net.TCPAddr, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(provider.IP.String(), strconv.Itoa(provider.Port+1)))
	if err != nil {
		return nil, fmt.Errorf("--demo: listen on the next port: %w", err)
	}
	u, _ := url.Parse(cfg.Issuer)
	base := "http://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	redirect := base + "/callback"
	creds, err := demoClient(ctx, cl, redirect)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("--demo: register the sample service: %w", err)
	}
	app := &demo.App{Issuer: cfg.Issuer, ClientID: creds.ID, ClientSecret: creds.Secret, RedirectURL: redirect, Log: log}
	srv := &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("demo service running: open it and click Log in", "url", base)
	return srv, nil
}

type demoCreds struct {
	ID       string `json:"client_id"`
	Secret   string `json:"client_secret"`
	Redirect string `json:"redirect_uri"`
}

var demoAAD = []byte("commonsid/demo-client")

func demoClient(ctx context.Context, cl *cloud, redirect string) (*demoCreds, error) {
	if sealed, err := cl.db.GetMeta(ctx, "demo_client"); err == nil {
		if raw, err := cl.kek.Open(sealed, demoAAD); err == nil {
			var c demoCreds
			if json.Unmarshal(raw, &c) == nil && c.Redirect == redirect {
				if _, err := cl.db.GetClient(ctx, c.ID); err == nil {
					return &c, nil
				}
			}
		}
	}
	g := &oidc.Registrar{Store: cl.db, Issuer: cl.cfg.Issuer, Outbound: cl.cfg.Outbound(cl.log).Client, Now: time.Now}
	reg, err := g.Register(ctx, &oidc.RegisterRequest{Metadata: oidc.Metadata{
		ClientName: "Demo service", RedirectURIs: []string{redirect}, GrantTypes: []string{"authorization_code"},
		SourceCodeURI: "https://github.com/onecommons/commonsid/tree/main/internal/demo",
	}})
	if err != nil {
		return nil, err
	}
	c := &demoCreds{ID: reg.ClientID, Secret: reg.ClientSecret, Redirect: redirect}
	raw, _ := json.Marshal(c)
	sealed, err := cl.kek.Seal(raw, demoAAD)
	if err != nil {
		return nil, err
	}
	if err := cl.db.PutMeta(ctx, "demo_client", sealed); err != nil {
		return nil, err
	}
	return c, nil
}

// TombstoneLifetime is how long a deleted account's DID and handle stay
// reserved.
const TombstoneLifetime = 30 * 24 * time.Hour

// purge removes what has expired: codes, tokens, challenges, sessions,
// activity past each person's retention, and old tombstones.
func purge(ctx context.Context, cl *cloud, log *slog.Logger, now time.Time) {
	n := sweepExpired(ctx, cl.db, log, now).Total()
	a, err := cl.db.PruneActivity(ctx, now)
	if err != nil {
		log.Warn("prune activity", "err", err)
	}
	t, err := cl.db.PurgeTombstones(ctx, now.Add(-TombstoneLifetime))
	if err != nil {
		log.Warn("purge tombstones", "err", err)
	}
	if n+a+t > 0 {
		log.Info("purged", "expired", n, "activity", a, "tombstones", t)
	}
}

// describeService is the dashboard's view of a client.
func describeService(ctx context.Context, cl *cloud, id string) (*web.ServiceInfo, error) {
	c, err := oidc.LookupClient(ctx, cl.db, id)
	if err != nil {
		return nil, err
	}
	si := &web.ServiceInfo{ClientID: c.ClientID, Name: c.DisplayName(), LogoURI: c.LogoURI, ClientURI: c.ClientURI,
		SourceCodeURI: c.SourceCodeURI, PolicyURI: c.PolicyURI, ForkedFrom: c.ForkedFrom,
		OutsideTerms: c.OutsideTerms, Commitments: c.CommonsCommitments, TermsHash: c.TermsHash()}
	if c.FamilyRoot != "" {
		if p, err := oidc.LookupClient(ctx, cl.db, c.ForkedFrom); err == nil {
			si.ParentName = p.DisplayName()
		}
	}
	return si, nil
}
