package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

func mustAccount(t *testing.T, s Store, handle string) *identity.Account {
	t.Helper()
	a := account(handle)
	if err := s.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	return a
}

func testSessions(t *testing.T, s Store) {
	a := mustAccount(t, s, "sess")
	x := &identity.Session{IDHash: "h1", AccountDID: a.DID, AuthTime: fixed, AMR: []string{"pwd", "hwk"}, CreatedAt: fixed,
		LastSeenAt: fixed, ExpiresAt: fixed.Add(time.Hour), UserAgent: "ua", IP: "127.0.0.1"}
	if err := s.CreateSession(ctx, x); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSession(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(x, got); diff != "" {
		t.Fatalf("session (-want +got):\n%s", diff)
	}
	later := fixed.Add(time.Minute)
	s.TouchSession(ctx, "h1", later)
	if got, _ := s.GetSession(ctx, "h1"); !got.LastSeenAt.Equal(later) {
		t.Fatalf("touch: last seen %v", got.LastSeenAt)
	}
	gs, ga, err := s.GetSessionAccount(ctx, "h1")
	if err != nil || gs.IDHash != "h1" || !gs.LastSeenAt.Equal(later) || ga.DID != a.DID || ga.Handle != a.Handle || !ga.CreatedAt.Equal(a.CreatedAt) {
		t.Fatalf("session with account: %+v %+v %v", gs, ga, err)
	}
	if diff := cmp.Diff(got.AMR, gs.AMR); diff != "" {
		t.Fatalf("amr (-want +got):\n%s", diff)
	}
	if _, _, err := s.GetSessionAccount(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown session with account: %v", err)
	}
	list, _ := s.ListSessions(ctx, a.DID)
	if len(list) != 1 {
		t.Fatalf("list: %d", len(list))
	}
	if err := s.DeleteSession(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, "h1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := s.DeleteSession(ctx, "h1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func testConsents(t *testing.T, s Store) {
	a := mustAccount(t, s, "cons")
	exp := fixed.Add(90 * 24 * time.Hour)
	c := &privacy.Consent{AccountDID: a.DID, ClientID: "svc", Scopes: []string{"email", "openid"}, Claims: []string{"email"},
		SubjectSector: "svc.example", GrantedAt: fixed, UpdatedAt: fixed, ExpiresAt: &exp}
	if err := s.PutConsent(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetConsent(ctx, a.DID, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Fatalf("consent (-want +got):\n%s", diff)
	}
	// Upsert keeps granted_at, replaces the rest.
	c2 := *c
	c2.Scopes, c2.Claims, c2.GrantedAt, c2.UpdatedAt = []string{"openid"}, nil, fixed.Add(time.Hour), fixed.Add(time.Hour)
	if err := s.PutConsent(ctx, &c2); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetConsent(ctx, a.DID, "svc")
	if !got.GrantedAt.Equal(fixed) || len(got.Scopes) != 1 || len(got.Claims) != 0 || !got.UpdatedAt.Equal(fixed.Add(time.Hour)) {
		t.Fatalf("after upsert: %+v", got)
	}
	s.TouchConsent(ctx, a.DID, "svc", fixed.Add(2*time.Hour))
	got, _ = s.GetConsent(ctx, a.DID, "svc")
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(fixed.Add(2*time.Hour)) {
		t.Fatalf("touch: %v", got.LastUsedAt)
	}
	if list, _ := s.ListConsents(ctx, a.DID); len(list) != 1 {
		t.Fatalf("list: %d", len(list))
	}
	if err := s.DeleteConsent(ctx, a.DID, "svc"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetConsent(ctx, a.DID, "svc"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

// testActivityConcurrent appends from many goroutines at once (entries
// written together): every entry is stored once, with its own ID, and each
// writer's entries are numbered in the order it appended them.
func testActivityConcurrent(t *testing.T, s Store) {
	a := mustAccount(t, s, "actc")
	const writers, each = 16, 20
	ids := make([][]int64, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := &privacy.Activity{AccountDID: a.DID, At: fixed, Kind: privacy.ActivityRelease, ClientID: "svc",
					Detail: map[string]any{"w": float64(w), "i": float64(i)}}
				if err := s.AppendActivity(ctx, e); err != nil {
					t.Error(err)
					return
				}
				ids[w] = append(ids[w], e.ID)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	byID := map[int64][2]float64{}
	for w, list := range ids {
		for i, id := range list {
			if i > 0 && id <= list[i-1] {
				t.Fatalf("writer %d: entry %d has id %d after %d", w, i, id, list[i-1])
			}
			byID[id] = [2]float64{float64(w), float64(i)}
		}
	}
	if len(byID) != writers*each {
		t.Fatalf("%d distinct ids for %d entries", len(byID), writers*each)
	}
	got, err := s.ListActivity(ctx, a.DID, 0, 1000)
	if err != nil || len(got) != writers*each {
		t.Fatalf("listed %d entries (%v), want %d", len(got), err, writers*each)
	}
	for _, e := range got {
		want, ok := byID[e.ID]
		if !ok || e.Detail["w"] != want[0] || e.Detail["i"] != want[1] {
			t.Fatalf("entry %d holds %v, want writer/index %v", e.ID, e.Detail, want)
		}
	}
}

func testActivitySettings(t *testing.T, s Store) {
	a := mustAccount(t, s, "act")
	for i := range 5 {
		e := &privacy.Activity{AccountDID: a.DID, At: fixed.Add(time.Duration(i) * time.Second), Kind: privacy.ActivityRelease,
			ClientID: "svc", Detail: map[string]any{"n": float64(i)}, IP: "127.0.0.1"}
		if err := s.AppendActivity(ctx, e); err != nil {
			t.Fatal(err)
		}
		if e.ID == 0 {
			t.Fatal("no id assigned")
		}
	}
	page, err := s.ListActivity(ctx, a.DID, 0, 3)
	if err != nil || len(page) != 3 || page[0].Detail["n"] != float64(4) {
		t.Fatalf("first page: %v %v", page, err)
	}
	rest, _ := s.ListActivity(ctx, a.DID, page[2].ID, 3)
	if len(rest) != 2 || rest[1].Detail["n"] != float64(0) {
		t.Fatalf("second page: %v", rest)
	}
	if _, err := s.GetSettings(ctx, a.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("settings before: %v", err)
	}
	st := &privacy.Settings{Version: 3, SubjectMode: "public", ForkPolicy: "never", ClaimPolicy: map[string]string{"email": "never"}}
	if err := s.PutSettings(ctx, a.DID, st, fixed); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSettings(ctx, a.DID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, got); diff != "" {
		t.Fatalf("settings (-want +got):\n%s", diff)
	}
}

func testClients(t *testing.T, s Store) {
	c := &oidc.StoredClient{ClientID: "c1", SecretHash: "abc", RegistrationTokenHash: "def", Metadata: []byte(`{"client_name":"x"}`), CreatedAt: fixed, UpdatedAt: fixed}
	if err := s.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, c); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate: %v", err)
	}
	got, err := s.GetClient(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Fatalf("client (-want +got):\n%s", diff)
	}
	c.Metadata = []byte(`{"client_name":"y"}`)
	if err := s.UpdateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetClient(ctx, "c1"); string(got.Metadata) != `{"client_name":"y"}` {
		t.Fatalf("update: %s", got.Metadata)
	}
	if list, _ := s.ListClients(ctx); len(list) != 1 {
		t.Fatalf("list: %d", len(list))
	}
	s.CreateOAuthRequest(ctx, &oidc.OAuthRequest{Kind: oidc.KindAccess, SignatureHash: "x", RequestID: "r", ClientID: "c1", Active: true, RequestedAt: fixed, ExpiresAt: fixed, Request: []byte("{}")})
	if err := s.DeleteClient(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOAuthRequest(ctx, oidc.KindAccess, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tokens of a deleted client survive: %v", err)
	}
	if err := s.DeleteClient(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func oauthReq(kind, sig, reqID, subject, client string) *oidc.OAuthRequest {
	return &oidc.OAuthRequest{Kind: kind, SignatureHash: sig, RequestID: reqID, ClientID: client, Subject: subject, Active: true,
		RequestedAt: fixed, ExpiresAt: fixed.Add(time.Hour), Request: []byte(`{"id":"` + reqID + `"}`)}
}

// testOAuthRequestsExchange: a code exchanged (or a refresh token rotated)
// and the tokens issued for it are written together or not at all, and of
// concurrent exchanges of one code exactly one succeeds.
func testOAuthRequestsExchange(t *testing.T, s Store) {
	if err := s.CreateOAuthRequest(ctx, oauthReq(oidc.KindCode, "code1", "gx", "did:a", "c")); err != nil {
		t.Fatal(err)
	}
	issued := []*oidc.OAuthRequest{oauthReq(oidc.KindAccess, "acc1", "gx", "did:a", "c"), oauthReq(oidc.KindRefresh, "ref1", "gx", "did:a", "c")}
	issued[1].AccessSignatureHash = "acc1"
	if err := s.ExchangeOAuthRequests(ctx, oidc.KindCode, "code1", issued); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetOAuthRequest(ctx, oidc.KindCode, "code1"); err != nil || got.Active {
		t.Fatalf("exchanged code: %v, active %v", err, got != nil && got.Active)
	}
	for _, want := range issued {
		got, err := s.GetOAuthRequest(ctx, want.Kind, want.SignatureHash)
		if err != nil {
			t.Fatalf("%s %s: %v", want.Kind, want.SignatureHash, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%s (-want +got):\n%s", want.Kind, diff)
		}
	}
	// The code again: refused, and nothing of it stored.
	err := s.ExchangeOAuthRequests(ctx, oidc.KindCode, "code1", []*oidc.OAuthRequest{oauthReq(oidc.KindAccess, "acc2", "gx", "did:a", "c")})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a used code exchanged again: %v, want not found", err)
	}
	if _, err := s.GetOAuthRequest(ctx, oidc.KindAccess, "acc2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused exchange stored its token: %v", err)
	}
	// A token that cannot be stored leaves the code unused.
	if err := s.CreateOAuthRequest(ctx, oauthReq(oidc.KindRefresh, "code2", "gy", "did:a", "c")); err != nil {
		t.Fatal(err)
	}
	err = s.ExchangeOAuthRequests(ctx, oidc.KindRefresh, "code2", []*oidc.OAuthRequest{oauthReq(oidc.KindAccess, "acc3", "gy", "did:a", "c"), oauthReq(oidc.KindAccess, "acc1", "gy", "did:a", "c")})
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("an exchange storing a taken signature: %v, want a duplicate error", err)
	}
	if got, err := s.GetOAuthRequest(ctx, oidc.KindRefresh, "code2"); err != nil || !got.Active {
		t.Fatalf("a failed exchange used its refresh token: %v", err)
	}
	if _, err := s.GetOAuthRequest(ctx, oidc.KindAccess, "acc3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed exchange stored part of its tokens: %v", err)
	}
	// Without an artefact to use: the tokens only.
	if err := s.ExchangeOAuthRequests(ctx, "", "", []*oidc.OAuthRequest{oauthReq(oidc.KindAccess, "acc4", "gz", "did:a", "c")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOAuthRequest(ctx, oidc.KindAccess, "acc4"); err != nil {
		t.Fatal(err)
	}
	// Concurrent exchanges of one code: one wins.
	if err := s.CreateOAuthRequest(ctx, oauthReq(oidc.KindCode, "code3", "gw", "did:a", "c")); err != nil {
		t.Fatal(err)
	}
	const racers = 8
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			errs[i] = s.ExchangeOAuthRequests(ctx, oidc.KindCode, "code3", []*oidc.OAuthRequest{oauthReq(oidc.KindAccess, fmt.Sprintf("race-%d", i), "gw", "did:a", "c")})
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		_, gerr := s.GetOAuthRequest(ctx, oidc.KindAccess, fmt.Sprintf("race-%d", i))
		switch {
		case err == nil && gerr == nil:
			won++
		case errors.Is(err, store.ErrNotFound) && errors.Is(gerr, store.ErrNotFound):
		default:
			t.Fatalf("racer %d: exchange %v, its token %v", i, err, gerr)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent exchanges of one code succeeded, want 1", won, racers)
	}
}

// testOAuthRequestsConcurrent stores from many goroutines at once (rows
// stored together may share a statement): every row is stored as given, and
// a duplicate among them fails alone, with the duplicate error, without
// taking the rows stored beside it down.
func testOAuthRequestsConcurrent(t *testing.T, s Store) {
	if err := s.CreateOAuthRequest(ctx, oauthReq(oidc.KindAccess, "taken", "g0", "did:a", "c")); err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 20
	var wg sync.WaitGroup
	dups := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := oauthReq(oidc.KindAccess, fmt.Sprintf("sig-%d-%d", w, i), fmt.Sprintf("g-%d-%d", w, i), "did:a", "c")
				if err := s.CreateOAuthRequest(ctx, r); err != nil {
					t.Error(err)
					return
				}
				if i == each/2 {
					dups[w] = s.CreateOAuthRequest(ctx, oauthReq(oidc.KindAccess, "taken", "gx", "did:a", "c"))
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for w, err := range dups {
		if !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("writer %d storing a taken signature: %v, want a duplicate error", w, err)
		}
	}
	for w := range writers {
		for i := range each {
			got, err := s.GetOAuthRequest(ctx, oidc.KindAccess, fmt.Sprintf("sig-%d-%d", w, i))
			if err != nil || got.RequestID != fmt.Sprintf("g-%d-%d", w, i) {
				t.Fatalf("row %d/%d: %v %+v", w, i, err, got)
			}
		}
	}
	if got, err := s.GetOAuthRequest(ctx, oidc.KindAccess, "taken"); err != nil || got.RequestID != "g0" {
		t.Fatalf("the first row of a taken signature: %v %+v", err, got)
	}
}

func testOAuthRequests(t *testing.T, s Store) {
	r := oauthReq(oidc.KindCode, "s1", "g1", "did:a", "c")
	r.AccessSignatureHash = "acc"
	if err := s.CreateOAuthRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOAuthRequest(ctx, r); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate: %v", err)
	}
	got, err := s.GetOAuthRequest(ctx, oidc.KindCode, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Fatalf("request (-want +got):\n%s", diff)
	}
	if _, err := s.GetOAuthRequest(ctx, oidc.KindAccess, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("kinds are not separate")
	}
	if err := s.DeactivateOAuthRequest(ctx, oidc.KindCode, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeactivateOAuthRequest(ctx, oidc.KindCode, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deactivating twice: %v", err)
	}
	if got, _ := s.GetOAuthRequest(ctx, oidc.KindCode, "s1"); got.Active {
		t.Fatal("still active")
	}
	for i, sig := range []string{"a1", "a2"} {
		s.CreateOAuthRequest(ctx, oauthReq(oidc.KindAccess, sig, "g1", "did:a", "c"))
		s.CreateOAuthRequest(ctx, oauthReq(oidc.KindRefresh, sig, []string{"g1", "g2"}[i], "did:a", "c"))
	}
	s.CreateOAuthRequest(ctx, oauthReq(oidc.KindAccess, "other", "g3", "did:b", "c"))
	if err := s.DeactivateOAuthRequestsByRequestID(ctx, oidc.KindRefresh, "g1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetOAuthRequest(ctx, oidc.KindRefresh, "a1"); got.Active {
		t.Fatal("refresh of g1 still active")
	}
	if err := s.DeleteOAuthRequestsByRequestID(ctx, oidc.KindAccess, "g1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOAuthRequest(ctx, oidc.KindAccess, "a2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("access token of g1 survived")
	}
	n, err := s.DeleteGrantsOf(ctx, "did:a", "c")
	if err != nil || n != 3 { // code s1, refresh a1, refresh a2
		t.Fatalf("DeleteGrantsOf = %d, %v", n, err)
	}
	if _, err := s.GetOAuthRequest(ctx, oidc.KindAccess, "other"); err != nil {
		t.Fatal("another person's token was deleted")
	}
	if err := s.DeleteOAuthRequest(ctx, oidc.KindAccess, "other"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOAuthRequest(ctx, oidc.KindAccess, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// Client assertion ids are single-use until they expire.
	if err := s.UseClientAssertionJTI(ctx, "j", fixed.Add(time.Minute), fixed); err != nil {
		t.Fatal(err)
	}
	if err := s.UseClientAssertionJTI(ctx, "j", fixed.Add(time.Minute), fixed); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("replayed jti: %v", err)
	}
	if err := s.UseClientAssertionJTI(ctx, "j", fixed.Add(time.Hour), fixed.Add(2*time.Minute)); err != nil {
		t.Fatalf("jti after expiry: %v", err)
	}
}

func testTransactions(t *testing.T, s Store) {
	boom := errors.New("boom")
	err := s.InTx(ctx, func(ctx context.Context) error {
		if err := s.CreateOAuthRequest(ctx, oauthReq(oidc.KindAccess, "tx1", "g", "", "c")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx err = %v", err)
	}
	if _, err := s.GetOAuthRequest(ctx, oidc.KindAccess, "tx1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("rolled-back write is visible")
	}
	tctx, err := s.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.CreateOAuthRequest(tctx, oauthReq(oidc.KindAccess, "tx2", "g", "", "c"))
	if err := s.Commit(tctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOAuthRequest(ctx, oidc.KindAccess, "tx2"); err != nil {
		t.Fatalf("committed write missing: %v", err)
	}
}

func testChallengesPurge(t *testing.T, s Store) {
	a := mustAccount(t, s, "purge")
	ch := &oidc.Challenge{IDHash: "ch", ClientID: "c", Form: "a=b", NotBefore: fixed, CreatedAt: fixed, ExpiresAt: fixed.Add(time.Minute)}
	if err := s.CreateChallenge(ctx, ch); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetChallenge(ctx, "ch")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ch, got); diff != "" {
		t.Fatalf("challenge (-want +got):\n%s", diff)
	}
	s.CreateOAuthRequest(ctx, oauthReq(oidc.KindAccess, "old", "g", "", "c")) // expires fixed+1h
	live := oauthReq(oidc.KindAccess, "new", "g", "", "c")
	live.ExpiresAt = fixed.Add(48 * time.Hour)
	s.CreateOAuthRequest(ctx, live)
	s.CreateSession(ctx, &identity.Session{IDHash: "old", AccountDID: a.DID, AuthTime: fixed, CreatedAt: fixed, LastSeenAt: fixed, ExpiresAt: fixed.Add(time.Minute)})
	n, err := s.PurgeExpired(ctx, fixed.Add(2*time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("PurgeExpired = %d, %v; want 3", n, err)
	}
	if _, err := s.GetOAuthRequest(ctx, oidc.KindAccess, "new"); err != nil {
		t.Fatal("a live token was purged")
	}
	if _, err := s.GetChallenge(ctx, "ch"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("expired challenge kept")
	}
	if err := s.DeleteChallenge(ctx, "ch"); err != nil {
		t.Fatalf("deleting a missing challenge: %v", err)
	}
}

func testReleaseContext(t *testing.T, s Store) {
	a := mustAccount(t, s, "rel")
	got, c, st, err := s.ReleaseContext(ctx, a.DID, "svc")
	if err != nil || got.DID != a.DID || c != nil || st != nil {
		t.Fatalf("nothing granted: %v %v %v %v", got, c, st, err)
	}
	s.PutConsent(ctx, &privacy.Consent{AccountDID: a.DID, ClientID: "svc", Scopes: []string{"openid", "email"}, Claims: []string{"email"},
		GrantedAt: fixed, UpdatedAt: fixed})
	s.PutConsent(ctx, &privacy.Consent{AccountDID: a.DID, ClientID: "other", Scopes: []string{"openid"}, GrantedAt: fixed, UpdatedAt: fixed})
	s.PutSettings(ctx, a.DID, &privacy.Settings{Version: 2, SubjectMode: "public", ForkPolicy: "ask"}, fixed)
	_, c, st, err = s.ReleaseContext(ctx, a.DID, "svc")
	if err != nil || c == nil || c.ClientID != "svc" || len(c.Claims) != 1 || st == nil || st.SubjectMode != "public" {
		t.Fatalf("consent and settings: %+v %+v %v", c, st, err)
	}
	if _, _, _, err := s.ReleaseContext(ctx, "did:key:nobody", "svc"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
}
