package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/store/sqlstore"
)

// dbBackup takes and restores a backup of one cloud's database, the way
// an operator would: SQLite with VACUUM INTO while the cloud serves (a
// consistent copy) and a file copy while it is stopped; PostgreSQL with
// CREATE DATABASE … TEMPLATE while it is stopped.
type dbBackup struct {
	t      *testing.T
	env    env
	sqlite string // the SQLite file
	copy   string // the SQLite backup file
	pgBase string // PostgreSQL: the server's maintenance database
	pgName string // PostgreSQL: the cloud's database
	pgCopy string // PostgreSQL: the backup database
}

func newDBBackup(t *testing.T, e env) *dbBackup {
	b := &dbBackup{t: t, env: e}
	if dsn := e["COMMONSID_DB"]; dsn != "" {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		b.pgName = strings.TrimPrefix(u.Path, "/")
		b.pgCopy = b.pgName + "_backup"
		u.Path = "/postgres"
		b.pgBase = u.String()
		t.Cleanup(func() { b.pg("DROP DATABASE IF EXISTS " + b.pgCopy + " WITH (FORCE)") })
		return b
	}
	b.sqlite = filepath.Join(e["COMMONSID_DATA"], "commonsid.db")
	b.copy = filepath.Join(t.TempDir(), "backup.db")
	return b
}

func (b *dbBackup) pg(stmts ...string) {
	b.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.pgBase)
	if err != nil {
		b.t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			b.t.Fatalf("%s: %v", s, err)
		}
	}
}

// take backs up the database; a PostgreSQL cloud must be stopped.
func (b *dbBackup) take() {
	b.t.Helper()
	if b.pgName != "" {
		b.pg("CREATE DATABASE " + b.pgCopy + " TEMPLATE " + b.pgName)
		return
	}
	db, err := sql.Open("sqlite", "file:"+b.sqlite+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`VACUUM INTO '` + b.copy + `'`); err != nil {
		b.t.Fatal(err)
	}
}

// restore puts the backup in place of the database; the cloud must be
// stopped. The data folder's other files stay as they are.
func (b *dbBackup) restore() {
	b.t.Helper()
	if b.pgName != "" {
		b.pg("DROP DATABASE "+b.pgName+" WITH (FORCE)", "CREATE DATABASE "+b.pgName+" TEMPLATE "+b.pgCopy)
		return
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(b.sqlite + suffix); err != nil && !os.IsNotExist(err) {
			b.t.Fatal(err)
		}
	}
	src, err := os.Open(b.copy)
	if err != nil {
		b.t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(b.sqlite, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		b.t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		b.t.Fatal(err)
	}
}

// TestRestoreResync: a home cloud A whose database is restored from a
// backup (SQLite, PostgreSQL) notices it at start and begins a new feed
// epoch; its peers B and C replay A's feed, drop what was made on A after
// the backup (an account, a service), keep the revocation made after it,
// and a consent revoked on A after the restore reaches both within 2 s.
// peer list on B shows the resync.
func TestRestoreResync(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped with -short: three clouds, a restart and a replay")
	}
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) { testRestoreResync(t, mk(t)) })
	}
}

type peerListed struct {
	Issuer string       `json:"issuer"`
	Cursor int64        `json:"cursor"`
	Feed   peerFeedJSON `json:"feed"`
}

func listedPeer(t *testing.T, e env, issuer string) peerListed {
	t.Helper()
	var ps []peerListed
	if err := json.Unmarshal([]byte(e.must(t, "", "peer", "list", "--json")), &ps); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Issuer == issuer {
			return p
		}
	}
	t.Fatalf("%s is not in peer list", issuer)
	return peerListed{}
}

func testRestoreResync(t *testing.T, envA env) {
	ctx := context.Background()
	a := startCloud(t, envA)
	b, c := startCloud(t, sqliteEnv(t)), startCloud(t, sqliteEnv(t))
	followers := []*cloudProc{b, c}
	for _, pair := range [][2]*cloudProc{{a, b}, {a, c}, {b, a}, {c, a}} {
		pair[0].env.must(t, "", "peer", "add", pair[1].base)
	}
	dbs := map[*cloudProc]*sqlstore.DB{b: openTestCloud(t, b.live()).db, c: openTestCloud(t, c.live()).db}
	feedStatus := func() feedStatusJSON {
		t.Helper()
		var st feedStatusJSON
		if err := json.Unmarshal([]byte(a.env.must(t, "", "feed", "status", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	caughtUp := func(what string) {
		t.Helper()
		head := feedStatus().Head
		for _, f := range followers {
			eventually(t, 10*time.Second, what, func() bool {
				p, err := dbs[f].GetPeer(ctx, a.base)
				return err == nil && p.Cursor >= head
			})
		}
	}

	const pw = "correct horse battery"
	lastLine(a.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--password-stdin"))
	home := newFedBrowser(t)
	share := func(user string) {
		t.Helper()
		br := newFedBrowser(t)
		if user == "alice" {
			br = home
		}
		if p := br.signIn(a.base, user, pw); p.url.Path != "/account" {
			t.Fatalf("sign in %s on A: %d %s", user, p.status, p.url)
		}
		if st, _, _ := br.api("PUT", a.base+"/account/api/privacy", map[string]any{"subject_mode": "pairwise", "fork_policy": "ask",
			"federation_sharing": "all", "activity_retention_days": 365, "consent_lifetime_days": 0, "claim_policy": map[string]string{}}); st != 200 {
			t.Fatalf("share %s on A: %d", user, st)
		}
	}
	share("alice")
	token := func(app *rp) string {
		t.Helper()
		v := oauth2.GenerateVerifier()
		p := home.authorize(app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v)), "alice", pw, nil)
		_, access := exchangeSub(t, app, p, v)
		return access
	}
	forum, notes := newRP(t, a.live(), "forum", nil), newRP(t, a.live(), "notes", nil)
	forumToken, notesToken := token(forum), token(notes)
	apis := map[*cloudProc]*rp{b: newRP(t, b.live(), "api", nil), c: newRP(t, c.live(), "api", nil)}
	active := func(f *cloudProc, tok string) bool {
		_, out := postForm(t, f.base+"/introspect", url.Values{"token": {tok}}, apis[f].conf.ClientID, apis[f].conf.ClientSecret)
		return out["active"] == true
	}
	caughtUp("a follower applies A's feed")
	for _, f := range followers {
		if !active(f, forumToken) || !active(f, notesToken) {
			t.Fatalf("%s does not honor A's tokens", f.base)
		}
	}

	// The backup.
	bk := newDBBackup(t, a.env)
	if bk.pgName != "" {
		a.stop()
		bk.take()
		a.start()
	} else {
		bk.take()
	}
	before := feedStatus()

	// After the backup: profile changes, a new shared account, a new
	// service, and a revocation.
	for i := range 5 {
		if st, _, _ := home.api("PUT", a.base+"/account/api/profile", map[string]any{"name": fmt.Sprintf("Alice %d", i), "email": ""}); st != 200 {
			t.Fatalf("profile update: %d", st)
		}
	}
	carol := lastLine(a.env.must(t, pw+"\n", "user", "create", "--username", "carol", "--password-stdin"))
	share("carol")
	late := newRP(t, a.live(), "late", nil)
	if st, _, _ := home.api("POST", a.base+"/account/api/services/"+notes.conf.ClientID+"/revoke", nil); st != 204 {
		t.Fatalf("revoke notes on A: %d", st)
	}
	caughtUp("a follower applies what followed the backup")
	for _, f := range followers {
		eventually(t, 2*time.Second, "the notes token refused on a follower", func() bool { return !active(f, notesToken) })
		if _, err := dbs[f].GetAccount(ctx, carol); err != nil {
			t.Fatalf("carol on %s: %v", f.base, err)
		}
		if _, err := dbs[f].RemoteService(ctx, a.base, late.conf.ClientID); err != nil {
			t.Fatalf("the late service on %s: %v", f.base, err)
		}
	}
	cursorBefore := listedPeer(t, b.env, a.base).Cursor
	if cursorBefore <= before.Head {
		t.Fatalf("B's cursor %d is not past the backup's head %d", cursorBefore, before.Head)
	}

	// A is restored from the backup and started again.
	a.stop()
	bk.restore()
	a.start()
	if !strings.Contains(a.logs.String(), "RESTORED DATABASE DETECTED") {
		t.Errorf("A did not log the restore:\n%s", a.logs.String())
	}
	after := feedStatus()
	if after.Epoch == before.Epoch || after.Head >= cursorBefore {
		t.Errorf("after the restore A is in epoch %s (was %s), head %d (peers' cursor %d)", after.Epoch, before.Epoch, after.Head, cursorBefore)
	}

	// Both followers resync: what A no longer has goes, the revocation
	// stays.
	for _, f := range followers {
		deadline := time.Now().Add(15 * time.Second)
		for {
			p := listedPeer(t, f.env, a.base)
			if p.Feed.Epoch == after.Epoch && p.Feed.Resyncs == 1 && !p.Feed.Resyncing {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s did not resync with A: %+v", f.base, p)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := dbs[f].GetAccount(ctx, carol); err == nil {
			t.Errorf("carol, made on A after the backup, is still on %s", f.base)
		}
		if _, err := dbs[f].RemoteService(ctx, a.base, late.conf.ClientID); err == nil {
			t.Errorf("the service registered on A after the backup is still known to %s", f.base)
		}
		if active(f, notesToken) {
			t.Errorf("%s honors again a token revoked before the restore", f.base)
		}
		if !active(f, forumToken) {
			t.Errorf("%s refuses a token A still honors", f.base)
		}
	}

	// A consent revoked on A after the restore reaches every peer within
	// 2 s.
	if p := home.signIn(a.base, "alice", pw); p.url.Path != "/account" {
		t.Fatalf("sign in on the restored A: %d %s", p.status, p.url)
	}
	if st, _, _ := home.api("POST", a.base+"/account/api/services/"+forum.conf.ClientID+"/revoke", nil); st != 204 {
		t.Fatalf("revoke forum on the restored A: %d", st)
	}
	start := time.Now()
	for _, f := range followers {
		eventually(t, 2*time.Second-time.Since(start), "the revocation made after the restore on "+f.base, func() bool { return !active(f, forumToken) })
	}
	t.Logf("revocation after the restore refused on every peer after %s", time.Since(start).Round(time.Millisecond))

	out := b.env.must(t, "", "peer", "list")
	if !strings.Contains(out, "LAST RESYNC") || !strings.Contains(out, "feed epoch changed") {
		t.Fatalf("peer list on B does not show the resync:\n%s", out)
	}
	if !strings.Contains(b.logs.String(), "resynced with a peer") {
		t.Errorf("B did not log the resync:\n%s", b.logs.String())
	}
}
