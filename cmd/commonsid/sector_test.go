package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	cidoidc "github.com/onecommons/commonsid/oidc"
)

// untilConsent follows an authorization URL through the sign-in page and
// returns the next page: the consent page, or the redirect to the service.
func (b *browser) untilConsent(authURL, user, password string) *page {
	b.t.Helper()
	p := b.get(authURL)
	if p.url.Path == "/login" {
		form := formValues(p.body)
		form.Set("username", user)
		form.Set("password", password)
		p = b.post(p.url.Scheme+"://"+p.url.Host+"/login", form)
	}
	return p
}

// idClaims redeems the code at the service and returns the verified ID
// token's claims.
func idClaims(t *testing.T, app *rp, p *page, verifier string) map[string]any {
	t.Helper()
	code := p.url.Query().Get("code")
	if code == "" || p.url.Port() != "9" {
		t.Fatalf("no code at the service: %d %s\n%s", p.status, p.url, p.body)
	}
	tok, err := app.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := app.provider.Verifier(&oidc.Config{ClientID: app.conf.ClientID}).Verify(context.Background(), tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	idt.Claims(&out)
	return out
}

// registerStatus posts a registration and returns the status and answer.
func registerStatus(t *testing.T, base string, meta map[string]any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(meta)
	resp, err := http.Post(base+"/register", "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func hostOf(u string) string {
	p, _ := url.Parse(u)
	return p.Host
}

// TestServiceSectors runs a victim cloud V (PostgreSQL), an honest cloud X
// and a hostile cloud H (both SQLite) that signs, with its own pinned key,
// announcements of services claiming other services' sectors. V keeps
// them without their sectors, refuses forks of them, lets a fork of H's
// honest service have only that service's family sub, names H on the
// consent page, and detaches the fork when H is removed.
func TestServiceSectors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	v := startCloud(t, postgresEnv(t))
	x := startCloud(t, sqliteEnv(t))
	h := startCloud(t, sqliteEnv(t))
	dbV, dbH := openTestCloud(t, v.live()), openTestCloud(t, h.live())

	const pw = "correct horse battery"
	did := lastLine(v.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--name", "Alice", "--password-stdin"))
	acct, err := dbV.db.GetAccount(ctx, did)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := dbV.accounts.PairwiseSecret(acct)
	if err != nil {
		t.Fatal(err)
	}
	journal := newRP(t, v.live(), "journal", nil) // V's own service
	bank := newRP(t, x.live(), "bank", nil)       // X's service
	sJournal, sBank := hostOf(journal.redirect), hostOf(bank.redirect)

	// V follows X, and holds X's announcement of the bank.
	x.env.must(t, "", "peer", "add", v.base)
	v.env.must(t, "", "peer", "add", x.base)
	bankID := bank.conf.ClientID
	eventually(t, 5*time.Second, "V holds X's bank", func() bool {
		_, err := dbV.db.RemoteService(ctx, x.base, bankID)
		return err == nil
	})

	// A sector document for one of H's services, on another host.
	siu := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `["http://127.0.9.6:9/cb","http://127.0.9.7:9/cb"]`)
	}))
	t.Cleanup(siu.Close)
	sSIU := hostOf(siu.URL)

	// H's services, written straight into its database: its feed announces
	// them as they are, signed by H.
	redirect := func(n int) []string { return []string{fmt.Sprintf("http://127.0.9.%d:9/cb", n)} }
	forged := []struct {
		id     string
		md     map[string]any
		reason string // "" when V believes it
		// keeps: its own sector is what its redirect URIs imply, so it stays
		// for its own sign-ins even when the rest is refused
		keeps bool
	}{
		{"hroot", map[string]any{"client_name": "H Root", "redirect_uris": redirect(1), "x_sector": "127.0.9.1:9"}, "", true},
		// (i) another cloud's service's sector, with redirect URIs elsewhere…
		{"thief", map[string]any{"client_name": "Thief", "redirect_uris": redirect(2), "x_sector": sJournal}, "is not the sector its metadata implies", false},
		// …or on that very host: the first holder keeps the sector.
		{"squat", map[string]any{"client_name": "Squat", "redirect_uris": []string{"http://" + sJournal + "/h/cb"}, "x_sector": sJournal}, "already held by this cloud's service " + journal.conf.ClientID, true},
		{"squatx", map[string]any{"client_name": "SquatX", "redirect_uris": []string{"http://" + sBank + "/h/cb"}, "x_sector": sBank}, "already held by service " + bankID + " of " + x.base, true},
		// (ii) forged families: a sector that is not the root's…
		{"hfork", map[string]any{"client_name": "H Fork", "redirect_uris": redirect(3), "x_sector": "127.0.9.3:9", "forked_from": "hroot",
			"x_family_root": "hroot", "x_family_sector": sBank}, "is not the sector of its family root", true},
		// …a root on a third cloud that does not exist there…
		{"hfork2", map[string]any{"client_name": "H Fork 2", "redirect_uris": redirect(4), "x_sector": "127.0.9.4:9",
			"x_family_root": x.base + "#nosuch", "x_family_sector": sBank}, "no announcement of it by " + x.base, true},
		// …or a third cloud's real service with another service's sector.
		{"hfork3", map[string]any{"client_name": "H Fork 3", "redirect_uris": redirect(5), "x_sector": "127.0.9.5:9",
			"x_family_root": x.base + "#" + bankID, "x_family_sector": sJournal}, "is not the sector of its family root", true},
		// Believed: a sector_identifier_uri listing every redirect URI, and
		// a fork of X's bank with the bank's sector, as X announced it.
		{"hsiu", map[string]any{"client_name": "H SIU", "redirect_uris": []string{"http://127.0.9.6:9/cb", "http://127.0.9.7:9/cb"},
			"sector_identifier_uri": siu.URL, "x_sector": sSIU}, "", true},
		{"hsiubad", map[string]any{"client_name": "H SIU bad", "redirect_uris": []string{"http://127.0.9.6:9/cb", "http://127.0.9.8:9/cb"},
			"sector_identifier_uri": siu.URL, "x_sector": sSIU}, "does not list redirect URI", false},
		{"hbankfork", map[string]any{"client_name": "H Bank Fork", "redirect_uris": redirect(9), "x_sector": "127.0.9.9:9",
			"forked_from": x.base + "#" + bankID, "x_family_root": x.base + "#" + bankID, "x_family_sector": sBank}, "", true},
	}
	for _, f := range forged {
		raw, _ := json.Marshal(f.md)
		now := time.Now().UTC()
		if err := dbH.db.CreateClient(ctx, &cidoidc.StoredClient{ClientID: f.id, Metadata: raw, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	h.env.must(t, "", "peer", "add", v.base)
	v.env.must(t, "", "peer", "add", h.base)
	last, _ := dbH.db.LastEventSeq(ctx)
	eventually(t, 5*time.Second, "V follows H", func() bool {
		p, err := dbV.db.GetPeer(ctx, h.base)
		return err == nil && p.Cursor >= last
	})

	for _, f := range forged {
		raw, err := dbV.db.RemoteService(ctx, h.base, f.id)
		if err != nil {
			t.Fatalf("%s is not kept on V (its name should show): %v", f.id, err)
		}
		var md map[string]any
		json.Unmarshal(raw, &md)
		why, _ := md["x_unverified"].(string)
		if f.reason == "" {
			if why != "" || md["x_sector"] != f.md["x_sector"] || md["x_family_sector"] != f.md["x_family_sector"] {
				t.Fatalf("%s should be believed: %s", f.id, raw)
			}
			continue
		}
		wantSector := any(nil)
		if f.keeps {
			wantSector = f.md["x_sector"]
		}
		if !strings.Contains(why, f.reason) || md["x_sector"] != wantSector || md["x_family_sector"] != nil || md["x_family_root"] != nil || md["client_name"] != f.md["client_name"] {
			t.Fatalf("%s on V: want unverified %q, x_sector %v, family cleared, name kept: %s", f.id, f.reason, wantSector, raw)
		}
		if !strings.Contains(v.logs.String(), f.reason) {
			t.Fatalf("the refusal of %s is not logged", f.id)
		}
		// A fork of it registered on V is refused, naming why.
		st, out := registerStatus(t, v.base, map[string]any{"client_name": "fork of " + f.id, "redirect_uris": redirect(20),
			"forked_from": h.base + "#" + f.id})
		desc, _ := out["error_description"].(string)
		if st != 400 || out["error"] != "invalid_client_metadata" || !strings.Contains(desc, "did not verify") || !strings.Contains(desc, f.reason) {
			t.Fatalf("fork of %s on V: %d %v", f.id, st, out)
		}
	}

	// A fork of H's honest service: the consent page names H's cloud; the
	// person who carries their account over gets H Root's family sub,
	// never the journal's.
	fork := newRP(t, v.live(), "hroot-fork", map[string]any{"forked_from": h.base + "#hroot"})
	b := newBrowser(t)
	pkce := oauth2.GenerateVerifier()
	p := b.untilConsent(fork.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(pkce)), "alice", pw)
	if p.url.Path != "/consent" || !strings.Contains(p.body, "is a fork of H Root, a service on "+hostOf(h.base)) {
		t.Fatalf("the consent page does not name the parent's cloud: %d %s\n%s", p.status, p.url, p.body)
	}
	p = b.answerConsent(p, func(f url.Values) { f.Set("fork", "carry") })
	sub, _ := exchangeSub(t, fork, p, pkce)
	if sub != cidoidc.PairwiseSubject(secret, "127.0.9.1:9") || sub == cidoidc.PairwiseSubject(secret, sJournal) {
		t.Fatalf("fork of H Root: sub %s is not the family's", sub)
	}
	// H then moves H Root onto the journal's host: V no longer believes
	// H Root heads a family, and the next person at the fork is offered
	// nothing from it (the fork's family sector never changes).
	lastLine(v.env.must(t, pw+"\n", "user", "create", "--username", "bob", "--password-stdin"))
	moved, _ := json.Marshal(map[string]any{"client_name": "H Root", "redirect_uris": []string{"http://" + sJournal + "/h/cb"}, "x_sector": sJournal})
	now := time.Now().UTC()
	if err := dbH.db.UpdateClient(ctx, &cidoidc.StoredClient{ClientID: "hroot", Metadata: moved, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := dbH.db.AppendEvent(ctx, "service.registered", "", now, map[string]any{"client_id": "hroot"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "V applies H Root's move", func() bool {
		rs, err := dbV.remoteService(ctx, h.base, "hroot")
		return err == nil && rs.Unverified != ""
	})
	bob := newBrowser(t)
	p = bob.untilConsent(fork.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "bob", pw)
	if p.url.Path != "/consent" || strings.Contains(p.body, "is a fork of") || strings.Contains(p.body, `value="carry"`) {
		t.Fatalf("a fork of a root that no longer holds the family sector is still presented as a fork: %s\n%s", p.url, p.body)
	}

	// A fork of H's fork of X's bank is in the bank's family: the page names
	// X's cloud.
	bankFork := newRP(t, v.live(), "hbank-fork", map[string]any{"forked_from": h.base + "#hbankfork"})
	pkce = oauth2.GenerateVerifier()
	p = b.untilConsent(bankFork.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(pkce)), "alice", pw)
	if p.url.Path != "/consent" || !strings.Contains(p.body, "is a fork of bank, a service on "+hostOf(x.base)) {
		t.Fatalf("the consent page does not name the bank's cloud: %d %s\n%s", p.status, p.url, p.body)
	}
	p = b.answerConsent(p, func(f url.Values) { f.Set("fork", "carry") })
	if sub, _ := exchangeSub(t, bankFork, p, pkce); sub != cidoidc.PairwiseSubject(secret, sBank) {
		t.Fatalf("fork in the bank's family: sub %s", sub)
	}
	// A local fork of the journal: "this cloud".
	jfork := newRP(t, v.live(), "journal-fork", map[string]any{"forked_from": journal.conf.ClientID})
	p = b.untilConsent(jfork.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", pw)
	if !strings.Contains(p.body, "is a fork of journal, a service on this cloud") {
		t.Fatalf("the consent page of a local fork: %s", p.body)
	}

	// peer remove H detaches both forks that joined a family through H,
	// and resets the consents under the family sector.
	out := v.env.must(t, "", "peer", "remove", h.base)
	for _, id := range []string{fork.conf.ClientID, bankFork.conf.ClientID} {
		if !strings.Contains(out, "service "+id+" detached") {
			t.Fatalf("peer remove does not detach %s: %s", id, out)
		}
		sc, err := dbV.db.GetClient(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, root, sector, _ := cidoidc.ForkFields(sc.Metadata); root != "" || sector != "" {
			t.Fatalf("%s still in a family: %s", id, sc.Metadata)
		}
		if _, err := dbV.db.GetConsent(ctx, did, id); err == nil {
			t.Fatalf("the family consent to %s outlived the peer", id)
		}
	}
	acts, _ := dbV.db.ListActivity(ctx, did, 0, 100)
	revoked := 0
	for _, a := range acts {
		if a.Kind == "consent.revoked" && (a.ClientID == fork.conf.ClientID || a.ClientID == bankFork.conf.ClientID) {
			revoked++
		}
	}
	if revoked != 2 {
		t.Fatalf("the person's activity log shows %d of 2 consents reset", revoked)
	}
	if strings.Contains(out, jfork.conf.ClientID) {
		t.Fatalf("peer remove detached a local family: %s", out)
	}
	// The person is asked again, without a fork section, and gets the
	// fork's own sub.
	pkce = oauth2.GenerateVerifier()
	p = b.untilConsent(fork.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(pkce)), "alice", pw)
	if p.url.Path != "/consent" || strings.Contains(p.body, "is a fork of") {
		t.Fatalf("after peer remove: %d %s\n%s", p.status, p.url, p.body)
	}
	p = b.answerConsent(p, func(f url.Values) { f.Set("fork", "carry") })
	if sub, _ := exchangeSub(t, fork, p, pkce); sub != cidoidc.PairwiseSubject(secret, hostOf(fork.redirect)) {
		t.Fatalf("after peer remove the fork's sub %s is not its own", sub)
	}
}

// TestForkPolicy: with fork policy allow, a fork of a service the person
// uses gets the family sub and the parent's claims without a page; with
// ask, the page pre-ticks the parent's claims only; with never, the fork
// gets its own sub and nothing from the parent.
func TestForkPolicy(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := startLive(t, mk(t))
			const pw = "correct horse battery"
			did := lastLine(l.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--name", "Alice", "--password-stdin"))
			cl := openTestCloud(t, l)
			acct, _ := cl.db.GetAccount(ctx, did)
			secret, _ := cl.accounts.PairwiseSecret(acct)
			parent := newRP(t, l, "notes", nil)
			b := newBrowser(t)
			pkce := oauth2.GenerateVerifier()
			// The person shares their name only with the parent.
			p := b.authorize(parent.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(pkce)), "alice", pw, func(f url.Values) {
				f["claim"] = []string{"name"}
			})
			parentSub, _ := exchangeSub(t, parent, p, pkce)
			setPolicy := func(policy string) {
				t.Helper()
				if st, out, _ := b.api("PUT", l.base+"/account/api/privacy", map[string]any{"subject_mode": "pairwise", "fork_policy": policy,
					"federation_sharing": "none", "activity_retention_days": 365, "consent_lifetime_days": 0, "claim_policy": map[string]string{}}); st != 200 {
					t.Fatalf("fork policy %s: %d %v", policy, st, out)
				}
			}

			// allow: no page, the family sub, the parent's claims.
			setPolicy("allow")
			fork := newRP(t, l, "notes-fork", map[string]any{"forked_from": parent.conf.ClientID})
			pkce = oauth2.GenerateVerifier()
			p = b.untilConsent(fork.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(pkce)), "alice", pw)
			if p.url.Path == "/consent" {
				t.Fatalf("fork policy allow showed the consent page:\n%s", p.body)
			}
			claims := idClaims(t, fork, p, pkce)
			if claims["sub"] != parentSub || claims["name"] != "Alice" || claims["email"] != nil || claims["preferred_username"] != nil {
				t.Fatalf("inherited consent: %v (parent sub %s)", claims, parentSub)
			}
			c, err := cl.db.GetConsent(ctx, did, fork.conf.ClientID)
			if err != nil || !slices.Equal(c.Claims, []string{"name"}) || c.SubjectSector != hostOf(parent.redirect) {
				t.Fatalf("inherited consent stored: %+v %v", c, err)
			}
			acts, _ := cl.db.ListActivity(ctx, did, 0, 50)
			logged := false
			for _, a := range acts {
				if a.Kind == "consent.granted" && a.ClientID == fork.conf.ClientID && a.Detail["inherited_from"] == parent.conf.ClientID {
					logged = true
				}
			}
			if !logged {
				t.Fatal("the inherited consent is not in the activity log")
			}

			// ask: the page pre-ticks the parent's claims, nothing more, and
			// offers to carry the account over.
			setPolicy("ask")
			fork2 := newRP(t, l, "notes-fork2", map[string]any{"forked_from": parent.conf.ClientID})
			pkce = oauth2.GenerateVerifier()
			p = b.untilConsent(fork2.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(pkce)), "alice", pw)
			form := formValues(p.body)
			if p.url.Path != "/consent" || !slices.Equal(form["claim"], []string{"name"}) || form.Get("fork") != "carry" {
				t.Fatalf("fork policy ask: %s ticked %v, fork %q\n%s", p.url, form["claim"], form.Get("fork"), p.body)
			}
			p = b.answerConsent(p, nil)
			if claims := idClaims(t, fork2, p, pkce); claims["sub"] != parentSub || claims["email"] != nil {
				t.Fatalf("fork policy ask, carried over: %v", claims)
			}

			// never: a separate service, nothing pre-filled from the parent,
			// its own sub.
			setPolicy("never")
			fork3 := newRP(t, l, "notes-fork3", map[string]any{"forked_from": parent.conf.ClientID})
			pkce = oauth2.GenerateVerifier()
			p = b.untilConsent(fork3.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(pkce)), "alice", pw)
			form = formValues(p.body)
			if p.url.Path != "/consent" || !slices.Contains(form["claim"], "email") || form.Get("fork") != "" {
				t.Fatalf("fork policy never: ticked %v, fork %q\n%s", form["claim"], form.Get("fork"), p.body)
			}
			p = b.answerConsent(p, func(f url.Values) { f.Set("fork", "carry") })
			if claims := idClaims(t, fork3, p, pkce); claims["sub"] != cidoidc.PairwiseSubject(secret, hostOf(fork3.redirect)) || claims["sub"] == parentSub {
				t.Fatalf("fork policy never: %v", claims)
			}
		})
	}
}
