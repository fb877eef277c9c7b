package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did"
)

// withoutIssuer is the command-line environment of a cloud, with neither
// --issuer nor COMMONSID_ISSUER: commands must find the issuer themselves.
func withoutIssuer(e env) env {
	out := env{}
	for k, v := range e {
		if k != "COMMONSID_ISSUER" && k != "COMMONSID_ADDR" {
			out[k] = v
		}
	}
	return out
}

func showAccount(t *testing.T, e env, handle string) accountJSON {
	t.Helper()
	var a accountJSON
	if err := json.Unmarshal([]byte(e.must(t, "", "user", "show", handle)), &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestIssuerRecordedByServe: every command run without an issuer against a
// data folder that serve started with http://127.0.0.1:PORT uses that
// issuer, and a contradicting one is refused with both names.
func TestIssuerRecordedByServe(t *testing.T) {
	t.Parallel()
	a := startLive(t, sqliteEnv(t))
	cliA := withoutIssuer(a.env)
	aDID, _ := did.WebDID(a.base)

	// user create: the account is homed on this cloud.
	cliA.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	if got := showAccount(t, cliA, "alice"); got.HomeCloud != a.base || got.Replica {
		t.Fatalf("alice home_cloud = %q replica = %v, want %q and not a replica", got.HomeCloud, got.Replica, a.base)
	}
	// The account's person can change it here: it is not read-only.
	cliA.must(t, "", "user", "disable", "alice")
	cliA.must(t, "", "user", "enable", "alice")

	// export: signed for this cloud's did:web.
	file := filepath.Join(t.TempDir(), "alice.json")
	cliA.must(t, "a long passphrase here\n", "export", "alice", "--out", file, "--passphrase-stdin")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	doc := exportedDocument(t, raw)
	if doc.Issuer != a.base || doc.CloudDID != aDID || doc.Account.HomeIssuer != a.base {
		t.Fatalf("export issuer %q cloud_did %q home %q, want %q and %q", doc.Issuer, doc.CloudDID, doc.Account.HomeIssuer, a.base, aDID)
	}

	// peer add of the cloud itself, by issuer or DID: refused, nothing stored.
	for _, self := range []string{a.base, a.base + "/", aDID} {
		r := cliA.run(t, "", "peer", "add", self)
		if r.code != exitError || !strings.Contains(r.stderr, "does not peer with itself") {
			t.Fatalf("peer add %s: exit %d, stderr %q; want exit 1 refusing to peer with itself", self, r.code, r.stderr)
		}
	}
	if out := cliA.must(t, "", "peer", "list"); !strings.Contains(out, "no peers") {
		t.Fatalf("peer list after refused self-peering:\n%s", out)
	}

	// peer add of another cloud names this cloud's issuer in its instruction.
	b := startLive(t, sqliteEnv(t))
	cliB := withoutIssuer(b.env)
	out := cliA.must(t, "", "peer", "add", b.base)
	if !strings.Contains(out, "once it adds "+a.base+" too") {
		t.Fatalf("peer add output does not name this cloud's issuer %s:\n%s", a.base, out)
	}

	// import: the account is homed on the importing cloud.
	cliB.must(t, "a long passphrase here\n", "import", file, "--passphrase-stdin")
	if got := showAccount(t, cliB, "alice"); got.HomeCloud != b.base || got.Replica {
		t.Fatalf("imported alice home_cloud = %q replica = %v, want %q", got.HomeCloud, got.Replica, b.base)
	}

	// A contradicting issuer, by flag or environment, is refused with both
	// names and changes nothing.
	const wrong = "http://127.0.0.1:1"
	for name, args := range map[string][]string{
		"user list":   {"user", "list", "--issuer", wrong},
		"user create": {"user", "create", "--username", "mallory", "--password-stdin", "--issuer", wrong},
		"keys list":   {"keys", "list", "--issuer", wrong},
		"peer list":   {"peer", "list", "--issuer", wrong},
	} {
		r := cliA.run(t, "correct horse battery\n", args...)
		if r.code != exitError || !strings.Contains(r.stderr, a.base) || !strings.Contains(r.stderr, wrong) {
			t.Errorf("%s with --issuer %s: exit %d, stderr %q; want exit 1 naming %s and %s", name, wrong, r.code, r.stderr, a.base, wrong)
		}
	}
	envWrong := withoutIssuer(a.env)
	envWrong["COMMONSID_ISSUER"] = wrong
	if r := envWrong.run(t, "", "user", "list"); r.code != exitError || !strings.Contains(r.stderr, a.base) || !strings.Contains(r.stderr, wrong) {
		t.Errorf("COMMONSID_ISSUER=%s: exit %d, stderr %q", wrong, r.code, r.stderr)
	}
	if r := cliA.run(t, "", "user", "show", "mallory"); r.code == 0 {
		t.Error("the refused user create made an account")
	}
}

// TestIssuerAdoptsEarlyAccounts: an account the command line makes before
// the first serve belongs to the issuer that serve records, not to the
// default name.
func TestIssuerAdoptsEarlyAccounts(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) { testIssuerAdoptsEarlyAccounts(t, mk(t)) })
	}
}

func testIssuerAdoptsEarlyAccounts(t *testing.T, e env) {
	e.must(t, "correct horse battery\n", "user", "create", "--username", "bob", "--password-stdin")
	// Before an issuer is known, commands that name this cloud to others
	// say so instead of using a made-up name.
	file := filepath.Join(t.TempDir(), "bob.json")
	if r := e.run(t, "a long passphrase here\n", "export", "bob", "--out", file, "--passphrase-stdin"); r.code != exitError || !strings.Contains(r.stderr, "--issuer") {
		t.Fatalf("export before any issuer: exit %d, stderr %q", r.code, r.stderr)
	}
	l := startLive(t, e)
	if got := showAccount(t, withoutIssuer(e), "bob"); got.HomeCloud != l.base || got.Replica {
		t.Fatalf("bob home_cloud = %q replica = %v, want %q", got.HomeCloud, got.Replica, l.base)
	}
}

// serveBriefly runs serve with the environment and extra flags until it
// is ready at base (then stops it) or exits; it returns the exit code and
// standard error.
func serveBriefly(t *testing.T, e env, base string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		code := runEnv(ctx, append([]string{"serve"}, args...), strings.NewReader(""), &out, &errb, e.get)
		done <- result{out.String(), errb.String(), code}
	}()
	for {
		select {
		case r := <-done:
			return r.code, r.stderr
		case <-time.After(50 * time.Millisecond):
		}
		if ready(base) {
			cancel()
			r := <-done
			return -1, r.stderr
		}
	}
}

// startReplica runs serve in-process on a free port as another replica of
// the cloud known as issuer (same database), as a load balancer would.
func startReplica(t *testing.T, e env, issuer string) *live {
	t.Helper()
	port := freePort(t)
	e["COMMONSID_ADDR"], e["COMMONSID_ISSUER"] = "127.0.0.1:"+port, issuer
	return serveInProcess(t, e, "http://127.0.0.1:"+port)
}

var readyClient = &http.Client{Timeout: 2 * time.Second}

func ready(base string) bool {
	resp, err := readyClient.Get(base + "/.well-known/openid-configuration")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// TestIssuerRename: serve refuses to rename a cloud that has accounts
// homed under its recorded issuer, saying what it would break, unless
// told --change-issuer; then the accounts move under the new name.
func TestIssuerRename(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) { testIssuerRename(t, mk(t)) })
	}
}

func testIssuerRename(t *testing.T, e env) {
	var first string
	t.Run("first serve", func(t *testing.T) {
		l := startLive(t, e)
		first = l.base
		withoutIssuer(e).must(t, "correct horse battery\n", "user", "create", "--username", "carol", "--password-stdin")
	})
	port := freePort(t)
	second := "http://127.0.0.1:" + port
	e2 := withoutIssuer(e)
	e2["COMMONSID_ADDR"], e2["COMMONSID_ISSUER"] = "127.0.0.1:"+port, second
	code, stderr := serveBriefly(t, e2, second)
	if code != exitError || !strings.Contains(stderr, first) || !strings.Contains(stderr, second) ||
		!strings.Contains(stderr, "1 accounts homed here") || !strings.Contains(stderr, "--change-issuer") {
		t.Fatalf("serve under a new issuer: exit %d, stderr %q; want exit 1 naming both issuers, the account and --change-issuer", code, stderr)
	}
	if got := showAccount(t, withoutIssuer(e), "carol"); got.HomeCloud != first {
		t.Fatalf("refused rename changed carol's home to %q", got.HomeCloud)
	}
	if code, stderr := serveBriefly(t, e2, second, "--change-issuer"); code != -1 {
		t.Fatalf("serve --change-issuer: exit %d before it was ready: %s", code, stderr)
	}
	if got := showAccount(t, withoutIssuer(e), "carol"); got.HomeCloud != second || got.Replica {
		t.Fatalf("after the rename carol home_cloud = %q replica = %v, want %q", got.HomeCloud, got.Replica, second)
	}
}

// TestReadOnlyNoCloud: a command that only looks, pointed at a folder that
// holds no cloud, says where it looked and creates nothing there.
func TestReadOnlyNoCloud(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"user", "list"}, {"user", "show", "alice"}, {"client", "list"}, {"client", "show", "x"},
		{"keys", "list"}, {"peer", "list"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			e := sqliteEnv(t)
			dir := e["COMMONSID_DATA"]
			r := e.run(t, "", args...)
			if r.code != exitError || !strings.Contains(r.stderr, dir) || !strings.Contains(r.stderr, "no cloud") {
				t.Fatalf("exit %d, stderr %q; want exit 1 naming %s", r.code, r.stderr, dir)
			}
			if _, err := os.Stat(filepath.Join(dir, dbFile)); !os.IsNotExist(err) {
				t.Fatalf("a database was left behind: %v", err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("the data folder was created: %v", err)
			}
		})
	}
	// A PostgreSQL database without a cloud is named, gets no tables, and
	// the data folder (for the key file) is not left behind.
	t.Run("postgres", func(t *testing.T) {
		e := postgresEnv(t)
		r := e.run(t, "", "user", "list")
		if r.code != exitError || !strings.Contains(r.stderr, "no cloud in database postgres://") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if _, err := os.Stat(e["COMMONSID_DATA"]); !os.IsNotExist(err) {
			t.Fatalf("the data folder was created: %v", err)
		}
		if r := e.run(t, "", "migrate", "status"); r.code != 0 || strings.Contains(r.stdout, " applied ") {
			t.Fatalf("the refused command migrated the database:\n%s", r.stdout)
		}
	})
	// An existing but empty folder is named too and stays empty.
	e := sqliteEnv(t)
	os.MkdirAll(e["COMMONSID_DATA"], 0o700)
	if r := e.run(t, "", "user", "list"); r.code != exitError || !strings.Contains(r.stderr, e["COMMONSID_DATA"]) {
		t.Fatalf("empty folder: exit %d, stderr %q", r.code, r.stderr)
	}
	if ents, _ := os.ReadDir(e["COMMONSID_DATA"]); len(ents) != 0 {
		t.Fatalf("files left in the empty folder: %v", ents)
	}
}
