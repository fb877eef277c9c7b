package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every bad value is refused at start, named by the variable or flag it
// came from, with what is wrong with it: never replaced by a default.
func TestConfigRefusesBadValues(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  env
		args []string
		want []string
	}{
		{"duration without unit", env{"COMMONSID_ACCESS_TTL": "15"}, []string{"serve"}, []string{`COMMONSID_ACCESS_TTL="15"`, "missing unit"}},
		{"duration not a number", env{"COMMONSID_CODE_TTL": "soon"}, []string{"serve"}, []string{`COMMONSID_CODE_TTL="soon"`, "invalid duration"}},
		{"negative duration", env{"COMMONSID_REFRESH_TTL": "-1h"}, []string{"serve"}, []string{"COMMONSID_REFRESH_TTL must be positive"}},
		{"shutdown timeout", env{"COMMONSID_SHUTDOWN_TIMEOUT": "30"}, []string{"serve"}, []string{"COMMONSID_SHUTDOWN_TIMEOUT", "missing unit"}},
		{"backchannel retry", env{"COMMONSID_BACKCHANNEL_RETRY": "10"}, []string{"serve"}, []string{"COMMONSID_BACKCHANNEL_RETRY", "missing unit"}},
		{"backchannel retry zero", env{"COMMONSID_BACKCHANNEL_RETRY": "0s"}, []string{"serve"}, []string{"COMMONSID_BACKCHANNEL_RETRY", "must be positive"}},
		{"witness interval", env{"COMMONSID_DID_WITNESS_INTERVAL": "1"}, []string{"serve"}, []string{"COMMONSID_DID_WITNESS_INTERVAL", "missing unit"}},
		{"duration flag without unit", nil, []string{"serve", "--access-ttl", "15"}, []string{"-access-ttl", "missing unit"}},
		{"code ttl too long from env", env{"COMMONSID_CODE_TTL": "1h"}, []string{"serve"}, []string{"COMMONSID_CODE_TTL must be at most 10m"}},
		{"boolean flag", nil, []string{"serve", "--demo=maybe"}, []string{"-demo", "not a boolean"}},
		{"rate limit from env", env{"COMMONSID_RATE_LIMIT": "fast"}, []string{"serve"}, []string{`COMMONSID_RATE_LIMIT "fast"`, "positive factor"}},
		{"rate limit flag", nil, []string{"serve", "--rate-limit=-2"}, []string{`--rate-limit "-2"`}},
		{"registration enum", env{"COMMONSID_REGISTRATION": "public"}, []string{"serve"}, []string{`COMMONSID_REGISTRATION "public"`, "open, token or closed"}},
		{"addr from env", env{"COMMONSID_ADDR": "8080"}, []string{"serve"}, []string{`COMMONSID_ADDR "8080" must be host:port`}},
		{"pprof addr", env{"COMMONSID_PPROF_ADDR": "nonsense"}, []string{"serve"}, []string{`COMMONSID_PPROF_ADDR "nonsense" must be host:port`}},
		{"log level from env", env{"COMMONSID_LOG_LEVEL": "verbose"}, []string{"user", "list"}, []string{`COMMONSID_LOG_LEVEL "verbose"`}},
		{"log format flag", nil, []string{"user", "list", "--log-format", "xml"}, []string{`--log-format "xml"`}},
		{"issuer URL from env", env{"COMMONSID_ISSUER": "id.example.org"}, []string{"keys", "list"}, []string{`COMMONSID_ISSUER "id.example.org" must be an absolute URL`}},
		{"issuer URL flag", nil, []string{"keys", "list", "--issuer", "ftp://id.example.org"}, []string{`--issuer "ftp://id.example.org" must use https`}},
		{"database URL from env", env{"COMMONSID_DB": "mysql://x"}, []string{"migrate", "status"}, []string{"COMMONSID_DB:", "sqlite:PATH or a postgres:// URL"}},
		{"database URL flag", nil, []string{"migrate", "status", "--db", "mysql://x"}, []string{"--db:", "sqlite:PATH or a postgres:// URL"}},
		{"every problem at once", env{"COMMONSID_ACCESS_TTL": "15", "COMMONSID_LOG_LEVEL": "loud"}, []string{"serve"}, []string{"COMMONSID_ACCESS_TTL", "COMMONSID_LOG_LEVEL"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := sqliteEnv(t)
			delete(e, "COMMONSID_LOG_LEVEL")
			delete(e, "COMMONSID_RATE_LIMIT")
			for k, v := range c.env {
				e[k] = v
			}
			r := e.run(t, "", c.args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", r.code, exitUsage, r.stdout, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q does not say %q", r.stderr, w)
				}
			}
			if _, err := os.Stat(e["COMMONSID_DATA"]); !os.IsNotExist(err) {
				t.Errorf("the data folder was created before the configuration was checked (%v)", err)
			}
		})
	}
}

// parseServe parses serve's flags the way serve does and validates them.
func parseServe(t *testing.T, e env, args ...string) (*Config, error) {
	t.Helper()
	cfg := &Config{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.storageFlags(fs, e.get)
	cfg.serveFlags(fs, e.get)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return cfg, cfg.Validate(true)
}

func TestConfigDurations(t *testing.T) {
	t.Parallel()
	base := env{"COMMONSID_DATA": t.TempDir()}
	with := func(k, v string) env {
		e := env{k: v}
		for k, v := range base {
			e[k] = v
		}
		return e
	}
	// A good value is used.
	cfg, err := parseServe(t, with("COMMONSID_ACCESS_TTL", "5m"))
	if err != nil || cfg.AccessTTL != 5*time.Minute {
		t.Fatalf("COMMONSID_ACCESS_TTL=5m: %v, %v", cfg, err)
	}
	// A bad one is an error, not the default.
	if _, err := parseServe(t, with("COMMONSID_ACCESS_TTL", "15")); err == nil || !strings.Contains(err.Error(), "COMMONSID_ACCESS_TTL") {
		t.Fatalf("COMMONSID_ACCESS_TTL=15 accepted: %v", err)
	}
	// The flag wins over the variable, a bad variable included.
	cfg, err = parseServe(t, with("COMMONSID_ACCESS_TTL", "15"), "--access-ttl", "10m")
	if err != nil || cfg.AccessTTL != 10*time.Minute {
		t.Fatalf("--access-ttl 10m over COMMONSID_ACCESS_TTL=15: %v, %v", cfg.AccessTTL, err)
	}
	// A problem with a value the flag gave is named by the flag.
	_, err = parseServe(t, with("COMMONSID_REGISTRATION", "public"), "--registration", "sometimes")
	if err == nil || !strings.Contains(err.Error(), `--registration "sometimes"`) || strings.Contains(err.Error(), "COMMONSID_REGISTRATION ") {
		t.Fatalf("--registration sometimes: %v", err)
	}
	// Booleans from flags.
	cfg, err = parseServe(t, base, "--demo")
	if err != nil || !cfg.Demo {
		t.Fatalf("--demo: %v, %v", cfg.Demo, err)
	}
	cfg, err = parseServe(t, base, "--demo=false")
	if err != nil || cfg.Demo {
		t.Fatalf("--demo=false: %v, %v", cfg.Demo, err)
	}
	// The backchannel retry serve reads is checked with the rest.
	cfg, err = parseServe(t, with("COMMONSID_BACKCHANNEL_RETRY", "250ms"))
	if err != nil || cfg.BackchannelRetry != 250*time.Millisecond {
		t.Fatalf("COMMONSID_BACKCHANNEL_RETRY=250ms: %v, %v", cfg.BackchannelRetry, err)
	}
}

// The help output lists the variables and defaults without a stray error.
func TestConfigHelp(t *testing.T) {
	t.Parallel()
	r := env{"COMMONSID_ACCESS_TTL": "20m"}.run(t, "", "serve", "-h")
	if r.code != 0 {
		t.Fatalf("serve -h: exit %d: %s", r.code, r.stderr)
	}
	for _, w := range []string{"env COMMONSID_ACCESS_TTL", "(default 20m0s)", "-demo\n", "env COMMONSID_DATA"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("serve -h does not say %q:\n%s", w, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "panic") {
		t.Errorf("serve -h: %s", r.stdout)
	}
}

// Global flags work before the command as after it.
func TestGlobalFlagsBeforeCommand(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	other := filepath.Join(t.TempDir(), "other")
	e.must(t, "", "--data", other, "migrate", "up")
	if _, err := os.Stat(filepath.Join(other, dbFile)); err != nil {
		t.Fatalf("--data before migrate did not take: %v", err)
	}
	if _, err := os.Stat(e["COMMONSID_DATA"]); !os.IsNotExist(err) {
		t.Fatalf("COMMONSID_DATA was used although --data came before the command: %v", err)
	}
	before := e.must(t, "", "--data="+other, "--log-level", "warn", "keys", "list", "--json")
	after := e.must(t, "", "keys", "list", "--json", "--data", other)
	if before != after || !strings.Contains(before, `"kid"`) {
		t.Fatalf("keys list differs with --data before and after the command:\n%s\n%s", before, after)
	}
	// Deeper subcommands and positional arguments keep their place.
	e.must(t, "correct horse battery\n", "--data", other, "user", "create", "--username", "alice", "--password-stdin", "--no-recovery-kit")
	if r := e.run(t, "", "--data", other, "user", "show", "alice"); r.code != 0 || !strings.Contains(r.stdout, "alice") {
		t.Fatalf("user show after --data: %+v", r)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "127.0.0.1:1", "serve"}, "only the global flags"},
		{[]string{"--data"}, "needs a value"},
		{[]string{"--data", other}, "a command is expected"},
		{[]string{"--data", other, "migrate", "status", "--data", other}, "given both before and after"},
		{[]string{"--json", "keys", "list"}, "only the global flags"},
	} {
		r := e.run(t, "", c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("commonsid %s: exit %d, stderr %q; want exit 2 saying %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
	if r := e.run(t, "", "--data", other, "help"); r.code != 0 || !strings.Contains(r.stdout, "Global flags") {
		t.Errorf("help after a global flag: %+v", r)
	}
}

func TestHoistGlobalFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, out []string }{
		{[]string{"serve"}, []string{"serve"}},
		{[]string{"--data", "D", "serve", "--addr", "x:1"}, []string{"serve", "--addr", "x:1", "--data", "D"}},
		{[]string{"-db=sqlite:x", "user", "show", "--", "-odd"}, []string{"user", "show", "-db=sqlite:x", "--", "-odd"}},
		{[]string{"--issuer", "https://a.example", "--log-level", "warn", "peer", "list"}, []string{"peer", "list", "--issuer", "https://a.example", "--log-level", "warn"}},
	} {
		got, err := hoistGlobalFlags(c.in)
		if err != nil || !reflect.DeepEqual(got, c.out) {
			t.Errorf("hoistGlobalFlags(%q) = %q, %v; want %q", c.in, got, err, c.out)
		}
	}
}

// --json prints one shape per object: a list is an array of what show
// prints.
func TestListShowJSON(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	e.must(t, "", "migrate", "up")
	var ks []map[string]any
	if err := json.Unmarshal([]byte(e.must(t, "", "keys", "list", "--json")), &ks); err != nil || len(ks) == 0 {
		t.Fatalf("keys list --json: %v %v", ks, err)
	}
	for _, k := range []string{"kid", "alg", "status", "created_at", "rotated_at", "retired_at", "public_jwk"} {
		if _, ok := ks[0][k]; !ok {
			t.Errorf("keys list --json: no %q in %v", k, ks[0])
		}
	}
	var cs []map[string]any
	if err := json.Unmarshal([]byte(e.must(t, "", "client", "list", "--json")), &cs); err != nil || cs == nil || len(cs) != 0 {
		t.Fatalf("client list --json with no clients: %v %v (want [])", cs, err)
	}
	out := e.must(t, "", "client", "create", "--name", "Notes", "--redirect-uri", "https://notes.example/cb")
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &reg); err != nil || reg.ClientID == "" {
		t.Fatalf("client create: %v\n%s", err, out)
	}
	if err := json.Unmarshal([]byte(e.must(t, "", "client", "list", "--json")), &cs); err != nil || len(cs) != 1 {
		t.Fatalf("client list --json: %v %v", cs, err)
	}
	var shown map[string]any
	if err := json.Unmarshal([]byte(e.must(t, "", "client", "show", reg.ClientID, "--json")), &shown); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shown, cs[0]) {
		t.Errorf("client show and client list --json differ:\n%v\n%v", shown, cs[0])
	}
	if shown["client_id"] != reg.ClientID || shown["client_name"] != "Notes" {
		t.Errorf("client show --json: %v", shown)
	}
	var plain map[string]any
	if err := json.Unmarshal([]byte(e.must(t, "", "client", "show", reg.ClientID)), &plain); err != nil || !reflect.DeepEqual(plain, shown) {
		t.Errorf("client show without --json: %v %v", plain, err)
	}
	var peers []map[string]any
	if err := json.Unmarshal([]byte(e.must(t, "", "peer", "list", "--json")), &peers); err != nil || peers == nil {
		t.Errorf("peer list --json with no peers: %v %v (want [])", peers, err)
	}
	if r := e.run(t, "", "client", "list", "extra"); r.code != exitUsage {
		t.Errorf("client list with an argument: %+v", r)
	}
}
