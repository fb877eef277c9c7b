package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/oidc"
)

// openBenchCloud opens the cloud of e in-process, as a command would.
func openBenchCloud(t *testing.T, e env) *cloud {
	t.Helper()
	cfg := &Config{}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.storageFlags(fs, e.get)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	cl, err := openCloud(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestPopulate: `bench --populate 1000` fills SQLite and PostgreSQL with
// accounts, consents, sessions and ten tokens each whose rows the cloud
// reads as its own (sealed secrets open, each token's sub is the pairwise
// sub of its consent's sector, foreign keys hold); a second run with the
// same number adds nothing and a larger one goes on; the purge removes the
// expired rows and keeps the rest; the server then signs people up and
// issues tokens (client credentials, code flows, refresh) on it.
func TestPopulate(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := mk(t)
			port := freePort(t)
			base := "http://127.0.0.1:" + port
			e["COMMONSID_ADDR"], e["COMMONSID_ISSUER"] = "127.0.0.1:"+port, base

			out := e.must(t, "", "bench", "--populate", "1000")
			if !strings.Contains(out, ": 1000 generated accounts (1000 added, ") || !strings.Contains(out, "oauth_requests") {
				t.Fatalf("populate printed %q", out)
			}
			if out := e.must(t, "", "bench", "--populate", "1k"); !strings.Contains(out, "(0 added, 0 rows)") {
				t.Fatalf("second populate of the same number printed %q, want nothing added", out)
			}
			if out := e.must(t, "", "bench", "--populate", "1100", "--tokens-per-account", "3"); !strings.Contains(out, ": 1100 generated accounts (100 added, ") {
				t.Fatalf("larger populate printed %q", out)
			}

			ctx := context.Background()
			cl := openBenchCloud(t, e)
			all, generated, err := cl.db.PopulationCount(ctx, populateHandlePrefix)
			if err != nil || all != 1100 || generated != 1100 {
				t.Fatalf("accounts %d, generated %d, %v; want 1100", all, generated, err)
			}
			q := func(query string, args ...any) int64 {
				t.Helper()
				var n int64
				if err := cl.db.SQL().QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
					t.Fatalf("%s: %v", query, err)
				}
				return n
			}
			if n := q(`SELECT COUNT(*) FROM oauth_requests`); n != 1000*10+100*3 {
				t.Fatalf("%d tokens stored, want 10300", n)
			}
			if n := q(`SELECT COUNT(*) FROM consents`); n != 2200 {
				t.Fatalf("%d consents, want two per account", n)
			}
			if n := q(`SELECT COUNT(*) FROM browser_sessions`); n != 275 {
				t.Fatalf("%d sessions, want one per four accounts", n)
			}
			if n := q(`SELECT COUNT(*) FROM events WHERE type = 'account.created'`); n != 1100 {
				t.Fatalf("%d account.created events, want 1100", n)
			}
			// Every row belongs to an account and a registered service.
			if n := q(`SELECT COUNT(*) FROM oauth_requests r LEFT JOIN accounts a ON a.did = r.subject LEFT JOIN clients c ON c.client_id = r.client_id
				WHERE a.did IS NULL OR c.client_id IS NULL`); n != 0 {
				t.Fatalf("%d tokens without their account or service", n)
			}
			expired := q(`SELECT COUNT(*) FROM oauth_requests WHERE expires_at < $1`, time.Now().UnixMicro())
			if expired < 500 || expired > 1800 {
				t.Fatalf("%d of 10300 tokens expired, want about 10%%", expired)
			}

			a, err := cl.db.GetAccountByHandle(ctx, "pop-00000007")
			if err != nil {
				t.Fatal(err)
			}
			if a.HomeIssuer != base {
				t.Fatalf("home issuer %q, want %q", a.HomeIssuer, base)
			}
			secret, err := cl.accounts.PairwiseSecret(a)
			if err != nil {
				t.Fatalf("the generated pairwise secret does not open with the cloud's key: %v", err)
			}
			rows, err := cl.db.SQL().QueryContext(ctx, `SELECT kind, client_id, request FROM oauth_requests WHERE subject = $1`, a.DID)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for rows.Next() {
				var kind, clientID, raw string
				if err := rows.Scan(&kind, &clientID, &raw); err != nil {
					t.Fatal(err)
				}
				kinds = append(kinds, kind)
				var sr struct {
					ClientID string `json:"client_id"`
					Session  struct {
						IDToken struct {
							Subject string `json:"subject"`
						} `json:"id_token"`
						AccountDID string `json:"account_did"`
					} `json:"session"`
				}
				if err := json.Unmarshal([]byte(raw), &sr); err != nil {
					t.Fatal(err)
				}
				c, err := cl.db.GetConsent(ctx, a.DID, clientID)
				if err != nil {
					t.Fatalf("a token for %s without a consent: %v", clientID, err)
				}
				if want := oidc.PairwiseSubject(secret, c.SubjectSector); sr.Session.IDToken.Subject != want || sr.Session.AccountDID != a.DID || sr.ClientID != clientID {
					t.Fatalf("stored session sub %q for %s, want the pairwise %q", sr.Session.IDToken.Subject, sr.Session.AccountDID, want)
				}
			}
			rows.Close()
			if len(kinds) != 10 || strings.Count(strings.Join(kinds, " "), oidc.KindRefresh) != 5 {
				t.Fatalf("tokens of one account: %v, want 5 access and 5 refresh", kinds)
			}

			now := time.Now()
			res := sweepExpired(ctx, cl.db, slog.New(slog.NewTextHandler(io.Discard, nil)), now)
			if res.Rows["oauth_requests"] < expired {
				t.Fatalf("the purge removed %d tokens, want the %d expired", res.Rows["oauth_requests"], expired)
			}
			if n := q(`SELECT COUNT(*) FROM oauth_requests WHERE expires_at < $1`, now.UnixMicro()); n != 0 {
				t.Fatalf("%d expired tokens left after the purge", n)
			}
			if n := q(`SELECT COUNT(*) FROM oauth_requests`); n < 10300-expired-50 {
				t.Fatalf("%d tokens left after the purge: live ones were removed", n)
			}

			serveInProcess(t, e, base)
			var rep struct {
				Results []sqlstoreResult `json:"results"`
			}
			raw := e.must(t, "", "bench", "--url", base, "--scenarios", "client_credentials,code_flow,refresh", "--concurrency", "2",
				"--duration", "400ms", "--warmup", "100ms", "--json")
			if err := json.Unmarshal([]byte(raw), &rep); err != nil {
				t.Fatalf("%v: %s", err, raw)
			}
			if len(rep.Results) != 3 {
				t.Fatalf("bench results %s", raw)
			}
			for _, r := range rep.Results {
				if r.Ops == 0 || r.Errors != 0 || r.SetupError != "" {
					t.Fatalf("%s on the populated database: %d ops, %d errors, %q", r.Scenario, r.Ops, r.Errors, r.SetupError)
				}
			}
		})
	}
}

type sqlstoreResult struct {
	Scenario   string `json:"scenario"`
	Ops        int64  `json:"ops"`
	Errors     int64  `json:"errors"`
	SetupError string `json:"setup_error"`
}

// TestPopulateRefusesOthers: a database holding accounts the generator did
// not make is refused, nothing written, unless --force; bad numbers are
// usage errors.
func TestPopulateRefusesOthers(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	e.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	r := e.run(t, "", "bench", "--populate", "10")
	if r.code != 1 || !strings.Contains(r.stderr, "1 accounts that --populate did not make") {
		t.Fatalf("populate over a real account: exit %d, %q", r.code, r.stderr)
	}
	cl := openBenchCloud(t, e)
	if all, _, err := cl.db.PopulationCount(context.Background(), populateHandlePrefix); err != nil || all != 1 {
		t.Fatalf("accounts after the refusal: %d, %v", all, err)
	}
	if _, err := cl.db.GetMeta(context.Background(), populateMetaKey); !isNotFound(err) {
		t.Fatalf("the refused run registered its services: %v", err)
	}
	if out := e.must(t, "", "bench", "--populate", "10", "--force", "--tokens-per-account", "0"); !strings.Contains(out, "(10 added, ") {
		t.Fatalf("--force: %q", out)
	}
	for _, args := range [][]string{
		{"--populate", "0"}, {"--populate", "ten"}, {"--populate", "-5"}, {"--populate", "200M"},
		{"--populate", "10", "--tokens-per-account", "-1"}, {"--populate", "10", "--expired-percent", "101"},
	} {
		if r := e.run(t, "", append([]string{"bench"}, args...)...); r.code != 2 {
			t.Fatalf("bench %v: exit %d, %q; want a usage error", args, r.code, r.stderr)
		}
	}
}
