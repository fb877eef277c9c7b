package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/portable"
)

// The person owns the identity: scenarios on three did:webvh clouds on
// loopback (A and C on SQLite, B on PostgreSQL), peers of each other,
// witnessing every account's log. TestMoveWebVH (A stopped, replay on C),
// TestDIDHome (the old home comes back) and TestRecoverAtPeer (recovery
// with the kit) show the others.

const ownershipPassword = "correct horse battery"

// commons is three webvh clouds peered with each other.
type commons struct {
	a, b, c       *cloudProc
	clA, clB, clC *cloud
	members       *webvh.Witness
}

func (cm *commons) all() []*cloud { return []*cloud{cm.clA, cm.clB, cm.clC} }

// startCommons starts A (SQLite), B (PostgreSQL) and C (SQLite) with
// did:webvh accounts and a witness worker every second, peered with each
// other.
func startCommons(tb testing.TB) *commons {
	tb.Helper()
	envs := []env{sqliteEnv(tb), postgresEnv(tb), sqliteEnv(tb)}
	var procs []*cloudProc
	for _, e := range envs {
		e["COMMONSID_DID_WITNESS_INTERVAL"] = "1s"
		procs = append(procs, startWebVHCloudTB(tb, e))
	}
	for _, x := range procs {
		for _, y := range procs {
			if x != y {
				x.env.must(tb, "", "peer", "add", y.base)
			}
		}
	}
	cm := &commons{a: procs[0], b: procs[1], c: procs[2]}
	cm.clA, cm.clB, cm.clC = openTestCloud(tb, cm.a.live()), openTestCloud(tb, cm.b.live()), openTestCloud(tb, cm.c.live())
	var ids []string
	for _, p := range procs {
		ids = append(ids, witnessIDOf(tb, p.base))
	}
	cm.members = identity.WitnessConfig(ids)
	if cm.members.Threshold != 2 || len(cm.members.Witnesses) != 3 {
		tb.Fatalf("witness configuration of three members: %+v", cm.members)
	}
	return cm
}

// startWebVHCloudTB is startWebVHCloud for tests and benchmarks: the cloud
// on 127.0.0.1 behind a reverse proxy whose port its localhost issuer names.
func startWebVHCloudTB(tb testing.TB, e env) *cloudProc {
	tb.Helper()
	port := freePort(tb)
	target, _ := url.Parse("http://127.0.0.1:" + port)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0) // "connection refused" while the cloud is stopped
	proxy := httptest.NewServer(rp)
	tb.Cleanup(func() {
		proxy.CloseClientConnections()
		proxy.Close()
	})
	pu, _ := url.Parse(proxy.URL)
	e["COMMONSID_ADDR"] = "127.0.0.1:" + port
	e["COMMONSID_ISSUER"] = "http://localhost:" + pu.Port()
	e["COMMONSID_ACCOUNT_DID"] = "webvh"
	c := &cloudProc{t: tb, env: e, base: e["COMMONSID_ISSUER"], logs: &lockedBuffer{}}
	c.start()
	tb.Cleanup(func() {
		c.stop()
		if tb.Failed() {
			tb.Logf("log of %s:\n%s", c.base, c.logs.String())
		}
	})
	return c
}

func witnessIDOf(tb testing.TB, base string) string {
	tb.Helper()
	resp, err := http.Get(base + "/.well-known/openid-configuration")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var meta struct {
		Witness federation.WitnessService `json:"federation_witness"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil || meta.Witness.ID == "" {
		tb.Fatalf("discovery of %s: no federation_witness (%v)", base, err)
	}
	return meta.Witness.ID
}

// waitUntil polls cond every 5 ms until it holds and returns how long that
// took; it fails after limit.
func waitUntil(tb testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			tb.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// createNoKit makes an account without a recovery kit on cl (its
// custodial key controls the log) and returns its DID.
func createNoKit(tb testing.TB, cl *cloudProc, handle string) string {
	tb.Helper()
	id := lastLine(cl.env.must(tb, ownershipPassword+"\n", "user", "create", "--username", handle, "--email", handle+"@example.org", "--no-recovery-kit", "--password-stdin"))
	if !identity.IsWebVH(id) {
		tb.Fatalf("account %s is not did:webvh", id)
	}
	return id
}

// witnessedEverywhere waits until every cloud holds the account's log
// witnessed by the three members.
func (cm *commons) witnessedEverywhere(tb testing.TB, account string) {
	tb.Helper()
	waitUntil(tb, 30*time.Second, "the log of "+account+" witnessed by the members on every cloud", func() bool {
		for _, cl := range cm.all() {
			if _, ok := witnessedBy(context.Background(), cl, account, cm.members); !ok {
				return false
			}
		}
		return true
	})
}

// sameHead reports whether every cloud holds the same witnessed log of
// account, whose head names home, under the account's first DID.
func (cm *commons) sameHead(account, home string) bool {
	var first *identity.DIDLog
	for _, cl := range cm.all() {
		l, ok := witnessedBy(context.Background(), cl, account, cm.members)
		if !ok || l.DID != account || l.HomeIssuer != home {
			return false
		}
		if h, _, err := identity.IssuerOfWebVH(l.CurrentDID); err != nil || h != home {
			return false
		}
		if first == nil {
			first = l
		} else if l.Version != first.Version || l.CurrentDID != first.CurrentDID || !bytes.Equal(l.Log, first.Log) {
			return false
		}
	}
	return true
}

// assertAccountDID checks that every cloud files the account's log under
// its first DID, and finds the account by its current DID.
func (cm *commons) assertAccountDID(t *testing.T, account string) {
	t.Helper()
	ctx := context.Background()
	for i, cl := range cm.all() {
		l, err := cl.db.GetDIDLog(ctx, account)
		if err != nil || l.DID != account {
			t.Fatalf("cloud %d: did_logs.account_did of %s: %+v %v", i, account, l, err)
		}
		if got, err := cl.db.AccountForDID(ctx, l.CurrentDID); err != nil || got != account {
			t.Fatalf("cloud %d: the current DID %s maps to account %q (%v), want %s", i, l.CurrentDID, got, err, account)
		}
	}
}

// cloudKID returns the key id (the fragment) of the exporting cloud's
// signature of an export file.
func cloudKID(t *testing.T, file []byte) string {
	t.Helper()
	var jws struct {
		Signatures []struct {
			Protected string `json:"protected"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(file, &jws); err != nil || len(jws.Signatures) != 2 {
		t.Fatalf("export file: %d signatures, %v", len(jws.Signatures), err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(jws.Signatures[1].Protected)
	var h struct {
		Kid string `json:"kid"`
	}
	if err != nil || json.Unmarshal(raw, &h) != nil {
		t.Fatalf("the cloud signature's header: %v", err)
	}
	_, frag, ok := strings.Cut(h.Kid, "#")
	if !ok || frag == "" {
		t.Fatalf("the cloud signature's kid %q", h.Kid)
	}
	return frag
}

// movedOnA waits until A, the account's old home, has marked it moved to
// home.
func (cm *commons) movedOnA(t *testing.T, account, home string) {
	t.Helper()
	var last string
	ok := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		a, err := cm.clA.db.GetAccount(context.Background(), account)
		if err == nil && a.Status == identity.StatusMoved && a.HomeIssuer == home {
			ok = true
			break
		}
		if err == nil {
			last = fmt.Sprintf("status %s, home %s", a.Status, a.HomeIssuer)
		} else {
			last = err.Error()
		}
	}
	if !ok {
		t.Fatalf("%s not moved to %s on A: %s", account, home, last)
	}
	// Once A has read the new home's events about the account (which it
	// does not share with the federation), A still keeps it as moved and
	// serves its log, with the move entry, at the old location.
	var homeDB *cloud
	for _, cl := range cm.all() {
		if cl.cfg.Issuer == home {
			homeDB = cl
		}
	}
	seq, err := homeDB.db.LastEventSeq(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, cm.clA, home, seq)
	if a, err := cm.clA.db.GetAccount(context.Background(), account); err != nil || a.Status != identity.StatusMoved || a.HomeIssuer != home {
		t.Fatalf("%s on A after the new home's events: %+v %v", account, a, err)
	}
	parsed, _ := webvh.ParseDID(account)
	resp, err := http.Get(cm.a.base + "/accounts/" + parsed.Path[len(parsed.Path)-1] + "/did.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if res, err := webvh.Open(served, webvh.Options{}); resp.StatusCode != 200 || err != nil || res.Result().DID == account {
		t.Fatalf("A's did.jsonl of %s after the move: %d %v", account, resp.StatusCode, err)
	} else if h, _, _ := identity.IssuerOfWebVH(res.Result().DID); h != home {
		t.Fatalf("A serves a log whose head names %s, want %s", h, home)
	}
}

// services are a pairwise and a public-subject service registered on one
// cloud, at redirect URIs shared by the same services on other clouds (so
// the same sector).
type services struct{ notes, wiki *rp }

func registerServices(t *testing.T, cl *cloudProc, tag string) services {
	t.Helper()
	notes := newRPAt(t, cl.live(), "notes", "http://127.0.1."+tag+":9/notes/callback")
	wiki := newRP(t, cl.live(), "wiki", map[string]any{"redirect_uris": []string{"http://127.0.2." + tag + ":9/wiki/callback"}, "subject_type": "public"})
	wiki.redirect, wiki.conf.RedirectURL = "http://127.0.2."+tag+":9/wiki/callback", "http://127.0.2."+tag+":9/wiki/callback"
	return services{notes, wiki}
}

// subsAt signs alice in to both services with a fresh browser and returns
// the pairwise and the public sub.
func subsAt(t *testing.T, s services) (pairwise, public string) {
	t.Helper()
	br := newFedBrowser(t)
	pairwise, _ = subAt(t, br, s.notes, ownershipPassword)
	public, _ = subAt(t, br, s.wiki, ownershipPassword)
	return pairwise, public
}

// brokeredSubs signs alice in to both services, on a cloud that is not
// her home, through her home, and returns the pairwise and the public sub.
func brokeredSubs(t *testing.T, s services, home string) (pairwise, public string) {
	t.Helper()
	br := newFedBrowser(t)
	v := oauth2.GenerateVerifier()
	p := brokeredSignIn(t, br, s.notes.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v)), home, "alice", ownershipPassword, nil)
	pairwise, _ = exchangeSub(t, s.notes, p, v)
	v = oauth2.GenerateVerifier()
	p = br.answerConsent(br.get(s.wiki.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v))), nil)
	public, _ = exchangeSub(t, s.wiki, p, v)
	return pairwise, public
}

func exportAccount(t *testing.T, cl *cloudProc, handle, file string) {
	t.Helper()
	cl.env.must(t, "a long passphrase here\n", "export", handle, "--out", file, "--passphrase-stdin", "--include-password")
}

// assertNotHomedAt checks that cl has no account of its own for account
// and recorded no import of it.
func assertNotHomedAt(t *testing.T, cl *cloud, base, account string) {
	t.Helper()
	ctx := context.Background()
	if a, err := cl.db.GetAccount(ctx, account); err == nil && a.HomeIssuer == base {
		t.Fatalf("%s holds %s as its own account: %+v", base, account, a)
	}
	if l, err := cl.db.GetDIDLog(ctx, account); err == nil && l.HomeIssuer == base {
		t.Fatalf("%s's log of %s names it as home (version %d)", base, account, l.Version)
	}
	if acts, err := cl.db.ListActivity(ctx, account, 0, 100); err == nil {
		for _, e := range acts {
			if e.Kind == "imported" {
				t.Fatalf("%s recorded an import of %s", base, account)
			}
		}
	}
}

// TestOwnershipMoveKeysRetired: after alice's export, A rotates its
// signing keys and retires the one that signed the file; A is up but can
// no longer vouch for it. Importing on B still moves her (the output says
// the cloud signature could not be checked: the authority is the log),
// every cloud ends with the same witnessed head naming B under her first
// DID, A marks her moved, and the services keep their subs: the public one
// her first DID, the pairwise one the sub A gave (the secret travelled).
func TestOwnershipMoveKeysRetired(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped with -short: runs three clouds")
	}
	ctx := context.Background()
	cm := startCommons(t)
	alice := createNoKit(t, cm.a, "alice")
	cm.witnessedEverywhere(t, alice)
	onA := registerServices(t, cm.a, "11")
	subA, pubA := subsAt(t, onA)
	if pubA != alice || subA == alice || strings.HasPrefix(subA, "did:") {
		t.Fatalf("subs on A: pairwise %q, public %q (want %s)", subA, pubA, alice)
	}

	file := filepath.Join(t.TempDir(), "alice.json")
	exportAccount(t, cm.a, "alice", file)
	raw, _ := os.ReadFile(file)
	kid := cloudKID(t, raw)
	cm.a.env.must(t, "", "keys", "rotate")
	var listed []keyJSON
	if err := json.Unmarshal([]byte(cm.a.env.must(t, "", "keys", "list", "--json")), &listed); err != nil {
		t.Fatal(err)
	}
	retired := false
	for _, k := range listed {
		if k.Status == "inactive" {
			cm.a.env.must(t, "", "keys", "retire", "--", k.KID)
			retired = retired || k.KID == kid
		}
	}
	if !retired {
		t.Fatalf("the key %s that signed the export was not retired: %+v", kid, listed)
	}
	resp, err := http.Get(cm.a.base + "/.well-known/did.json")
	if err != nil {
		t.Fatal(err)
	}
	published, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || bytes.Contains(published, []byte(kid)) {
		t.Fatalf("A's did:web document (%d) still has the retired key %s: %s", resp.StatusCode, kid, published)
	}

	start := time.Now()
	out := cm.b.env.must(t, "a long passphrase here\n", "import", file, "--passphrase-stdin")
	if lastLine(out) != alice || !strings.Contains(out, "moved from "+cm.a.base) || !strings.Contains(out, "could not be checked") {
		t.Fatalf("import on B: %s", out)
	}
	took := waitUntil(t, 20*time.Second, "every cloud holds the head naming B", func() bool { return cm.sameHead(alice, cm.b.base) })
	t.Logf("import %s, every cloud agreeing %s after it returned", time.Since(start)-took, took)
	assertHomedAt(ctx, t, cm.clB, alice, cm.b.base, cm.members)
	cm.movedOnA(t, alice, cm.b.base)
	cm.assertAccountDID(t, alice)

	onB := registerServices(t, cm.b, "11")
	if sub, pub := subsAt(t, onB); sub != subA || pub != alice {
		t.Fatalf("subs on B after the move: pairwise %q (on A %q), public %q (want %s)", sub, subA, pub, alice)
	}
}

// TestOwnershipConcurrentMoves: one export of an account without a kit
// is imported on B and on C at the same moment. Exactly one import
// succeeds; the other is refused (the witnesses, asked in the same order
// by both, confirmed the other move first) and writes nothing; within
// seconds A, B and C hold the same head naming the winner, and the
// loser has no account of its own for it.
func TestOwnershipConcurrentMoves(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped with -short: runs three clouds")
	}
	ctx := context.Background()
	cm := startCommons(t)
	alice := createNoKit(t, cm.a, "alice")
	cm.witnessedEverywhere(t, alice)
	file := filepath.Join(t.TempDir(), "alice.json")
	exportAccount(t, cm.a, "alice", file)
	version := func(cl *cloud) int {
		l, err := cl.db.GetDIDLog(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		return l.Version
	}
	exported := version(cm.clA)

	targets := []*cloudProc{cm.b, cm.c}
	results := make([]result, 2)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	took := make([]time.Duration, 2)
	t0 := time.Now()
	for i, x := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			results[i] = x.env.run(t, "a long passphrase here\n", "import", file, "--passphrase-stdin")
			took[i] = time.Since(t0)
		}()
	}
	close(gate)
	wg.Wait()
	var winner, loser *cloudProc
	var lost result
	for i, r := range results {
		if r.code == 0 {
			if winner != nil {
				t.Fatalf("both imports succeeded:\nB: %s\nC: %s", results[0].stdout, results[1].stdout)
			}
			winner = targets[i]
		} else {
			loser, lost = targets[i], r
		}
	}
	if winner == nil {
		t.Fatalf("both imports failed:\nB: %s\nC: %s", results[0].stderr, results[1].stderr)
	}
	if !strings.Contains(lost.stderr, "confirmed first") && !strings.Contains(lost.stderr, "moved since") {
		t.Fatalf("the losing import on %s: %+v", loser.base, lost)
	}
	t.Logf("winner %s; the loser %s said: %s (B returned after %s, C after %s)", winner.base, loser.base, strings.TrimSpace(lost.stderr), took[0], took[1])
	clLoser := openTestCloud(t, loser.live())
	assertNotHomedAt(t, clLoser, loser.base, alice)

	waitUntil(t, 20*time.Second, "every cloud holds the head naming the winner", func() bool { return cm.sameHead(alice, winner.base) })
	if v := version(cm.clA); v != exported+1 {
		t.Fatalf("the head is version %d, want the one move after %d", v, exported)
	}
	assertHomedAt(ctx, t, openTestCloud(t, winner.live()), alice, winner.base, cm.members)
	assertNotHomedAt(t, clLoser, loser.base, alice)
	cm.movedOnA(t, alice, winner.base)
	cm.assertAccountDID(t, alice)
	// The loser, asked again, now says the export is superseded.
	if r := loser.env.run(t, "a long passphrase here\n", "import", file, "--passphrase-stdin"); r.code == 0 || !strings.Contains(r.stderr, "home "+winner.base) {
		t.Fatalf("a second import on the loser: %+v", r)
	}
	assertNotHomedAt(t, clLoser, loser.base, alice)

	// bob: both imports are held until each has read the latest log and
	// built its move entry, so neither sees the other's move before asking
	// the witnesses: the witnesses alone decide.
	bob := createNoKit(t, cm.a, "bob")
	cm.witnessedEverywhere(t, bob)
	bobFile := filepath.Join(t.TempDir(), "bob.json")
	exportAccount(t, cm.a, "bob", bobFile)
	raw, _ := os.ReadFile(bobFile)
	var arrived sync.WaitGroup
	arrived.Add(2)
	both := make(chan struct{})
	go func() { arrived.Wait(); close(both) }()
	errs := make([]error, 2)
	for i, cl := range []*cloud{cm.clB, cm.clC} {
		svc := cl.portable()
		members := svc.MemberWitnesses
		svc.MemberWitnesses = func(ctx context.Context) ([]string, error) {
			arrived.Done()
			select {
			case <-both:
			case <-time.After(15 * time.Second):
				return nil, errors.New("the other import never reached the witnesses")
			}
			return members(ctx)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = svc.Import(ctx, raw, "a long passphrase here", portable.ImportOptions{})
		}()
	}
	wg.Wait()
	winner, loser = nil, nil
	var lostErr error
	for i, err := range errs {
		if err == nil {
			if winner != nil {
				t.Fatal("both held imports of bob succeeded")
			}
			winner = targets[i]
		} else {
			loser, lostErr = targets[i], err
		}
	}
	if winner == nil {
		t.Fatalf("both held imports of bob failed: B %v; C %v", errs[0], errs[1])
	}
	if !errors.Is(lostErr, portable.ErrMoveLost) || !errors.Is(lostErr, federation.ErrWitnessFork) {
		t.Fatalf("the losing held import on %s: %v", loser.base, lostErr)
	}
	t.Logf("bob: winner %s; the loser %s: %v", winner.base, loser.base, lostErr)
	clLoser = openTestCloud(t, loser.live())
	assertNotHomedAt(t, clLoser, loser.base, bob)
	waitUntil(t, 20*time.Second, "every cloud holds bob's head naming the winner", func() bool { return cm.sameHead(bob, winner.base) })
	assertNotHomedAt(t, clLoser, loser.base, bob)
	cm.movedOnA(t, bob, winner.base)
	cm.assertAccountDID(t, bob)
}

// TestOwnershipRotatedKitOldExport: alice has a recovery kit. She exports
// (file 1), then replaces her kit from the dashboard: the new person key is
// witnessed and reaches every cloud. Importing file 1 on B with the OLD
// phrase is refused (the old kit is no longer a person key of the log) and
// writes nothing; with the new phrase the same file moves her, and the
// services keep their subs.
func TestOwnershipRotatedKitOldExport(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped with -short: runs three clouds")
	}
	ctx := context.Background()
	cm := startCommons(t)
	br := newFedBrowser(t)
	p := br.post(cm.a.base+"/signup", url.Values{"handle": {"alice"}, "password": {ownershipPassword}, "email": {"alice@example.org"},
		"return_to": {"/account"}, "federation_sharing": {"all"}})
	oldPhrase, alice := recoveryKitPage(t, p)
	if p := passRecoveryKit(br, cm.a.base, p); p.url.Path != "/account" {
		t.Fatalf("sign-up: %d %s", p.status, p.url)
	}
	cm.witnessedEverywhere(t, alice)
	onA := registerServices(t, cm.a, "12")
	subA, pubA := subsAt(t, onA)
	if pubA != alice || subA == alice {
		t.Fatalf("subs on A: pairwise %q, public %q", subA, pubA)
	}
	// A service on C, a peer: the sign-in goes through her home.
	onC := registerServices(t, cm.c, "13")
	subC, pubC := brokeredSubs(t, onC, cm.a.base)
	if pubC != alice || subC == alice || subC == subA {
		t.Fatalf("subs on C: pairwise %q, public %q", subC, pubC)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "alice.json")
	exportAccount(t, cm.a, "alice", file)
	raw, _ := os.ReadFile(file)
	fileVersion := exportedDocument(t, raw).DIDLogVersion

	// The kit is replaced: AppendPersonKey signed by the old kit key,
	// witnessed, published.
	p = br.post(cm.a.base+"/account/recovery/rotate", url.Values{"phrase": {oldPhrase}})
	newPhrase, shown := recoveryKitPage(t, p)
	if shown != alice || newPhrase == oldPhrase {
		t.Fatalf("the rotation page: %d %s", p.status, p.body)
	}
	newKey := multikeyOf(t, newPhrase)
	waitUntil(t, 30*time.Second, "the rotated kit witnessed on every cloud", func() bool {
		if !cm.sameHead(alice, cm.a.base) {
			return false
		}
		l, _ := cm.clB.db.GetDIDLog(ctx, alice)
		res, err := webvh.Open(l.Log, webvh.Options{})
		return err == nil && l.Version > fileVersion && slices.Equal(identity.PersonKeys(res.Result()), []string{newKey})
	})
	before, err := cm.clB.db.GetDIDLog(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}

	oldFile, newFile := filepath.Join(dir, "old-phrase"), filepath.Join(dir, "new-phrase")
	os.WriteFile(oldFile, []byte(oldPhrase+"\n"), 0o600)
	os.WriteFile(newFile, []byte(newPhrase+"\n"), 0o600)
	r := cm.b.env.run(t, "a long passphrase here\n", "import", file, "--passphrase-stdin", "--recovery-phrase-file", oldFile)
	if r.code == 0 || !strings.Contains(r.stderr, "not the one of this account's recovery kit") {
		t.Fatalf("import of file 1 with the old phrase: %+v", r)
	}
	after, err := cm.clB.db.GetDIDLog(ctx, alice)
	if err != nil || after.Version != before.Version || !bytes.Equal(after.Log, before.Log) || after.HomeIssuer != cm.a.base {
		t.Fatalf("B's log changed after the refused import: %+v %v", after, err)
	}
	assertNotHomedAt(t, cm.clB, cm.b.base, alice)
	if cm.sameHead(alice, cm.a.base) == false {
		t.Fatal("the refused import changed a cloud's log")
	}

	// The same file with the new phrase: the file's log is a prefix of the
	// latest one, and the person's current key signs the move.
	out := cm.b.env.must(t, "a long passphrase here\n", "import", file, "--passphrase-stdin", "--recovery-phrase-file", newFile)
	if lastLine(out) != alice || !strings.Contains(out, "signed with the recovery kit") {
		t.Fatalf("import with the new phrase: %s", out)
	}
	waitUntil(t, 20*time.Second, "every cloud holds the head naming B", func() bool { return cm.sameHead(alice, cm.b.base) })
	assertHomedAt(ctx, t, cm.clB, alice, cm.b.base, cm.members)
	cm.assertAccountDID(t, alice)
	onB := registerServices(t, cm.b, "12")
	if sub, pub := subsAt(t, onB); sub != subA || pub != alice {
		t.Fatalf("subs on B after the move: pairwise %q (on A %q), public %q (want %s)", sub, subA, pub, alice)
	}
	// C's services, now through her new home, see what they saw.
	waitUntil(t, 20*time.Second, "C's replica of alice follows her to B", func() bool {
		a, err := cm.clC.db.GetAccount(ctx, alice)
		return err == nil && a.HomeIssuer == cm.b.base
	})
	if sub, pub := brokeredSubs(t, onC, cm.b.base); sub != subC || pub != alice {
		t.Fatalf("subs on C after the move: pairwise %q (before %q), public %q (want %s)", sub, subC, pub, alice)
	}
}

// TestOwnershipRogueFork: C, a member cloud, turns hostile with a copy of
// the custodial key of alice (homed on A, with a kit). Through its own
// Federation it asks the honest witnesses (A, B) — and its own witness
// service, which runs honest code — to sign a different entry at a version
// already witnessed (a fork), then an entry signed by the custodial key
// alone that removes her person key. Every witness refuses both (409 fork,
// 409 unauthorized_change) and logs it; no did_logs row changes anywhere.
func TestOwnershipRogueFork(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped with -short: runs three clouds")
	}
	ctx := context.Background()
	cm := startCommons(t)
	out := cm.a.env.must(t, ownershipPassword+"\n", "user", "create", "--username", "alice", "--password-stdin")
	alice := lastLine(out)
	if !strings.Contains(out, "recovery phrase") {
		t.Fatalf("user create printed no recovery kit: %s", out)
	}
	cm.witnessedEverywhere(t, alice)
	waitUntil(t, 20*time.Second, "the same head on every cloud", func() bool { return cm.sameHead(alice, cm.a.base) })
	rows := map[*cloud]*identity.DIDLog{}
	for _, cl := range cm.all() {
		rows[cl], _ = cl.db.GetDIDLog(ctx, alice)
	}
	head := rows[cm.clA]
	acct, err := cm.clA.db.GetAccount(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	custodial, err := cm.clA.accounts.SigningKey(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	full, err := webvh.Open(head.Log, webvh.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(identity.PersonKeys(full.Result())) != 1 || head.Version < 2 {
		t.Fatalf("alice's log: version %d, person keys %v", head.Version, identity.PersonKeys(full.Result()))
	}

	// A fork: another entry at the last witnessed version.
	lines := bytes.SplitAfter(bytes.TrimRight(head.Log, "\n"), []byte("\n"))
	prefix, err := webvh.Open(bytes.Join(lines[:len(lines)-1], nil), webvh.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ttl := int64(7)
	fork, err := prefix.Update(webvh.UpdateOptions{TTL: &ttl, Time: nextTime(full), Signer: custodial.Private})
	if err != nil {
		t.Fatal(err)
	}
	if fork.Result().Metadata.VersionNumber != head.Version || fork.Result().Metadata.VersionID == full.Result().Metadata.VersionID {
		t.Fatalf("the fork is not another entry at version %d", head.Version)
	}
	// The person's key removed by the custodial key alone, after the head.
	custodialPub := custodial.Private.Public().(ed25519.PublicKey)
	strip, err := full.Update(webvh.UpdateOptions{UpdateKeys: []ed25519.PublicKey{custodialPub}, Time: nextTime(full), Signer: custodial.Private})
	if err != nil {
		t.Fatal(err)
	}

	clC := cm.clC
	fedC := clC.federation()
	fedC.HTTP = http.DefaultClient
	for _, w := range []*cloudProc{cm.a, cm.b} {
		peer, err := clC.db.GetPeer(ctx, w.base)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fedC.RequestWitness(ctx, peer, fork.Bytes()); !errors.Is(err, federation.ErrWitnessFork) {
			t.Fatalf("the fork sent to %s: %v", w.base, err)
		}
		if _, err := fedC.RequestWitness(ctx, peer, strip.Bytes()); !errors.Is(err, identity.ErrPersonKeyRequired) {
			t.Fatalf("the person key removed, sent to %s: %v", w.base, err)
		}
	}
	// C's own witness service refuses them too, whoever asks.
	if _, err := fedC.Witness(ctx, cm.a.base, fork.Bytes()); !errors.Is(err, federation.ErrWitnessFork) {
		t.Fatalf("C's witness, the fork: %v", err)
	}
	if _, err := fedC.Witness(ctx, cm.a.base, strip.Bytes()); !errors.Is(err, identity.ErrPersonKeyRequired) {
		t.Fatalf("C's witness, the person key removed: %v", err)
	}
	// Collecting proofs for them stops at the first refusal.
	if _, err := fedC.CollectWitness(ctx, strip.Bytes(), head.Witness); err == nil {
		t.Fatal("proofs collected for the entry that removes the person key")
	}
	for _, w := range []*cloudProc{cm.a, cm.b} {
		logs := w.logs.String()
		if !strings.Contains(logs, "witness: refused a forked DID log") || !strings.Contains(logs, "witness: refused an unauthorized change of a DID log") {
			t.Fatalf("%s did not log the refusals:\n%s", w.base, logs)
		}
	}

	// A witness pass later, no cloud's row has changed.
	time.Sleep(2500 * time.Millisecond)
	for i, cl := range cm.all() {
		l, err := cl.db.GetDIDLog(ctx, alice)
		if err != nil || l.Version != rows[cl].Version || !bytes.Equal(l.Log, rows[cl].Log) || l.HomeIssuer != cm.a.base {
			t.Fatalf("cloud %d: alice's row changed: %+v %v", i, l, err)
		}
		res, err := webvh.Open(l.Log, webvh.Options{})
		if err != nil || len(identity.PersonKeys(res.Result())) != 1 {
			t.Fatalf("cloud %d: the person key is gone: %v", i, err)
		}
	}
}

// BenchmarkOwnershipMove measures moves of did:webvh accounts between
// three clouds on loopback (A and C on SQLite, B on PostgreSQL): the time
// from the start of the import on B until every cloud holds the witnessed
// head naming B (move-ms), the part of it after the import returned
// (agree-ms), and, with B stopped, the time C takes to resolve a moved
// account's DID from its peers' and its own copies (resolve-down-ms,
// median over every account, several times each).
func BenchmarkOwnershipMove(b *testing.B) {
	ctx := context.Background()
	cm := startCommons(b)
	dir := b.TempDir()
	var moves, agrees []time.Duration
	var moved []string
	i := 0
	for b.Loop() {
		b.StopTimer()
		handle := fmt.Sprintf("bench%d", i)
		i++
		id := createNoKit(b, cm.a, handle)
		cm.witnessedEverywhere(b, id)
		file := filepath.Join(dir, handle+".json")
		cm.a.env.must(b, "a long passphrase here\n", "export", handle, "--out", file, "--passphrase-stdin")
		b.StartTimer()
		start := time.Now()
		cm.b.env.must(b, "a long passphrase here\n", "import", file, "--passphrase-stdin")
		agree := waitUntil(b, time.Minute, "every cloud holds the head naming B", func() bool { return cm.sameHead(id, cm.b.base) })
		moves, agrees = append(moves, time.Since(start)), append(agrees, agree)
		l, err := cm.clB.db.GetDIDLog(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		moved = append(moved, l.CurrentDID)
	}
	b.StopTimer()
	fedC := cm.clC.federation()
	cm.b.stop()
	var resolves []time.Duration
	for range 3 {
		for _, id := range moved {
			start := time.Now()
			doc, err := fedC.Resolver.Resolve(ctx, id)
			if err != nil || doc.ID != id {
				b.Fatalf("resolve %s with its home down: %v", id, err)
			}
			resolves = append(resolves, time.Since(start))
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(moves, 0.5)), "move-ms")
	b.ReportMetric(ms(percentile(agrees, 0.5)), "agree-ms")
	b.ReportMetric(ms(percentile(resolves, 0.5)), "resolve-down-ms")
	b.ReportMetric(0, "ns/op")
}
