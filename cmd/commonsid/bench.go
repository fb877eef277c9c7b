package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/onecommons/commonsid/internal/loadtest"
)

// runBench is the load driver; see docs/benchmarks.md.
func runBench(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	baseURL := fs.String("url", loadtest.DefaultURL, "base URL of the running server; every request goes there")
	conc := fs.String("concurrency", "16,64", "comma-separated numbers of concurrent clients, one run per level")
	duration := fs.Duration("duration", loadtest.DefaultDuration, "measured time per scenario and level")
	warmup := fs.Duration("warmup", loadtest.DefaultWarmup, "unmeasured warm-up before each measurement")
	scen := fs.String("scenarios", "all", "comma-separated scenarios: "+strings.Join(loadtest.Scenarios(), ", ")+", or all")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of a table")
	timeout := fs.Duration("timeout", loadtest.DefaultTimeout, "limit on each HTTP request")
	metricsURL := fs.String("metrics-url", "", "where the server's memory is read: the admin listener's /metrics, such as http://127.0.0.1:8090/metrics (default: /metrics on --url, served only with COMMONSID_PUBLIC_METRICS=on)")
	metricsToken := fs.String("metrics-token", "", "bearer token for --metrics-url (default $COMMONSID_ADMIN_TOKEN)")
	regToken := fs.String("registration-token", "", "initial access token for client registration (default $COMMONSID_REGISTRATION_TOKEN)")
	pop := fs.String("populate", "", "instead of driving load, fill the database (--db or --database) with this many generated accounts (k and M allowed), with consents, sessions and tokens; a later run adds up to the new number")
	perAccount := fs.Int("tokens-per-account", 10, "with --populate: stored tokens (access and refresh) per account")
	expiredPc := fs.Int("expired-percent", 10, "with --populate: per cent of tokens and sessions already expired")
	force := fs.Bool("force", false, "with --populate: add to a database that holds accounts the generator did not make")
	cfg := &Config{}
	cfg.storageFlags(fs, c.env)
	fs.Var(&databaseAlias{cfg}, "database", "with --populate: the database, as --db")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (run 'commonsid bench -h')", fs.Arg(0))
	}
	if *pop != "" {
		return runPopulate(ctx, c, cfg, *pop, populateOptions{Tokens: *perAccount, ExpiredPc: *expiredPc, Force: *force, Progress: c.stderr})
	}
	lcfg := loadtest.Config{URL: *baseURL, Duration: *duration, Warmup: *warmup, Timeout: *timeout,
		RegistrationToken: *regToken, Progress: c.stderr, MetricsURL: *metricsURL, MetricsToken: *metricsToken}
	if lcfg.MetricsToken == "" && lcfg.MetricsURL != "" {
		lcfg.MetricsToken = c.env("COMMONSID_ADMIN_TOKEN")
	}
	if lcfg.RegistrationToken == "" {
		lcfg.RegistrationToken = c.env("COMMONSID_REGISTRATION_TOKEN")
	}
	var errs []error
	var err error
	if lcfg.Concurrency, err = loadtest.ParseConcurrency(*conc); err != nil {
		errs = append(errs, err)
	}
	if lcfg.Scenarios, err = loadtest.ParseScenarios(*scen); err != nil {
		errs = append(errs, err)
	}
	if *timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout %v: must be positive", *timeout))
	}
	if len(errs) == 0 {
		if err := lcfg.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return usagef("%v (run 'commonsid bench -h')", errors.Join(errs...))
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadtest.Run(ctx, lcfg)
	if err != nil {
		return err
	}
	if *asJSON {
		err = rep.WriteJSON(c.stdout)
	} else {
		err = rep.WriteTable(c.stdout)
	}
	switch {
	case err != nil:
		return err
	case rep.Interrupted:
		return errors.New("interrupted")
	case rep.Failed() > 0:
		return fmt.Errorf("%d of %d runs could not be set up (see the table)", rep.Failed(), len(rep.Results))
	}
	return nil
}
