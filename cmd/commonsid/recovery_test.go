package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
)

var (
	recoveryWordRE = regexp.MustCompile(`<li>([a-z]+)</li>`)
	recoveryNextRE = regexp.MustCompile(`<a class="button" href="([^"]*)">I have written it down</a>`)
	shownDIDRE     = regexp.MustCompile(`<code id="did">([^<]*)</code>`)
)

// passRecoveryKit continues past the recovery kit page a did:webvh sign-up
// answers with, as a person who wrote the words down would.
func passRecoveryKit(br *browser, base string, p *page) *page {
	br.t.Helper()
	m := recoveryNextRE.FindStringSubmatch(p.body)
	if m == nil {
		return p
	}
	return br.get(base + html.UnescapeString(m[1]))
}

// recoveryKitPage reads the phrase and DID off a recovery kit page.
func recoveryKitPage(t *testing.T, p *page) (phrase, didID string) {
	t.Helper()
	if p.status != 200 || !strings.Contains(p.body, "Your recovery kit") {
		t.Fatalf("sign-up did not show the recovery kit: %d %s\n%s", p.status, p.url, p.body)
	}
	ol := p.body[strings.Index(p.body, `<ol class="recovery-words"`):]
	ol = ol[:strings.Index(ol, "</ol>")]
	var words []string
	for _, m := range recoveryWordRE.FindAllStringSubmatch(ol, -1) {
		words = append(words, m[1])
	}
	if len(words) != 24 {
		t.Fatalf("the kit shows %d words: %s", len(words), ol)
	}
	m := shownDIDRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatal("the kit page shows no DID")
	}
	return strings.Join(words, " "), html.UnescapeString(m[1])
}

// servedUpdateKeys fetches an account's did.jsonl from its cloud, verifies
// it and returns its update keys and the document's key.
func servedUpdateKeys(t *testing.T, base, didID string) (updateKeys []string, custodial string) {
	t.Helper()
	parsed, err := webvh.ParseDID(didID)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(base + "/accounts/" + parsed.Path[len(parsed.Path)-1] + "/did.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("did.jsonl: %d", resp.StatusCode)
	}
	// The witness file, when the home serves one (a log with witnesses).
	var witness []byte
	if resp, err := http.Get(base + "/accounts/" + parsed.Path[len(parsed.Path)-1] + "/did-witness.json"); err == nil {
		if resp.StatusCode == 200 {
			witness, _ = io.ReadAll(resp.Body)
		}
		resp.Body.Close()
	}
	res, err := webvh.Verify(raw, webvh.Options{DID: didID, Witness: func() ([]byte, error) { return witness, nil }})
	if err != nil {
		t.Fatalf("the served log does not verify: %v", err)
	}
	i := strings.Index(string(res.Document), `"publicKeyMultibase":"`)
	custodial = string(res.Document)[i+len(`"publicKeyMultibase":"`):]
	return res.Metadata.UpdateKeys, custodial[:strings.IndexByte(custodial, '"')]
}

func multikeyOf(t *testing.T, phrase string) string {
	t.Helper()
	priv, err := identity.RecoveryKeyFromPhrase(phrase)
	if err != nil {
		t.Fatal(err)
	}
	return webvh.Multikey(priv.Public().(ed25519.PublicKey))
}

// TestRecoveryKit: on a did:webvh cloud, sign-up through the web answers
// with the recovery kit (24 words, no-store, nowhere in the server's log);
// the served did.jsonl verifies and its update keys are the custodial key
// and the key derived from the shown phrase. The dashboard shows the key,
// says "matches" for the phrase (typed sloppily), "does not match" for
// another, refuses a malformed one clearly, and stops answering after the
// per-account budget while another account still may check. `user create`
// prints the phrase once, or none with --no-recovery-kit. A did:key cloud
// signs up as before, without a kit. SQLite and PostgreSQL.
func TestRecoveryKit(t *testing.T) {
	t.Parallel()
	t.Run("SQLite", func(t *testing.T) { testRecoveryKit(t, sqliteEnv(t), true) })
	t.Run("PostgreSQL", func(t *testing.T) { testRecoveryKit(t, postgresEnv(t), false) })
}

func testRecoveryKit(t *testing.T, e env, withDIDKeyCloud bool) {
	e["COMMONSID_LOG_LEVEL"], e["COMMONSID_RATE_LIMIT"] = "debug", "on"
	c, _ := startWebVHCloud(t, e)
	const pw = "correct horse battery"

	// Sign-up shows the kit, once, in the answer to the POST.
	br := newBrowser(t)
	p := br.post(c.base+"/signup", url.Values{"handle": {"alice"}, "password": {pw}, "return_to": {"/account"}})
	phrase, didID := recoveryKitPage(t, p)
	if p.url.Path != "/signup" || p.url.RawQuery != "" {
		t.Fatalf("the kit is at %s", p.url)
	}
	if cc := p.header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("kit page Cache-Control %q", cc)
	}
	if !strings.Contains(p.body, `href="/static/recovery_kit.css"`) || !strings.Contains(p.body, "write them down") {
		t.Fatal("the kit page has no print stylesheet or no explanation")
	}
	if css := br.get(c.base + "/static/recovery_kit.css"); css.status != 200 || !strings.Contains(css.body, "@media print") {
		t.Fatalf("print stylesheet: %d", css.status)
	}
	mk := multikeyOf(t, phrase)
	keys, custodial := servedUpdateKeys(t, c.base, didID)
	if len(keys) != 2 || keys[0] != custodial || keys[1] != mk {
		t.Fatalf("update keys %v, want [custodial %s, recovery %s]", keys, custodial, mk)
	}
	// "I have written it down" continues to where the person was going.
	if p := passRecoveryKit(br, c.base, p); p.status != 200 || p.url.Path != "/account" {
		t.Fatalf("after the kit: %d %s", p.status, p.url)
	}

	// The dashboard.
	rp := br.get(c.base + "/account/recovery")
	if rp.status != 200 || !strings.Contains(rp.body, mk[:10]+"…"+mk[len(mk)-6:]) || !strings.Contains(rp.body, "Check my recovery phrase") {
		t.Fatalf("recovery page: %d\n%s", rp.status, rp.body)
	}
	check := func(b *browser, phrase string) *page {
		return b.post(c.base+"/account/recovery/check", url.Values{"phrase": {phrase}})
	}
	sloppy := "  " + strings.ToUpper(strings.ReplaceAll(phrase, " ", "  \n")) + " "
	if p := check(br, sloppy); p.status != 200 || !strings.Contains(p.body, "Your recovery phrase matches") {
		t.Fatalf("check of the phrase: %d\n%s", p.status, p.body)
	}
	other, _ := identity.NewRecoveryKit()
	if p := check(br, other.Phrase()); p.status != 200 || !strings.Contains(p.body, "Your recovery phrase does not match") {
		t.Fatalf("check of another phrase: %d\n%s", p.status, p.body)
	}
	words := strings.Fields(phrase)
	if p := check(br, strings.Join(words[:23], " ")); p.status != 400 || !strings.Contains(p.body, "Invalid recovery phrase: it has 23 words, a recovery phrase has 24.") {
		t.Fatalf("check of 23 words: %d\n%s", p.status, p.body)
	}
	// A check from another site is refused.
	req, _ := http.NewRequest("POST", c.base+"/account/recovery/check", strings.NewReader(url.Values{"phrase": {phrase}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if p := br.do(req); p.status != http.StatusForbidden {
		t.Fatalf("cross-site check: %d", p.status)
	}
	// Signed out, no check.
	if p := check(newBrowser(t), phrase); p.url.Path != "/login" {
		t.Fatalf("signed-out check: %d %s", p.status, p.url)
	}
	// The budget: 10 checks per account (3 spent), then 429, even for the
	// right phrase.
	for i := 0; i < 7; i++ {
		if p := check(br, other.Phrase()); p.status != 200 {
			t.Fatalf("check %d: %d", 4+i, p.status)
		}
	}
	if p := check(br, phrase); p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" || strings.Contains(p.body, "matches") {
		t.Fatalf("check 11: %d %q\n%s", p.status, p.header.Get("Retry-After"), p.body)
	}

	// user create prints the phrase once, before the DID.
	out := c.env.must(t, pw+"\n", "user", "create", "--username", "carol", "--password-stdin")
	const label = "recovery phrase (shown once and not stored: give it to the person to write down): "
	i := strings.Index(out, label)
	if i < 0 {
		t.Fatalf("user create printed no recovery phrase:\n%s", out)
	}
	carolPhrase := out[i+len(label):]
	carolPhrase = carolPhrase[:strings.IndexByte(carolPhrase, '\n')]
	carolDID := lastLine(out)
	if keys, custodial := servedUpdateKeys(t, c.base, carolDID); len(keys) != 2 || keys[0] != custodial || keys[1] != multikeyOf(t, carolPhrase) {
		t.Fatalf("carol's update keys %v", keys)
	}
	// Another account has its own budget.
	brc := newBrowser(t)
	if p := brc.signIn(c.base, "carol", pw); p.url.Path != "/account" {
		t.Fatalf("carol's sign-in: %d %s", p.status, p.url)
	}
	if p := check(brc, carolPhrase); p.status != 200 || !strings.Contains(p.body, "matches") || strings.Contains(p.body, "does not match") {
		t.Fatalf("carol's check: %d\n%s", p.status, p.body)
	}
	out = c.env.must(t, pw+"\n", "user", "create", "--username", "dave", "--password-stdin", "--no-recovery-kit")
	if strings.Contains(out, "recovery phrase") {
		t.Fatalf("--no-recovery-kit printed a phrase:\n%s", out)
	}
	if keys, custodial := servedUpdateKeys(t, c.base, lastLine(out)); len(keys) != 1 || keys[0] != custodial {
		t.Fatalf("dave's update keys %v", keys)
	}
	brd := newBrowser(t)
	brd.signIn(c.base, "dave", pw)
	if p := brd.get(c.base + "/account/recovery"); p.status != 200 || !strings.Contains(p.body, "Your account has no recovery key") {
		t.Fatalf("dave's recovery page: %d\n%s", p.status, p.body)
	}

	// No phrase in any log line of the server (logged at debug).
	logs := c.logs.String()
	if !strings.Contains(logs, "account created") {
		t.Fatalf("the server's log was not captured:\n%s", logs)
	}
	for _, ph := range []string{phrase, carolPhrase} {
		w := strings.Fields(ph)
		for j := 0; j+3 <= len(w); j++ {
			for _, sep := range []string{" ", "+", "%20", ","} {
				if s := strings.Join(w[j:j+3], sep); strings.Contains(strings.ToLower(logs), s) {
					t.Fatalf("the server's log holds words of a phrase (%q)", s)
				}
			}
		}
	}

	// A did:key cloud signs up as before: no kit, no recovery key.
	if !withDIDKeyCloud {
		return
	}
	k := startCloud(t, sqliteEnv(t))
	bk := newBrowser(t)
	if p := bk.post(k.base+"/signup", url.Values{"handle": {"erin"}, "password": {pw}}); p.status != 200 || !strings.Contains(p.body, "Welcome, erin") || strings.Contains(p.body, "recovery") {
		t.Fatalf("did:key sign-up: %d\n%s", p.status, p.body)
	}
	bk.signIn(k.base, "erin", pw)
	if p := bk.get(k.base + "/account/recovery"); p.status != 200 || !strings.Contains(p.body, "Your account has no recovery key") {
		t.Fatalf("did:key recovery page: %d\n%s", p.status, p.body)
	}
}

// startLocalhostCloud starts a cloud on a localhost issuer (as
// startWebVHCloud) whose new accounts get the DID method method.
func startLocalhostCloud(t *testing.T, e env, method string) *cloudProc {
	t.Helper()
	c, _ := startWebVHCloud(t, e)
	if method != identity.DIDMethodWebVH {
		c.stop()
		c.env["COMMONSID_ACCOUNT_DID"] = method
		c.start()
	}
	return c
}

// TestRotateKeyAndUpgradeDID: `user rotate-key` replaces the custodial key
// of a did:webvh account (the served log's updateKeys[0] and document
// change, the kit key stays, the old key can no longer sign an entry, the
// key sealed in the account row is the new one, sign-in still works).
// `user upgrade-did` gives a did:key account a did:webvh DID whose
// document lists the did:key in alsoKnownAs, prints its recovery phrase
// once, keeps the account's key and its pairwise sub at a service; `user
// show` finds it by the new DID and lists both. The dashboard upgrades
// another account and shows its kit; the kit's phrase then checks.
func TestRotateKeyAndUpgradeDID(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped with -short: runs two clouds")
	}
	ctx := context.Background()
	const pw = "correct horse battery"

	// Custodial rotation.
	w := startLocalhostCloud(t, sqliteEnv(t), identity.DIDMethodWebVH)
	out := w.env.must(t, pw+"\n", "user", "create", "--username", "bob", "--password-stdin")
	bob := lastLine(out)
	keys, oldCustodial := servedUpdateKeys(t, w.base, bob)
	if len(keys) != 2 || keys[0] != oldCustodial {
		t.Fatalf("bob's update keys %v", keys)
	}
	clW := openTestCloud(t, w.live())
	acct, err := clW.db.GetAccount(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	oldKey, err := clW.accounts.SigningKey(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	out = w.env.must(t, "", "user", "rotate-key", "bob")
	if !strings.Contains(out, "rotated the custodial key of bob: DID log version ") || !strings.Contains(out, "witnessed") {
		t.Fatalf("rotate-key printed:\n%s", out)
	}
	keys2, newCustodial := servedUpdateKeys(t, w.base, bob)
	if len(keys2) != 2 || keys2[0] != newCustodial || newCustodial == oldCustodial || keys2[1] != keys[1] {
		t.Fatalf("after rotate-key: update keys %v (custodial %s, was %s)", keys2, newCustodial, oldCustodial)
	}
	if !strings.Contains(out, newCustodial) {
		t.Fatalf("rotate-key did not name the new key %s:\n%s", newCustodial, out)
	}
	row, err := clW.db.GetDIDLog(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	l, err := webvh.Open(row.Log, webvh.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ttl := int64(60)
	if _, err := l.Update(webvh.UpdateOptions{TTL: &ttl, Time: nextTime(l), Signer: oldKey.Private}); err == nil {
		t.Fatal("the old custodial key still signs an entry")
	}
	if _, err := identity.AppendCustodialKey(l, oldKey.Private.Public().(ed25519.PublicKey), oldKey.Private, nextTime(l)); err == nil {
		t.Fatal("the old custodial key took its place back")
	}
	acct, _ = clW.db.GetAccount(ctx, bob)
	newKey, err := clW.accounts.SigningKey(ctx, acct)
	if err != nil || webvh.Multikey(newKey.Private.Public().(ed25519.PublicKey)) != newCustodial {
		t.Fatalf("the key sealed for bob is not the log's custodial key: %v", err)
	}
	if _, err := l.Update(webvh.UpdateOptions{TTL: &ttl, Time: nextTime(l), Signer: newKey.Private}); err != nil {
		t.Fatalf("the new custodial key does not sign: %v", err)
	}
	if p := newBrowser(t).signIn(w.base, "bob", pw); p.url.Path != "/account" {
		t.Fatalf("bob's sign-in after rotate-key: %d %s", p.status, p.url)
	}
	if r := w.env.run(t, "", "user", "rotate-key", "nobody"); r.code == 0 || !strings.Contains(r.stderr, "no account") {
		t.Fatalf("rotate-key of an unknown account: %d %s", r.code, r.stderr)
	}

	// Upgrade of a did:key account.
	k := startLocalhostCloud(t, sqliteEnv(t), identity.DIDMethodKey)
	svc := newRP(t, k.live(), "notes", nil)
	br := newBrowser(t)
	if p := br.post(k.base+"/signup", url.Values{"handle": {"alice"}, "password": {pw}}); p.status != 200 || !strings.Contains(p.body, "Welcome, alice") {
		t.Fatalf("did:key sign-up: %d\n%s", p.status, p.body)
	}
	alice := lastLine(k.env.must(t, "", "user", "list"))
	alice = alice[strings.LastIndex(alice, " ")+1:]
	if !strings.HasPrefix(alice, "did:key:") {
		t.Fatalf("alice's DID %s", alice)
	}
	subBefore, _ := subAt(t, newBrowser(t), svc, pw)
	if subBefore == alice {
		t.Fatal("the service sees the public DID: the test needs a pairwise sub")
	}
	out = k.env.must(t, "", "user", "upgrade-did", "alice")
	const label = "recovery phrase (shown once and not stored: give it to the person to write down): "
	i := strings.Index(out, label)
	if i < 0 || !strings.Contains(out, "its key stays "+alice) {
		t.Fatalf("upgrade-did printed:\n%s", out)
	}
	phrase := out[i+len(label):]
	phrase = phrase[:strings.IndexByte(phrase, '\n')]
	newDID := lastLine(out)
	if !strings.HasPrefix(newDID, "did:webvh:") {
		t.Fatalf("upgrade-did's DID %s", newDID)
	}
	keys, custodial := servedUpdateKeys(t, k.base, newDID)
	if len(keys) != 2 || keys[1] != multikeyOf(t, phrase) || "did:key:"+custodial != alice {
		t.Fatalf("the upgraded log's update keys %v, custodial %s, account %s", keys, custodial, alice)
	}
	parsed, _ := webvh.ParseDID(newDID)
	resp, err := http.Get(k.base + "/accounts/" + parsed.Path[len(parsed.Path)-1] + "/did.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	res, err := webvh.Verify(raw, webvh.Options{DID: newDID})
	if err != nil || !strings.Contains(string(res.Document), `"alsoKnownAs":["`+alice+`"]`) {
		t.Fatalf("the upgraded document (%v): %s", err, res.Document)
	}
	if subAfter, _ := subAt(t, newBrowser(t), svc, pw); subAfter != subBefore {
		t.Fatalf("sub after the upgrade %s, before %s", subAfter, subBefore)
	}
	var shown struct {
		DID  string   `json:"did"`
		DIDs []string `json:"dids"`
	}
	if err := json.Unmarshal([]byte(k.env.must(t, "", "user", "show", newDID)), &shown); err != nil {
		t.Fatal(err)
	}
	if shown.DID != alice || len(shown.DIDs) != 2 || shown.DIDs[0] != alice || shown.DIDs[1] != newDID {
		t.Fatalf("user show by the new DID: %+v", shown)
	}
	if r := k.env.run(t, "", "user", "upgrade-did", "alice"); r.code == 0 || !strings.Contains(r.stderr, "already") {
		t.Fatalf("a second upgrade-did: %d %s", r.code, r.stderr)
	}
	// The escrow opens with the printed phrase to alice's secret.
	clK := openTestCloud(t, k.live())
	acctK, _ := clK.db.GetAccount(ctx, alice)
	secret, _ := clK.accounts.PairwiseSecret(acctK)
	rowK, err := clK.db.GetDIDLog(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := identity.RecoverySeed(phrase)
	if s, err := identity.OpenEscrow(seed, rowK.SCID, rowK.Escrow); err != nil || string(s) != string(secret) {
		t.Fatalf("the upgrade's escrow: %v", err)
	}
	k.env.must(t, pw+"\n", "user", "create", "--username", "dave", "--password-stdin")
	if out := k.env.must(t, "", "user", "upgrade-did", "dave", "--no-recovery-kit"); strings.Contains(out, "recovery phrase") {
		t.Fatalf("--no-recovery-kit printed a phrase:\n%s", out)
	} else if keys, _ := servedUpdateKeys(t, k.base, lastLine(out)); len(keys) != 1 {
		t.Fatalf("dave's update keys %v", keys)
	}

	// The dashboard's upgrade, for another did:key account.
	bc := newBrowser(t)
	if p := bc.post(k.base+"/signup", url.Values{"handle": {"carol"}, "password": {pw}}); p.status != 200 {
		t.Fatalf("carol's sign-up: %d", p.status)
	}
	bc.signIn(k.base, "carol", pw)
	if p := bc.get(k.base + "/account/recovery"); !strings.Contains(p.body, "Upgrade to a rotatable DID") {
		t.Fatalf("carol's recovery page offers no upgrade:\n%s", p.body)
	}
	p := bc.post(k.base+"/account/recovery/upgrade", url.Values{})
	carolPhrase, carolDID := recoveryKitPage(t, p)
	if !strings.Contains(p.body, `id="upgraded"`) || !strings.HasPrefix(carolDID, "did:webvh:") || p.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("dashboard upgrade: %s\n%s", carolDID, p.body)
	}
	if p := bc.post(k.base+"/account/recovery/check", url.Values{"phrase": {carolPhrase}}); !strings.Contains(p.body, "Your recovery phrase matches") {
		t.Fatalf("carol's phrase check after the upgrade:\n%s", p.body)
	}
	if p := bc.get(k.base + "/account/recovery"); strings.Contains(p.body, "Upgrade to a rotatable DID") || !strings.Contains(p.body, "Rotate my recovery kit") {
		t.Fatalf("carol's recovery page after the upgrade:\n%s", p.body)
	}
}
