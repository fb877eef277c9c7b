package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/internal/testpg"
)

// env is a test environment: COMMONSID_* variables for one cloud.
type env map[string]string

func (e env) get(k string) string { return e[k] }

type result struct {
	stdout, stderr string
	code           int
}

func (e env) run(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := runEnv(context.Background(), args, strings.NewReader(stdin), &out, &errb, e.get)
	return result{out.String(), errb.String(), code}
}

func (e env) must(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	r := e.run(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("commonsid %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func sqliteEnv(t testing.TB) env {
	return env{"COMMONSID_DATA": filepath.Join(t.TempDir(), "data"), "COMMONSID_LOG_LEVEL": "warn", "COMMONSID_RATE_LIMIT": "off", "COMMONSID_ADMIN_ADDR": "off"}
}

func postgresEnv(t testing.TB) env {
	return env{"COMMONSID_DATA": filepath.Join(t.TempDir(), "data"), "COMMONSID_DB": testpg.DSN(t), "COMMONSID_LOG_LEVEL": "warn", "COMMONSID_RATE_LIMIT": "off", "COMMONSID_ADMIN_ADDR": "off"}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestUserLifecycle: create prints the DID last; show gives it back; the
// project's resolver turns it into a document whose key verifies a signature
// made with the account's custodial key.
func TestUserLifecycle(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			e := mk(t)
			out := e.must(t, "correct horse battery\n", "user", "create", "--username", "Alice", "--email", "alice@example.org", "--name", "Alice Liddell", "--password-stdin")
			id := lastLine(out)
			if !strings.HasPrefix(id, "did:key:z6Mk") {
				t.Fatalf("last line %q is not a did:key", id)
			}
			var shown accountJSON
			if err := json.Unmarshal([]byte(e.must(t, "", "user", "show", "alice")), &shown); err != nil {
				t.Fatal(err)
			}
			if shown.DID != id || shown.Handle != "alice" || shown.Name != "Alice Liddell" || shown.Status != "active" || shown.DIDDocument == nil {
				t.Fatalf("show = %+v", shown)
			}
			// show by DID too
			if !strings.Contains(e.must(t, "", "user", "show", id), `"handle": "alice"`) {
				t.Fatal("show by DID did not find alice")
			}

			// Sign with the custodial key; verify through the resolver.
			cfg := &Config{DataDir: e["COMMONSID_DATA"], DB: e["COMMONSID_DB"], Issuer: defaultIssuer, LogFormat: "text", LogLevel: "warn"}
			cl, err := openCloud(context.Background(), cfg, newLogger(cfg, os.Stderr), true)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			a, err := cl.accounts.Lookup(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			k, err := cl.accounts.SigningKey(context.Background(), a)
			if err != nil {
				t.Fatal(err)
			}
			jws, err := did.Sign(k.Private, k.KeyID, []byte("I am alice"), nil)
			if err != nil {
				t.Fatal(err)
			}
			var r did.Resolver
			v, err := r.Verify(context.Background(), jws)
			if err != nil {
				t.Fatal(err)
			}
			if v.DID != id || string(v.Payload) != "I am alice" {
				t.Fatalf("verified %+v", v)
			}
			secret, err := cl.accounts.PairwiseSecret(a)
			if err != nil || len(secret) != 32 {
				t.Fatalf("pairwise secret: %d bytes, %v", len(secret), err)
			}

			list := e.must(t, "", "user", "list")
			if !strings.Contains(list, "alice") || !strings.Contains(list, id) {
				t.Fatalf("list = %s", list)
			}
			e.must(t, "", "user", "disable", "alice")
			if !strings.Contains(e.must(t, "", "user", "show", "alice"), `"status": "disabled"`) {
				t.Fatal("not disabled")
			}
			if _, err := cl.accounts.Authenticate(context.Background(), "alice", "correct horse battery"); err == nil {
				t.Fatal("a disabled account authenticated")
			}
			e.must(t, "", "user", "enable", "alice")
			if _, err := cl.accounts.Authenticate(context.Background(), "alice", "correct horse battery"); err != nil {
				t.Fatalf("enabled account: %v", err)
			}
			e.must(t, "", "user", "delete", "alice")
			shownAfter := e.must(t, "", "user", "show", "alice")
			if !strings.Contains(shownAfter, `"status": "deleted"`) || strings.Contains(shownAfter, "alice@example.org") {
				t.Fatalf("after delete: %s", shownAfter)
			}
			// The tombstone keeps the handle.
			r2 := e.run(t, "another password\n", "user", "create", "--username", "alice", "--password-stdin")
			if r2.code == 0 || !strings.Contains(r2.stderr, "handle already taken") {
				t.Fatalf("re-using a deleted handle: %+v", r2)
			}
		})
	}
}

// TestBadInput: each mistake gets one clear line on stderr, a non-zero exit,
// and leaves the database as it was.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	e.must(t, "correct horse battery\n", "user", "create", "--username", "bob", "--password-stdin")
	before := e.must(t, "", "user", "list")
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, []byte("x"), 0o600)

	cases := []struct {
		name  string
		env   env
		stdin string
		args  []string
		want  string
		code  int
	}{
		{"duplicate handle", nil, "correct horse battery\n", []string{"user", "create", "--username", "BOB", "--password-stdin"}, "handle already taken", 1},
		{"invalid handle", nil, "correct horse battery\n", []string{"user", "create", "--username", "b!", "--password-stdin"}, "handle: must be 3 to 32 characters", 1},
		{"bad handle chars", nil, "correct horse battery\n", []string{"user", "create", "--username", "bob smith", "--password-stdin"}, "may only contain", 1},
		{"short password", nil, "short\n", []string{"user", "create", "--username", "carol", "--password-stdin"}, "password: must be at least 8 characters", 1},
		{"no password", nil, "", []string{"user", "create", "--username", "carol", "--password-stdin"}, "no password on standard input", 1},
		{"bad email", nil, "correct horse battery\n", []string{"user", "create", "--username", "carol", "--email", "nope", "--password-stdin"}, "is not an email address", 1},
		{"malformed DSN", env{"COMMONSID_DB": "postgres://u:secretpw@host:notaport/db"}, "", []string{"user", "list"}, "malformed PostgreSQL URL", 2},
		{"unsupported DSN", env{"COMMONSID_DB": "mysql://x"}, "", []string{"user", "list"}, "use sqlite:PATH or a postgres:// URL", 2},
		{"unreachable PostgreSQL", env{"COMMONSID_DB": "postgres://postgres@127.0.0.1:1/x?connect_timeout=2"}, "", []string{"user", "list"}, "cannot reach PostgreSQL at postgres://127.0.0.1:1/x: connection refused", 1},
		{"wrong key-encryption key", env{"COMMONSID_SECRET": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}, "", []string{"user", "list"}, "key-encryption key does not match this database", 1},
		{"corrupt COMMONSID_SECRET", env{"COMMONSID_SECRET": "not base64!"}, "", []string{"user", "list"}, "COMMONSID_SECRET: key-encryption key is not base64", 1},
		{"short COMMONSID_SECRET", env{"COMMONSID_SECRET": "AAAA"}, "", []string{"user", "list"}, "must be 32 bytes", 1},
		{"unwritable data folder", env{"COMMONSID_DATA": filepath.Join(notDir, "data")}, "", []string{"user", "list"}, "cannot be created", 1},
		{"unknown flag", nil, "", []string{"serve", "--bogus"}, "flag provided but not defined: -bogus", 2},
		{"unknown command", nil, "", []string{"frobnicate"}, "unknown command", 2},
		{"bad issuer", env{"COMMONSID_ISSUER": "http://example.org"}, "", []string{"user", "list"}, "must use https", 2},
		{"bad addr", nil, "", []string{"serve", "--addr", "nonsense"}, "must be host:port", 2},
		{"bad COMMONSID_RESOURCES", env{"COMMONSID_RESOURCES": "https://api.example/,ftp://files.example/"}, "", []string{"serve"}, "COMMONSID_RESOURCES: resources: \"ftp://files.example/\" must be https", 2},
		{"bad COMMONSID_OUTBOUND_ALLOW", env{"COMMONSID_OUTBOUND_ALLOW": "10.1.0.0"}, "", []string{"serve"}, "COMMONSID_OUTBOUND_ALLOW: \"10.1.0.0\" is not a network", 2},
		{"unknown account", nil, "", []string{"user", "show", "nobody"}, `no account "nobody"`, 1},
		{"retire unknown key", nil, "", []string{"keys", "retire", "nope"}, `no signing key "nope"`, 1},
		{"bad alg", nil, "", []string{"keys", "rotate", "--alg", "HS256"}, "unsupported signing algorithm", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ce := env{}
			for k, v := range e {
				ce[k] = v
			}
			for k, v := range c.env {
				ce[k] = v
			}
			r := ce.run(t, c.stdin, c.args...)
			if r.code != c.code {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, c.code, r.stderr)
			}
			if !strings.Contains(r.stderr, c.want) {
				t.Errorf("stderr %q does not say %q", r.stderr, c.want)
			}
			if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
				t.Errorf("stderr has %d lines, want one: %q", n+1, r.stderr)
			}
			if strings.Contains(r.stderr, "secretpw") {
				t.Errorf("stderr leaks a password: %q", r.stderr)
			}
			if after := e.must(t, "", "user", "list"); after != before {
				t.Errorf("database changed:\nbefore %s\nafter %s", before, after)
			}
		})
	}
	// A corrupt kek file is reported, not replaced.
	kekPath := filepath.Join(e["COMMONSID_DATA"], "kek")
	good, _ := os.ReadFile(kekPath)
	os.WriteFile(kekPath, []byte("garbage"), 0o600)
	r := e.run(t, "", "user", "list")
	if r.code == 0 || !strings.Contains(r.stderr, "is corrupt") {
		t.Fatalf("corrupt kek file: %+v", r)
	}
	if b, _ := os.ReadFile(kekPath); string(b) != "garbage" {
		t.Fatal("corrupt kek file was overwritten")
	}
	os.WriteFile(kekPath, good, 0o600)
	// A kek file for another database: refused, and the new file is not left behind.
	other := sqliteEnv(t)
	other["COMMONSID_DB"] = "sqlite:" + filepath.Join(e["COMMONSID_DATA"], "commonsid.db")
	r = other.run(t, "", "user", "list")
	if r.code == 0 || !strings.Contains(r.stderr, "does not match") {
		t.Fatalf("foreign kek: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(other["COMMONSID_DATA"], "kek")); !os.IsNotExist(err) {
		t.Fatalf("a kek file was left behind after the refusal: %v", err)
	}
}

func TestKeysRotateRetire(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	e.must(t, "", "migrate", "up") // keys list only looks: it needs a cloud
	list := e.must(t, "", "keys", "list")
	if strings.Count(list, "active") != 1 {
		t.Fatalf("first list: %s", list)
	}
	first := strings.Fields(strings.Split(list, "\n")[1])[0]
	out := e.must(t, "", "keys", "rotate")
	if !strings.Contains(out, "new active ES256 key") {
		t.Fatalf("rotate: %s", out)
	}
	list = e.must(t, "", "keys", "list")
	if !strings.Contains(list, first) || !strings.Contains(list, "inactive") {
		t.Fatalf("after rotate: %s", list)
	}
	// '--': a key ID may start with '-'.
	r := e.run(t, "", "keys", "retire", "--", strings.Fields(strings.Split(list, "\n")[1])[0])
	if r.code == 0 || !strings.Contains(r.stderr, "active key cannot be retired") {
		t.Fatalf("retiring the active key: %+v", r)
	}
	if strings.HasPrefix(first, "-") {
		// A key ID may start with '-': the error says how to pass it.
		if r := e.run(t, "", "keys", "retire", first); r.code != 2 || !strings.Contains(r.stderr, "goes after '--'") {
			t.Fatalf("retire %s without '--': %+v", first, r)
		}
	}
	e.must(t, "", "keys", "retire", "--", first)
	if !strings.Contains(e.must(t, "", "keys", "list"), "retired") {
		t.Fatal("not retired")
	}
	e.must(t, "", "keys", "rotate", "--alg", "EdDSA")
	if !strings.Contains(e.must(t, "", "keys", "list"), "EdDSA") {
		t.Fatal("no EdDSA key")
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			e := mk(t)
			st := e.must(t, "", "migrate", "status")
			if !strings.Contains(st, "pending") || !strings.Contains(st, "0001_foundation.sql") {
				t.Fatalf("status before: %s", st)
			}
			up := e.must(t, "", "migrate", "up")
			if !strings.Contains(up, "0 pending") || !strings.Contains(up, "applied") {
				t.Fatalf("up: %s", up)
			}
			if r := e.run(t, "", "migrate", "sideways"); r.code != 2 {
				t.Fatalf("migrate sideways: %+v", r)
			}
		})
	}
}

// TestInterleave: flags and positional arguments may come in any order, and
// everything after "--" is positional, even what starts with '-' (a key ID
// may).
func TestInterleave(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		db   string
		pos  []string
	}{
		{[]string{"alice", "--db", "X"}, "X", []string{"alice"}},
		{[]string{"--db", "X", "alice"}, "X", []string{"alice"}},
		{[]string{"--db=X", "alice", "bob"}, "X", []string{"alice", "bob"}},
		{[]string{"--db", "X", "--", "-OVR-key"}, "X", []string{"-OVR-key"}},
		{[]string{"--", "-k", "--db"}, "", []string{"-k", "--db"}},
		{nil, "", nil},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		db := fs.String("db", "", "")
		if err := fs.Parse(interleave(fs, c.args)); err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if *db != c.db || !slices.Equal(fs.Args(), c.pos) {
			t.Errorf("%q: db %q, positional %q; want %q, %q", c.args, *db, fs.Args(), c.db, c.pos)
		}
	}
}
