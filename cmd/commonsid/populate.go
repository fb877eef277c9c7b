package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store/sqlstore"
)

// The data generator of `commonsid bench --populate`: it fills a
// throw-away database with a population of accounts, each with consents to
// some of a few services, maybe a sign-on session, and tokens, in the
// shapes the provider writes (see populate's doc in docs/benchmarks.md).

// populateHandlePrefix starts the handle of every generated account; a
// database with other accounts is refused without --force.
const populateHandlePrefix = "pop-"

// populateMetaKey is where the generator keeps its services (JSON).
const populateMetaKey = "bench_populate"

// populateClients is how many services the population consents to.
const populateClients = 20

// populateChunk is how many accounts one bulk insert writes.
const populateChunk = 2000

type populateOptions struct {
	Target    int64 // accounts made by the generator at the end
	Tokens    int   // stored tokens per account
	ExpiredPc int   // percentage of tokens and sessions already expired
	Force     bool
	Progress  io.Writer
}

type populateMeta struct {
	Clients []populateClient `json:"clients"`
}

type populateClient struct {
	ID       string `json:"client_id"`
	Redirect string `json:"redirect_uri"`
	Sector   string `json:"sector"`
}

// populateResult is what a run of the generator did.
type populateResult struct {
	Before, After     int64 // generated accounts before and after
	Accounts, Rows    int64 // written by this run
	Elapsed           time.Duration
	AccountsPerSecond float64
}

// populate adds generated accounts until the database holds o.Target of
// them (a run that was stopped goes on where it stopped).
func populate(ctx context.Context, cl *cloud, o populateOptions) (*populateResult, error) {
	start := time.Now()
	all, generated, err := cl.db.PopulationCount(ctx, populateHandlePrefix)
	if err != nil {
		return nil, err
	}
	meta, err := populateServices(ctx, cl)
	if err != nil {
		return nil, err
	}
	if meta == nil && generated > 0 {
		generated = 0 // pop-… handles of people, not of the generator
	}
	if others := all - generated; others > 0 && !o.Force {
		return nil, fmt.Errorf("database %s holds %d accounts that --populate did not make: it fills throw-away databases only (give --force to add to it anyway)", cl.db.String(), others)
	}
	if meta == nil {
		if meta, err = createPopulateServices(ctx, cl); err != nil {
			return nil, err
		}
	}
	res := &populateResult{Before: generated, After: generated}
	if generated >= o.Target {
		res.Elapsed = time.Since(start)
		return res, nil
	}
	// One password hash for everyone: argon2id takes 19 MiB and tens of
	// milliseconds per hash; the column holds the same PHC string shape.
	pw := make([]byte, 18)
	rand.Read(pw)
	hash, err := identity.HashPassword(hex.EncodeToString(pw), cl.accounts.Argon2)
	if err != nil {
		return nil, err
	}
	g := &generator{cl: cl, meta: meta, hash: hash, o: o, now: time.Now().UTC(), accessTTL: cl.cfg.AccessTTL, refreshTTL: cl.cfg.RefreshTTL}
	if g.accessTTL <= 0 {
		g.accessTTL = 15 * time.Minute
	}
	if g.refreshTTL <= 0 {
		g.refreshTTL = 30 * 24 * time.Hour
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type chunk struct {
		rows *sqlstore.BulkRows
		n    int64
		err  error
	}
	jobs := make(chan int64)
	out := make(chan chunk, 2)
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for first := range jobs {
				n := min(int64(populateChunk), o.Target-first)
				rows, err := g.chunk(first, n)
				select {
				case out <- chunk{rows, n, err}:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go func() {
		defer close(jobs)
		for first := generated; first < o.Target; first += populateChunk {
			select {
			case jobs <- first:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(out) }()

	lastReport := time.Now()
	for c := range out {
		if c.err == nil {
			c.err = cl.db.InsertBulk(ctx, c.rows)
		}
		if c.err != nil {
			cancel()
			for range out {
			}
			res.Elapsed = time.Since(start)
			return res, fmt.Errorf("populate: %w (%d accounts were added before it; run again to go on)", c.err, res.Accounts)
		}
		res.Accounts += c.n
		res.After += c.n
		res.Rows += int64(c.rows.Len())
		if o.Progress != nil && time.Since(lastReport) >= 10*time.Second {
			lastReport = time.Now()
			el := time.Since(start).Seconds()
			fmt.Fprintf(o.Progress, "populate: %d of %d accounts, %d rows, %.0f accounts/s\n", res.After, o.Target, res.Rows, float64(res.Accounts)/el)
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := cl.db.Analyze(ctx); err != nil {
		return res, err
	}
	res.Elapsed = time.Since(start)
	res.AccountsPerSecond = float64(res.Accounts) / res.Elapsed.Seconds()
	return res, nil
}

// populateServices reads the generator's services (nil when it never ran
// on this database).
func populateServices(ctx context.Context, cl *cloud) (*populateMeta, error) {
	raw, err := cl.db.GetMeta(ctx, populateMetaKey)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m populateMeta
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Clients) == 0 {
		return nil, fmt.Errorf("the generator's record (meta %s) is damaged: populate a fresh database", populateMetaKey)
	}
	return &m, nil
}

// createPopulateServices registers the services the population uses,
// through the registration code every service goes through.
func createPopulateServices(ctx context.Context, cl *cloud) (*populateMeta, error) {
	g := &oidc.Registrar{Store: cl.db, Issuer: cl.cfg.Issuer, Outbound: cl.cfg.Outbound(cl.log).Client, Now: time.Now}
	m := &populateMeta{}
	for i := range populateClients {
		host := fmt.Sprintf("service-%02d.example", i)
		redirect := "https://" + host + "/callback"
		reg, err := g.Register(ctx, &oidc.RegisterRequest{Metadata: oidc.Metadata{
			ClientName: fmt.Sprintf("Generated service %d", i), RedirectURIs: []string{redirect},
			GrantTypes: []string{"authorization_code", "refresh_token"}, SourceCodeURI: "https://" + host + "/source",
		}})
		if err != nil {
			return nil, fmt.Errorf("register a generated service: %w", err)
		}
		m.Clients = append(m.Clients, populateClient{ID: reg.ClientID, Redirect: redirect, Sector: host})
	}
	raw, _ := json.Marshal(m)
	if err := cl.db.PutMeta(ctx, populateMetaKey, raw); err != nil {
		return nil, err
	}
	return m, nil
}

// generator makes the rows of accounts by index; indexes give handles, so
// two runs never make the same account.
type generator struct {
	cl   *cloud
	meta *populateMeta
	hash string
	o    populateOptions
	now  time.Time
	// accessTTL and refreshTTL are the tokens' lifetimes (the serve
	// defaults unless configured).
	accessTTL, refreshTTL time.Duration
}

var populateScopes = []string{"openid", "profile", "email", "offline_access"}

// chunk makes the rows of the accounts first … first+n-1.
func (g *generator) chunk(first, n int64) (*sqlstore.BulkRows, error) {
	b := &sqlstore.BulkRows{}
	rnd := mrand.New(mrand.NewPCG(uint64(first), uint64(g.now.UnixNano())))
	year := int64(365 * 24 * time.Hour)
	for i := first; i < first+n; i++ {
		key, err := did.NewKey()
		if err != nil {
			return nil, err
		}
		secret := make([]byte, identity.PairwiseSecretSize)
		rand.Read(secret)
		sealedKey, sealedSecret, err := g.cl.accounts.SealSecrets(key, secret)
		if err != nil {
			return nil, err
		}
		created := g.now.Add(-time.Duration(rnd.Int64N(year))).Truncate(time.Microsecond)
		handle := fmt.Sprintf("%s%08d", populateHandlePrefix, i)
		name := fmt.Sprintf("Person %d", i)
		email := handle + "@people.example"
		b.Accounts = append(b.Accounts, &identity.Account{
			DID: key.DID, Handle: handle, Email: email, EmailVerified: i%2 == 0, Name: name, PasswordHash: g.hash,
			Status: identity.StatusActive, HomeIssuer: g.cl.cfg.Issuer, DIDKeySealed: sealedKey, PairwiseSecretSealed: sealedSecret,
			CreatedAt: created, UpdatedAt: created,
		})
		b.Events = append(b.Events, sqlstore.BulkEvent{Type: "account.created", AccountDID: key.DID, At: created})

		// Two services per person, different ones.
		k := len(g.meta.Clients)
		c1 := int(i % int64(k))
		c2 := (c1 + 1 + int(i/int64(k))%(k-1)) % k
		services := []populateClient{g.meta.Clients[c1], g.meta.Clients[c2]}
		subs := make([]string, len(services))
		for j, c := range services {
			at := created.Add(time.Duration(rnd.Int64N(int64(g.now.Sub(created)) + 1))).Truncate(time.Microsecond)
			b.Consents = append(b.Consents, &privacy.Consent{AccountDID: key.DID, ClientID: c.ID, Scopes: populateScopes,
				Claims: []string{"name", "email"}, SubjectSector: c.Sector, GrantedAt: at, UpdatedAt: at, LastUsedAt: &at})
			b.Events = append(b.Events, sqlstore.BulkEvent{Type: "consent.granted", AccountDID: key.DID, At: at, Payload: map[string]any{"client_id": c.ID}})
			subs[j] = oidc.PairwiseSubject(secret, c.Sector)
		}

		// A sign-on session for one person in four.
		if i%4 == 0 {
			exp := g.expiry(rnd, 14*24*time.Hour)
			id := make([]byte, 32)
			rand.Read(id)
			b.Sessions = append(b.Sessions, &identity.Session{IDHash: identity.HashToken(hex.EncodeToString(id)), AccountDID: key.DID,
				AuthTime: exp.Add(-14 * 24 * time.Hour), AMR: []string{"pwd"}, CreatedAt: exp.Add(-14 * 24 * time.Hour),
				LastSeenAt: exp.Add(-14 * 24 * time.Hour), ExpiresAt: exp, UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", IP: "192.0.2.1"})
		}

		// Tokens: grants of an access and a refresh token, alternating
		// between the two services.
		for t, j := 0, 0; t < g.o.Tokens; j++ {
			c := services[j%2]
			refreshExp := g.expiry(rnd, g.refreshTTL)
			accessExp := g.expiry(rnd, g.accessTTL)
			requested := refreshExp.Add(-g.refreshTTL)
			if a := accessExp.Add(-g.accessTTL); a.After(requested) {
				requested = a
			}
			gr := &oidc.SyntheticGrant{Issuer: g.cl.cfg.Issuer, ClientID: c.ID, RedirectURI: c.Redirect, AccountDID: key.DID, Subject: subs[j%2],
				Scopes: populateScopes, Released: map[string]any{"name": name, "email": email, "email_verified": i%2 == 0},
				RequestedAt: requested, AuthTime: requested, AccessExpires: accessExp, RefreshExpires: refreshExp,
				RefreshUsed: rnd.IntN(2) == 0}
			access, refresh, err := gr.Rows()
			if err != nil {
				return nil, err
			}
			b.Requests = append(b.Requests, access)
			t++
			if t < g.o.Tokens {
				b.Requests = append(b.Requests, refresh)
				t++
			}
		}
	}
	return b, nil
}

// expiry is an expiry for something that lives for life: already past for
// ExpiredPc per cent (up to a day ago), else somewhere within its life.
func (g *generator) expiry(rnd *mrand.Rand, life time.Duration) time.Time {
	if rnd.IntN(100) < g.o.ExpiredPc {
		return g.now.Add(-time.Duration(rnd.Int64N(int64(24*time.Hour))) - time.Second).Truncate(time.Microsecond)
	}
	return g.now.Add(time.Duration(rnd.Int64N(int64(life))) + time.Second).Truncate(time.Microsecond)
}

// parsePopulate reads the --populate count: a number, with k or M allowed
// (1M = 1,000,000).
func parsePopulate(s string) (int64, error) {
	mult := int64(1)
	switch {
	case len(s) > 1 && (s[len(s)-1] == 'k' || s[len(s)-1] == 'K'):
		mult, s = 1000, s[:len(s)-1]
	case len(s) > 1 && s[len(s)-1] == 'M':
		mult, s = 1000000, s[:len(s)-1]
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || n.Sign() <= 0 || !n.IsInt64() || n.Int64() > 100000000/mult {
		return 0, errors.New("--populate: want a number of accounts between 1 and 100M (k and M allowed)")
	}
	return n.Int64() * mult, nil
}

// databaseAlias is --database, another name of --db for the generator.
type databaseAlias struct{ c *Config }

func (a *databaseAlias) String() string {
	if a == nil || a.c == nil {
		return ""
	}
	return a.c.DB
}

func (a *databaseAlias) Set(v string) error { a.c.DB = v; return nil }

// runPopulate is `commonsid bench --populate N`.
func runPopulate(ctx context.Context, c *cli, cfg *Config, count string, o populateOptions) error {
	var errs []error
	n, err := parsePopulate(count)
	if err != nil {
		errs = append(errs, err)
	}
	if o.Tokens < 0 || o.Tokens > 1000 {
		errs = append(errs, fmt.Errorf("--tokens-per-account %d: want 0 to 1000", o.Tokens))
	}
	if o.ExpiredPc < 0 || o.ExpiredPc > 100 {
		errs = append(errs, fmt.Errorf("--expired-percent %d: want 0 to 100", o.ExpiredPc))
	}
	cfg.AccessTTL = cfg.envOnlyDuration(c.env, "COMMONSID_ACCESS_TTL", 15*time.Minute)
	cfg.RefreshTTL = cfg.envOnlyDuration(c.env, "COMMONSID_REFRESH_TTL", 30*24*time.Hour)
	if err := cfg.Validate(false); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return usagef("%v (run 'commonsid bench -h')", errors.Join(errs...))
	}
	o.Target = n
	log := newLogger(cfg, c.stderr)
	cl, err := openCloud(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer cl.Close()
	res, err := populate(ctx, cl, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "populated %s: %d generated accounts (%d added, %d rows) in %s",
		cl.db.String(), res.After, res.Accounts, res.Rows, res.Elapsed.Round(time.Millisecond))
	if res.Accounts > 0 {
		fmt.Fprintf(c.stdout, ", %.0f accounts/s", res.AccountsPerSecond)
	}
	fmt.Fprintln(c.stdout)
	sizes, err := cl.db.TableSizes(ctx)
	if err != nil {
		return err
	}
	for _, s := range sizes {
		if s.Bytes > 0 {
			fmt.Fprintf(c.stdout, "  %-18s %10d rows %8.1f MiB\n", s.Table, s.Rows, float64(s.Bytes)/(1<<20))
		} else {
			fmt.Fprintf(c.stdout, "  %-18s %10d rows\n", s.Table, s.Rows)
		}
	}
	return nil
}
