package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Scenario names.
const (
	ScenarioClientCredentials = "client_credentials"
	ScenarioCodeFlow          = "code_flow"
	ScenarioRefresh           = "refresh"
	ScenarioIntrospection     = "introspection"
	ScenarioJWKS              = "jwks"
	ScenarioDiscovery         = "discovery"
)

// Scenarios returns every scenario name, in the order they run.
func Scenarios() []string {
	return []string{ScenarioClientCredentials, ScenarioCodeFlow, ScenarioRefresh,
		ScenarioIntrospection, ScenarioJWKS, ScenarioDiscovery}
}

// Defaults.
const (
	DefaultURL      = "http://127.0.0.1:8080"
	DefaultDuration = 10 * time.Second
	DefaultWarmup   = 2 * time.Second
	DefaultTimeout  = 30 * time.Second

	// MaxConcurrency bounds one level: each virtual client holds a
	// connection and, for the browser scenarios, a sign-on session.
	MaxConcurrency = 4096
	// maxSamples bounds the latencies kept per virtual client; beyond it a
	// uniform reservoir sample is kept, so memory stays bounded whatever the
	// duration.
	maxSamples = 1 << 15
)

// DefaultConcurrency is the default list of levels.
func DefaultConcurrency() []int { return []int{16, 64} }

// Config says what to run against which server.
type Config struct {
	// URL is the server's base URL; every request goes there.
	URL string
	// Concurrency lists the numbers of virtual clients, one run per level.
	Concurrency []int
	// Duration is the measured time of each scenario at each level.
	Duration time.Duration
	// Warmup runs before each measurement and is not measured.
	Warmup time.Duration
	// Scenarios to run, in the order of Scenarios(); empty means all.
	Scenarios []string
	// RegistrationToken is the initial access token for dynamic client
	// registration, for servers that require one.
	RegistrationToken string
	// Timeout bounds each HTTP request (default 30 s).
	Timeout time.Duration
	// Progress receives one line per step; nil for none.
	Progress io.Writer
	// MetricsURL is where the server's Prometheus metrics are read for its
	// resident memory: the admin listener's /metrics (with MetricsToken as
	// its bearer token) or, when the server publishes them there, URL's
	// /metrics, the default.
	MetricsURL   string
	MetricsToken string
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if _, err := parseBase(c.URL); err != nil {
		errs = append(errs, err)
	}
	if len(c.Concurrency) == 0 {
		errs = append(errs, errors.New("concurrency: at least one level is needed"))
	}
	for _, n := range c.Concurrency {
		if n < 1 || n > MaxConcurrency {
			errs = append(errs, fmt.Errorf("concurrency %d: must be between 1 and %d", n, MaxConcurrency))
		}
	}
	if c.Duration <= 0 {
		errs = append(errs, fmt.Errorf("duration %v: must be positive", c.Duration))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("warmup %v: must not be negative", c.Warmup))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v: must not be negative", c.Timeout))
	}
	if c.MetricsURL != "" {
		if u, err := url.Parse(c.MetricsURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("metrics url %q: must be an absolute http or https URL", c.MetricsURL))
		}
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(Scenarios(), s) {
			errs = append(errs, fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(Scenarios(), ", ")))
		}
	}
	return errors.Join(errs...)
}

// parseBase checks the base URL: absolute http or https, no query or fragment.
func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url %q: must be an absolute http or https URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("url %q: must not carry a query, fragment or user info", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// ParseConcurrency parses a comma-separated list of levels such as "16,64".
func ParseConcurrency(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > MaxConcurrency {
			return nil, fmt.Errorf("concurrency %q: each level must be a whole number from 1 to %d", f, MaxConcurrency)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("concurrency %q: at least one level is needed", s)
	}
	return out, nil
}

// ParseScenarios parses a comma-separated list of scenario names; "all" or
// an empty list means every scenario. The result follows the order of
// Scenarios(), without repeats.
func ParseScenarios(s string) ([]string, error) {
	want := map[string]bool{}
	var unknown []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
		case f == "all":
			for _, n := range Scenarios() {
				want[n] = true
			}
		case slices.Contains(Scenarios(), f):
			want[f] = true
		default:
			unknown = append(unknown, strconv.Quote(f))
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown scenario %s (known: %s)", strings.Join(unknown, ", "), strings.Join(Scenarios(), ", "))
	}
	if len(want) == 0 {
		return Scenarios(), nil
	}
	var out []string
	for _, n := range Scenarios() {
		if want[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// Report is the outcome of a Run.
type Report struct {
	URL       string    `json:"url"`
	Issuer    string    `json:"issuer"`
	StartedAt time.Time `json:"started_at"`
	// DurationSeconds and WarmupSeconds are per scenario and level.
	DurationSeconds float64 `json:"duration_seconds"`
	WarmupSeconds   float64 `json:"warmup_seconds"`
	// RSSStartBytes and RSSEndBytes are the server's resident memory before
	// the first run and after the last; -1 when /metrics did not say.
	RSSStartBytes int64    `json:"rss_start_bytes"`
	RSSEndBytes   int64    `json:"rss_end_bytes"`
	Results       []Result `json:"results"`
	// Interrupted is set when the context ended before every run was done.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Result is one scenario at one concurrency level.
type Result struct {
	Scenario    string `json:"scenario"`
	Unit        string `json:"unit"` // what one operation is: "request" or "flow"
	Concurrency int    `json:"concurrency"`
	// Ops counts successful operations in the measured time, Errors failed ones.
	Ops     int64         `json:"ops"`
	Errors  int64         `json:"errors"`
	Elapsed time.Duration `json:"-"`
	// Rate is successful operations per second.
	Rate float64       `json:"ops_per_second"`
	P50  time.Duration `json:"-"`
	P99  time.Duration `json:"-"`
	// RSSBytes is the server's resident memory after the warm-up; -1 when
	// /metrics did not say.
	RSSBytes int64 `json:"rss_after_warmup_bytes"`
	// ErrorSamples holds a few distinct error messages.
	ErrorSamples []string `json:"error_samples,omitempty"`
	// SetupError is set when the run could not start; nothing was measured.
	SetupError string `json:"setup_error,omitempty"`

	// JSON views of the durations, in milliseconds.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	P50Millis      float64 `json:"p50_ms"`
	P99Millis      float64 `json:"p99_ms"`
}

// Failed counts the runs that could not be set up.
func (r *Report) Failed() int {
	n := 0
	for _, res := range r.Results {
		if res.SetupError != "" {
			n++
		}
	}
	return n
}

// Run drives the load and returns what it measured. An error means nothing
// could be measured (bad configuration, server unreachable); a run that
// could not be set up is recorded in its Result and the others go on. When
// ctx ends, Run stops and returns what it has, with Interrupted set.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.Scenarios) == 0 {
		cfg.Scenarios = Scenarios()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e, err := newEnv(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer e.close()

	rep := &Report{URL: e.base.String(), Issuer: e.disc.Issuer, StartedAt: time.Now().UTC(),
		DurationSeconds: cfg.Duration.Seconds(), WarmupSeconds: cfg.Warmup.Seconds()}
	rep.RSSStartBytes = e.rss(ctx)
	for _, name := range cfg.Scenarios {
		sc := scenarioByName(name)
		for _, n := range cfg.Concurrency {
			if ctx.Err() != nil {
				rep.Interrupted = true
				break
			}
			res := e.runOne(ctx, sc, n)
			if ctx.Err() != nil {
				rep.Interrupted = true
			}
			rep.Results = append(rep.Results, res)
		}
	}
	rep.RSSEndBytes = e.rss(context.WithoutCancel(ctx))
	return rep, nil
}

func (e *env) progress(format string, args ...any) {
	if e.cfg.Progress != nil {
		fmt.Fprintf(e.cfg.Progress, "bench: "+format+"\n", args...)
	}
}

// runOne sets up, warms up and measures one scenario at one level.
func (e *env) runOne(ctx context.Context, sc scenario, n int) Result {
	res := Result{Scenario: sc.name, Unit: sc.unit, Concurrency: n, RSSBytes: -1}
	e.progress("%s × %d: setting up, then %v of warm-up and %v measured", sc.name, n, e.cfg.Warmup, e.cfg.Duration)
	ops, err := sc.setup(ctx, e, n)
	if err != nil {
		res.SetupError = err.Error()
		e.progress("%s × %d: setup failed: %v", sc.name, n, err)
		return res
	}
	// One operation first, so that a scenario the server cannot serve at
	// all is reported once rather than counted as thousands of errors.
	if err := ops[0](ctx); err != nil {
		res.SetupError = "first operation: " + err.Error()
		e.progress("%s × %d: setup failed: %s", sc.name, n, res.SetupError)
		return res
	}
	if e.cfg.Warmup > 0 {
		runPhase(ctx, ops, e.cfg.Warmup)
	}
	res.RSSBytes = e.rss(ctx)
	ph := runPhase(ctx, ops, e.cfg.Duration)
	res.Ops, res.Errors, res.Elapsed, res.ErrorSamples = ph.ops, ph.errs, ph.elapsed, ph.errSamples
	if ph.elapsed > 0 {
		res.Rate = float64(ph.ops) / ph.elapsed.Seconds()
	}
	res.P50, res.P99 = percentile(ph.samples, 50), percentile(ph.samples, 99)
	res.ElapsedSeconds = res.Elapsed.Seconds()
	res.P50Millis = float64(res.P50) / float64(time.Millisecond)
	res.P99Millis = float64(res.P99) / float64(time.Millisecond)
	e.progress("%s × %d: %.1f %s/s, p50 %s, p99 %s, %d errors", sc.name, n, res.Rate, sc.unit, fmtDur(res.P50), fmtDur(res.P99), res.Errors)
	return res
}

// op is one operation of one virtual client. Each virtual client has its
// own op, called from one goroutine only, so it may keep state.
type op func(ctx context.Context) error

// phase is what one timed phase measured: the latencies sorted.
type phase struct {
	ops, errs  int64
	elapsed    time.Duration
	samples    []time.Duration
	errSamples []string
}

const maxErrSamples = 5

// runPhase runs every op in a closed loop until d has passed, then waits for
// the operations in flight to finish.
func runPhase(ctx context.Context, ops []op, d time.Duration) phase {
	start := time.Now()
	deadline := start.Add(d)
	type tally struct {
		ok, errs int64
		samples  []time.Duration
		errMsgs  []string
	}
	tallies := make([]tally, len(ops))
	var wg sync.WaitGroup
	for i, o := range ops {
		wg.Go(func() {
			t := &tallies[i]
			t.samples = make([]time.Duration, 0, 1024)
			rng := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				err := o(ctx)
				lat := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						return // interrupted: not the server's failure
					}
					t.errs++
					if msg := err.Error(); len(t.errMsgs) < maxErrSamples && !slices.Contains(t.errMsgs, msg) {
						t.errMsgs = append(t.errMsgs, msg)
					}
					continue
				}
				t.ok++
				if len(t.samples) < maxSamples {
					t.samples = append(t.samples, lat)
				} else if j := rng.Int64N(t.ok); j < maxSamples {
					t.samples[j] = lat // reservoir sampling (Algorithm R)
				}
			}
		})
	}
	wg.Wait()
	var ph phase
	ph.elapsed = time.Since(start)
	total := 0
	for i := range tallies {
		total += len(tallies[i].samples)
	}
	ph.samples = make([]time.Duration, 0, total)
	for i := range tallies {
		t := &tallies[i]
		ph.ops += t.ok
		ph.errs += t.errs
		ph.samples = append(ph.samples, t.samples...)
		for _, m := range t.errMsgs {
			if len(ph.errSamples) < maxErrSamples && !slices.Contains(ph.errSamples, m) {
				ph.errSamples = append(ph.errSamples, m)
			}
		}
	}
	slices.Sort(ph.samples)
	return ph
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted latencies
// by the nearest-rank method: the smallest value with at least p% of the
// values at or below it. It returns 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(float64(n) * p / 100))
	idx := min(max(rank-1, 0), n-1)
	return sorted[idx]
}

func maxOf(ns []int) int {
	m := 0
	for _, n := range ns {
		m = max(m, n)
	}
	return m
}
