package main

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	cidoidc "github.com/onecommons/commonsid/oidc"
)

var recoveredDIDRE = regexp.MustCompile(`<code id="did">([^<]*)</code>`)

// TestRecoverAtPeer: three did:webvh clouds on loopback (A and C on
// SQLite, B on PostgreSQL), peers of each other. Alice signs up on A with
// a recovery kit, sharing her account with every cloud, and rotates the
// kit from her dashboard (the old phrase is then refused for another
// rotation). Once B holds her witnessed log, A is stopped and its database
// deleted. At B's /recover: an unknown DID, the old phrase and a stranger's
// phrase are refused readably, and so is the move while C is down too (too
// few witnesses); with the new phrase her account is made
// homed at B: the same account DID (the move witnessed by B and C), her
// handle and profile from B's replica, and the same pairwise sub at a
// service of B as the one computed from her secret on A before. A second
// recovery is refused (already homed here); `user show` on B finds her by
// the new DID and lists both; C learns that B is her home.
func TestRecoverAtPeer(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped with -short: runs three clouds")
	}
	ctx := context.Background()
	envs := []env{sqliteEnv(t), postgresEnv(t), sqliteEnv(t)}
	for _, e := range envs {
		e["COMMONSID_DID_WITNESS_INTERVAL"] = "1s"
		e["COMMONSID_LOG_LEVEL"] = "info"
	}
	a, _ := startWebVHCloud(t, envs[0])
	b, _ := startWebVHCloud(t, envs[1])
	c, _ := startWebVHCloud(t, envs[2])
	for _, x := range []*cloudProc{a, b, c} {
		for _, y := range []*cloudProc{a, b, c} {
			if x != y {
				x.env.must(t, "", "peer", "add", y.base)
			}
		}
	}
	members := identity.WitnessConfig([]string{discoveredWitness(t, a.base).ID, discoveredWitness(t, b.base).ID, discoveredWitness(t, c.base).ID})
	clA, clB, clC := openTestCloud(t, a.live()), openTestCloud(t, b.live()), openTestCloud(t, c.live())
	svc := newRP(t, b.live(), "notes", nil)

	const pw = "correct horse battery"
	br := newBrowser(t)
	p := br.post(a.base+"/signup", url.Values{"handle": {"alice"}, "password": {pw}, "name": {"Alice Liddell"},
		"email": {"alice@example.org"}, "return_to": {"/account"}, "federation_sharing": {"all"}})
	oldPhrase, alice := recoveryKitPage(t, p)
	if p := passRecoveryKit(br, a.base, p); p.url.Path != "/account" {
		t.Fatalf("sign-up: %d %s", p.status, p.url)
	}
	eventually(t, 30*time.Second, "alice's log witnessed by A, B and C on every cloud", func() bool {
		ok := true
		for _, cl := range []*cloud{clA, clB, clC} {
			_, _, good := witnessedRow(ctx, cl.db, alice, members)
			ok = ok && good
		}
		return ok
	})

	// The sub the service on B sees, from alice's secret on A.
	acctA, err := clA.db.GetAccount(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	secretA, err := clA.accounts.PairwiseSecret(acctA)
	if err != nil {
		t.Fatal(err)
	}
	client, err := cidoidc.LookupClient(ctx, clB.db, svc.conf.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	wantSub := cidoidc.PairwiseSubject(secretA, client.Sector)

	// Rotation on A: the old phrase signs, a new kit is shown once.
	p = br.post(a.base+"/account/recovery/rotate", url.Values{"phrase": {oldPhrase}})
	if cc := p.header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("rotated kit page Cache-Control %q", cc)
	}
	newPhrase, shown := recoveryKitPage(t, p)
	if !strings.Contains(p.body, `id="rotated"`) || shown != alice || newPhrase == oldPhrase {
		t.Fatalf("rotation page: DID %s\n%s", shown, p.body)
	}
	if keys, _ := servedUpdateKeys(t, a.base, alice); len(keys) != 2 || keys[1] != multikeyOf(t, newPhrase) {
		t.Fatalf("update keys after the rotation: %v", keys)
	}
	if p := br.post(a.base+"/account/recovery/rotate", url.Values{"phrase": {oldPhrase}}); p.status != 403 || !strings.Contains(p.body, "no longer valid") {
		t.Fatalf("second rotation with the old phrase: %d\n%s", p.status, p.body)
	}
	if p := br.get(a.base + "/account/activity"); !strings.Contains(p.body, "Recovery kit replaced") {
		t.Fatalf("the rotation is not in the activity:\n%s", p.body)
	}
	rowA, err := clA.db.GetDIDLog(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	newSeed, _ := identity.RecoverySeed(newPhrase)
	if s, err := identity.OpenEscrow(newSeed, rowA.SCID, rowA.Escrow); err != nil || string(s) != string(secretA) {
		t.Fatalf("the escrow after the rotation does not open with the new kit: %v", err)
	}
	oldSeed, _ := identity.RecoverySeed(oldPhrase)
	if _, err := identity.OpenEscrow(oldSeed, rowA.SCID, rowA.Escrow); err == nil {
		t.Fatal("the old kit still opens the escrow")
	}
	eventually(t, 30*time.Second, "B holds alice's rotated log, witnessed, with its escrow and her replica", func() bool {
		l, res, good := witnessedRow(ctx, clB.db, alice, members)
		if !good || res == nil || len(l.Escrow) == 0 || string(l.Escrow) != string(rowA.Escrow) {
			return false
		}
		r, err := clB.db.GetAccount(ctx, alice)
		return err == nil && r.Name == "Alice Liddell" && slices.Contains(identity.PersonKeys(res), multikeyOf(t, newPhrase))
	})

	// A is gone, with its database.
	a.stop()
	if err := os.RemoveAll(a.env["COMMONSID_DATA"]); err != nil {
		t.Fatal(err)
	}

	recoverAt := func(account, phrase, password string) *page {
		return newBrowser(t).post(b.base+"/recover", url.Values{"account": {account}, "phrase": {phrase}, "password": {password}})
	}
	if p := newBrowser(t).get(b.base + "/recover"); p.status != 200 || !strings.Contains(p.body, "Recovery phrase") || p.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("recover form: %d\n%s", p.status, p.body)
	}
	unknown := "did:webvh:QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG:id.localhost:accounts:nobody"
	if p := recoverAt(unknown, newPhrase, "a new password"); p.status != 404 || !strings.Contains(p.body, "holds no copy") {
		t.Fatalf("unknown DID: %d\n%s", p.status, p.body)
	}
	if p := recoverAt(alice, oldPhrase, "a new password"); p.status != 403 || !strings.Contains(p.body, "no longer valid") {
		t.Fatalf("the old phrase: %d\n%s", p.status, p.body)
	}
	stranger, _ := identity.NewRecoveryKit()
	if p := recoverAt(alice, stranger.Phrase(), "a new password"); p.status != 403 || !strings.Contains(p.body, "not the one of this account") {
		t.Fatalf("a stranger's phrase: %d\n%s", p.status, p.body)
	}
	if p := recoverAt(alice, strings.Join(strings.Fields(newPhrase)[:23], " "), "a new password"); p.status != 400 || !strings.Contains(p.body, "it has 23 words") {
		t.Fatalf("23 words: %d\n%s", p.status, p.body)
	}
	// Cross-site posts are refused.
	if p := crossSitePost(t, b.base+"/recover", url.Values{"account": {alice}, "phrase": {newPhrase}, "password": {"a new password"}}); p.status != 403 {
		t.Fatalf("cross-site recovery: %d", p.status)
	}
	if acct, err := clB.db.GetAccount(ctx, alice); err != nil || acct.HomeIssuer != a.base {
		t.Fatalf("refusals changed the account on B: %+v %v", acct, err)
	}

	// With C down too, B alone cannot confirm the move: refused, nothing
	// changed.
	c.stop()
	if p := recoverAt(alice, newPhrase, "a new password"); p.status != 503 || !strings.Contains(html.UnescapeString(p.body), "Not enough of the commons' witnesses confirmed") {
		t.Fatalf("recovery without enough witnesses: %d\n%s", p.status, p.body)
	}
	if l, err := clB.db.GetDIDLog(ctx, alice); err != nil || l.HomeIssuer != a.base || l.Version != rowA.Version {
		t.Fatalf("a refused recovery changed the log on B: %+v %v", l, err)
	}
	c.start()

	// Recovery, naming the account as handle@host.
	u, _ := url.Parse(a.base)
	const newPW = "a new password for B"
	p = recoverAt("alice@"+u.Host, " "+strings.ToUpper(newPhrase)+" ", newPW)
	if p.status != 200 || !strings.Contains(p.body, "Your account is recovered") {
		t.Fatalf("recovery: %d\n%s", p.status, p.body)
	}
	for _, want := range []string{"every service sees you as before", "your handle here: alice", "the profile you shared with this cloud",
		"consents to services on other clouds", "passkeys", "activity history"} {
		if !strings.Contains(html.UnescapeString(p.body), want) {
			t.Fatalf("the result page does not say %q:\n%s", want, p.body)
		}
	}
	m := recoveredDIDRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatal("the result page shows no DID")
	}
	newDID := html.UnescapeString(m[1])
	pa, _ := webvh.ParseDID(alice)
	pn, err := webvh.ParseDID(newDID)
	if err != nil || pn.SCID != pa.SCID || newDID == alice {
		t.Fatalf("the recovered DID %s (%v), was %s", newDID, err, alice)
	}
	if home, _, err := identity.IssuerOfWebVH(newDID); err != nil || home != b.base {
		t.Fatalf("the recovered DID names home %s (%v), want %s", home, err, b.base)
	}
	acct, err := clB.db.GetAccount(ctx, alice)
	if err != nil || acct.HomeIssuer != b.base || acct.Handle != "alice" || acct.Status != identity.StatusActive ||
		acct.Name != "Alice Liddell" || acct.Email != "alice@example.org" {
		t.Fatalf("alice on B: %+v %v", acct, err)
	}
	rowB, err := clB.db.GetDIDLog(ctx, alice)
	if err != nil || rowB.CurrentDID != newDID || rowB.HomeIssuer != b.base {
		t.Fatalf("alice's log on B: %+v %v", rowB, err)
	}
	res, err := webvh.Verify(rowB.Log, webvh.Options{Witness: func() ([]byte, error) { return rowB.Witness, nil }})
	if err != nil || !res.Metadata.Witnessed || res.DID != newDID {
		t.Fatalf("the move on B does not verify witnessed: %v", err)
	}
	if p := newBrowser(t).get(b.base + "/recover"); p.status != 200 {
		t.Fatal(p.status)
	}
	if p := recoverAt(newDID, newPhrase, newPW); p.status != 409 || !strings.Contains(p.body, "already homed on this cloud") {
		t.Fatalf("a second recovery: %d\n%s", p.status, p.body)
	}

	// The same sub at B's service, signed in with the new password.
	bs := newBrowser(t)
	sub, _ := subAt(t, bs, svc, newPW)
	if sub != wantSub || sub == alice {
		t.Fatalf("sub at B's service %q, want %q (the one from her secret on A)", sub, wantSub)
	}
	if p := bs.get(b.base + "/account/activity"); !strings.Contains(p.body, "Account recovered here") {
		t.Fatalf("the recovery is not in the activity:\n%s", p.body)
	}

	// user show finds her by her new DID and lists every DID.
	var shownB struct {
		DID  string   `json:"did"`
		DIDs []string `json:"dids"`
	}
	if err := json.Unmarshal([]byte(b.env.must(t, "", "user", "show", newDID)), &shownB); err != nil {
		t.Fatal(err)
	}
	if shownB.DID != alice || !slices.Contains(shownB.DIDs, alice) || !slices.Contains(shownB.DIDs, newDID) {
		t.Fatalf("user show by the new DID: %+v", shownB)
	}

	// C learns the move.
	eventually(t, 30*time.Second, "C follows alice's log to B", func() bool {
		l, err := clC.db.GetDIDLog(ctx, alice)
		return err == nil && l.HomeIssuer == b.base && l.Version == rowB.Version
	})
}

// crossSitePost posts a form as another site would.
func crossSitePost(t *testing.T, u string, form url.Values) *page {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	return newBrowser(t).do(req)
}

// TestRecoverLimited: recovery attempts are limited (per IP and per
// account): after 10 the form answers 429 with Retry-After, whatever the
// phrase.
func TestRecoverLimited(t *testing.T) {
	e := sqliteEnv(t)
	e["COMMONSID_RATE_LIMIT"] = "on"
	c := startLocalhostCloud(t, e, identity.DIDMethodWebVH)
	alice := lastLine(c.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin"))
	kit, _ := identity.NewRecoveryKit()
	form := url.Values{"account": {alice}, "phrase": {kit.Phrase()}, "password": {"a new password"}}
	br := newBrowser(t)
	for i := 0; i < 10; i++ {
		if p := br.post(c.base+"/recover", form); p.status != 409 || !strings.Contains(p.body, "already homed on this cloud") {
			t.Fatalf("attempt %d: %d\n%s", i+1, p.status, p.body)
		}
	}
	if p := br.post(c.base+"/recover", form); p.status != 429 || p.header.Get("Retry-After") == "" {
		t.Fatalf("attempt 11: %d %q", p.status, p.header.Get("Retry-After"))
	}
}
