package main

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
)

// TestMoveWebVH: three did:webvh clouds on loopback (A and C on SQLite, B
// on PostgreSQL), peers of each other. Accounts made on A (one without a
// recovery kit, one with) are exported there; A stops; importing on B
// moves them: the log's head names B, is witnessed by B and C, and B is
// their home. The kit accounts need their phrase (on the command line, and
// in the import form). Importing the same file
// again on B says it is already here; importing it on C afterwards is
// refused as superseded, and nothing is written on C.
func TestMoveWebVH(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped with -short: runs three clouds")
	}
	ctx := context.Background()
	dir := t.TempDir()
	envs := []env{sqliteEnv(t), postgresEnv(t), sqliteEnv(t)}
	for _, e := range envs {
		e["COMMONSID_DID_WITNESS_INTERVAL"] = "1s"
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
	clB, clC := openTestCloud(t, b.live()), openTestCloud(t, c.live())

	const pw = "correct horse battery"
	alice := lastLine(a.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--no-recovery-kit", "--password-stdin"))
	withKit := func(handle string) (string, string) {
		out := a.env.must(t, pw+"\n", "user", "create", "--username", handle, "--password-stdin")
		for _, line := range strings.Split(out, "\n") {
			if _, p, ok := strings.Cut(line, "recovery phrase (shown once and not stored: give it to the person to write down): "); ok {
				return lastLine(out), strings.TrimSpace(p)
			}
		}
		t.Fatalf("user create %s printed no recovery phrase: %s", handle, out)
		return "", ""
	}
	bob, phrase := withKit("bob")
	carol, carolPhrase := withKit("carol")
	if !identity.IsWebVH(alice) || !identity.IsWebVH(bob) || !identity.IsWebVH(carol) {
		t.Fatalf("accounts %s, %s, %s", alice, bob, carol)
	}

	// Both logs get the three witnesses, and reach B and C.
	eventually(t, 45*time.Second, "the logs witnessed by the three clouds, known to B and C", func() bool {
		for _, acct := range []string{alice, bob, carol} {
			for _, cl := range []*cloud{clB, clC} {
				if _, ok := witnessedBy(ctx, cl, acct, members); !ok {
					return false
				}
			}
		}
		return true
	})

	// Export on A: the file carries the log.
	const pass = "a long passphrase here"
	aliceFile, bobFile := filepath.Join(dir, "alice.json"), filepath.Join(dir, "bob.json")
	a.env.must(t, pass+"\n", "export", "alice", "--out", aliceFile, "--passphrase-stdin", "--include-password")
	a.env.must(t, pass+"\n", "export", "bob", "--out", bobFile, "--passphrase-stdin", "--include-password")
	carolFile := filepath.Join(dir, "carol.json")
	a.env.must(t, pass+"\n", "export", "carol", "--out", carolFile, "--passphrase-stdin", "--include-password")
	raw, _ := os.ReadFile(aliceFile)
	if d := exportedDocument(t, raw); d.DIDLog == "" || d.DIDLogVersion < 2 || d.Account.DID != alice {
		t.Fatalf("alice's export: log %d bytes, version %d, account %s", len(d.DIDLog), d.DIDLogVersion, d.Account.DID)
	}

	// A is gone.
	a.stop()

	// On B: alice moves with the custodial key of the export.
	out := b.env.must(t, pass+"\n", "import", aliceFile, "--passphrase-stdin")
	if lastLine(out) != alice || !strings.Contains(out, "moved from "+a.base) || !strings.Contains(out, "the custodial key of the export") {
		t.Fatalf("import of alice on B: %s", out)
	}
	// A's did:web is unreachable: the file was accepted on its own
	// signature, and the output says so.
	if !strings.Contains(out, "could not be checked") {
		t.Fatalf("import on B does not say the exporting cloud's signature could not be checked: %s", out)
	}
	assertHomedAt(ctx, t, clB, alice, b.base, members)
	if show := b.env.must(t, "", "user", "show", alice); !strings.Contains(show, `"status": "active"`) || !strings.Contains(show, `"home_cloud": "`+b.base+`"`) {
		t.Fatalf("alice on B: %s", show)
	}

	// bob has a recovery kit: the phrase is required, and must be his.
	if r := b.env.run(t, pass+"\n", "import", bobFile, "--passphrase-stdin"); r.code == 0 || !strings.Contains(r.stderr, "recovery kit") {
		t.Fatalf("import of bob without the phrase: %+v", r)
	}
	other, err := identity.NewRecoveryKit()
	if err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(dir, "wrong-phrase")
	os.WriteFile(wrong, []byte(other.Phrase()+"\n"), 0o600)
	if r := b.env.run(t, pass+"\n", "import", bobFile, "--passphrase-stdin", "--recovery-phrase-file", wrong); r.code == 0 || !strings.Contains(r.stderr, "not the one of this account's recovery kit") {
		t.Fatalf("import of bob with another phrase: %+v", r)
	}
	if _, ok := witnessedBy(ctx, clB, bob, members); !ok {
		t.Fatal("a refused import changed bob's log on B")
	}
	// The phrase on standard input, after the passphrase.
	out = b.env.must(t, pass+"\n"+phrase+"\n", "import", bobFile, "--passphrase-stdin", "--recovery-phrase-file", "-")
	if lastLine(out) != bob || !strings.Contains(out, "signed with the recovery kit") {
		t.Fatalf("import of bob on B: %s", out)
	}
	assertHomedAt(ctx, t, clB, bob, b.base, members)

	// carol through "Bring my identity": the form asks for the phrase,
	// then moves her and says so.
	carolRaw, _ := os.ReadFile(carolFile)
	br := newBrowser(t)
	if p := br.importForm(b.base, carolRaw, pass, ""); p.status != 400 || !strings.Contains(p.body, "enter its recovery phrase") {
		t.Fatalf("import form without the phrase: %d %s", p.status, p.body)
	}
	if p := importWithPhrase(br, b.base, carolRaw, pass, carolPhrase); p.status != 200 || !strings.Contains(p.body, `id="moved"`) ||
		!strings.Contains(p.body, a.base) || !strings.Contains(p.body, `id="cloud-unverified"`) {
		t.Fatalf("import form with the phrase: %d %s", p.status, p.body)
	}
	assertHomedAt(ctx, t, clB, carol, b.base, members)

	// The same file again on B: already here.
	if r := b.env.run(t, pass+"\n", "import", aliceFile, "--passphrase-stdin"); r.code == 0 || !strings.Contains(r.stderr, "already on this cloud") {
		t.Fatalf("second import of alice on B: %+v", r)
	}

	// On C, the old export is refused: the account moved since.
	eventually(t, 30*time.Second, "C learns alice's move", func() bool {
		l, err := clC.db.GetDIDLog(ctx, alice)
		return err == nil && l.HomeIssuer == b.base
	})
	before, _ := clC.db.GetDIDLog(ctx, alice)
	r := c.env.run(t, pass+"\n", "import", aliceFile, "--passphrase-stdin")
	if r.code == 0 || !strings.Contains(r.stderr, "this export was made at version") || !strings.Contains(r.stderr, "moved since") || !strings.Contains(r.stderr, "home "+b.base) {
		t.Fatalf("import of the old export on C: %+v", r)
	}
	after, err := clC.db.GetDIDLog(ctx, alice)
	if err != nil || after.Version != before.Version || after.HomeIssuer != b.base {
		t.Fatalf("C's log of alice after the refused import: %+v %v", after, err)
	}
	if acct, err := clC.db.GetAccount(ctx, alice); err == nil && (acct.HomeIssuer == c.base || acct.Status != identity.StatusActive && acct.Status != identity.StatusMoved) {
		t.Fatalf("the refused import wrote alice on C: %+v", acct)
	}
	if acts, err := clC.db.ListActivity(ctx, alice, 0, 100); err == nil {
		for _, e := range acts {
			if e.Kind == "imported" {
				t.Fatal("the refused import recorded an import on C")
			}
		}
	}
}

// witnessedBy returns the log cl holds of account when it meets its
// witness threshold under the configuration want.
func witnessedBy(ctx context.Context, cl *cloud, account string, want *webvh.Witness) (*identity.DIDLog, bool) {
	l, err := cl.db.GetDIDLog(ctx, account)
	if err != nil || len(l.Witness) == 0 {
		return l, false
	}
	res, err := webvh.Verify(l.Log, webvh.Options{Witness: func() ([]byte, error) { return l.Witness, nil }})
	if err != nil || !res.Metadata.Witnessed || res.Metadata.Witness == nil || len(res.Metadata.Witness.Witnesses) != len(want.Witnesses) {
		return l, false
	}
	for i, w := range want.Witnesses {
		if res.Metadata.Witness.Witnesses[i].ID != w.ID {
			return l, false
		}
	}
	return l, res.Metadata.Witness.Threshold == want.Threshold
}

// assertHomedAt checks that cl holds account homed at home: its log's
// head names home, is witnessed (by a threshold of the members) and was
// moved there; the account row is active and homed there.
func assertHomedAt(ctx context.Context, t *testing.T, cl *cloud, account, home string, members *webvh.Witness) {
	t.Helper()
	l, ok := witnessedBy(ctx, cl, account, members)
	if !ok {
		t.Fatalf("the log of %s on %s is not witnessed by the members: %+v", account, home, l)
	}
	res, err := webvh.Verify(l.Log, webvh.Options{Witness: func() ([]byte, error) { return l.Witness, nil }})
	if err != nil {
		t.Fatal(err)
	}
	issuer, _, err := identity.IssuerOfWebVH(res.DID)
	if err != nil || issuer != home || l.HomeIssuer != home || l.CurrentDID != res.DID || l.Version != res.Metadata.VersionNumber {
		t.Fatalf("the log's head names %s (%v); row home %s, current %s, version %d", res.DID, err, l.HomeIssuer, l.CurrentDID, l.Version)
	}
	if !identity.IsWebVH(res.DID) || res.DID == account || res.Entries[0].DID != account {
		t.Fatalf("the log's head %s is not a move of %s", res.DID, account)
	}
	acct, err := cl.db.GetAccount(ctx, account)
	if err != nil || acct.Status != identity.StatusActive || acct.HomeIssuer != home {
		t.Fatalf("the account %s on %s: %+v %v", account, home, acct, err)
	}
}

// importWithPhrase posts "Bring my identity" with a recovery phrase.
func importWithPhrase(b *browser, base string, file []byte, passphrase, phrase string) *page {
	b.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "export.json")
	fw.Write(file)
	mw.WriteField("passphrase", passphrase)
	mw.WriteField("recovery_phrase", phrase)
	mw.Close()
	req, _ := http.NewRequest("POST", base+"/signup/import", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}
