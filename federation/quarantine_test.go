package federation_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
)

// forgedFeed is a hostile peer's feed: the home's genuine events, with
// the ones listed in forged served with a changed payload (their
// signature no longer verifies).
type forgedFeed struct {
	mu     sync.Mutex
	items  []federation.Item
	forged map[int64]bool
}

func (h *forgedFeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if r.URL.Path != "/federation/v1/events" || limit <= 0 {
		http.Error(w, "no stream here", http.StatusNotFound)
		return
	}
	h.mu.Lock()
	var out []federation.Item
	for _, it := range h.items {
		if it.Seq > after && len(out) < limit {
			if h.forged[it.Seq] {
				it = forge(it)
			}
			out = append(out, it)
		}
	}
	h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"iss": "https://a.example", "events": out, "more": false})
}

func (h *forgedFeed) heal(seq int64) {
	h.mu.Lock()
	delete(h.forged, seq)
	h.mu.Unlock()
}

// forge changes the payload of it (its claims still read, its signature
// no longer verifies).
func forge(it federation.Item) federation.Item {
	parts := strings.Split(it.JWS, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	raw = append([]byte(" "), raw...) // the same claims, another payload
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	it.JWS = strings.Join(parts, ".")
	return it
}

// TestQuarantineForgedEvent: a peer's feed where one event is forged goes
// on past it: the good events of other accounts apply, the forged one is
// quarantined with its reason, the later event of the same account waits
// behind it, and a retry after the path heals applies both in order.
func TestQuarantineForgedEvent(t *testing.T) {
	a, b := newSide(t, "https://a.example"), newSide(t, "https://b.example")
	var logs bytes.Buffer
	b.fed.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	erin, err := a.fed.Accounts.Create(ctx, identity.CreateParams{Handle: "erin", Name: "Erin", Password: "a fine password"})
	if err != nil {
		t.Fatal(err)
	}
	frank, _ := a.fed.Accounts.Create(ctx, identity.CreateParams{Handle: "frank", Name: "Frank", Password: "a fine password"})
	setSharing(t, a, erin.DID, federation.ShareAll)
	setSharing(t, a, frank.DID, federation.ShareAll)
	name := "Erin Two"
	if err := a.fed.Accounts.UpdateProfile(ctx, erin.DID, &name, nil); err != nil {
		t.Fatal(err)
	}
	items, err := a.fed.Page(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	// N: erin's privacy.updated (it creates her replica); later: frank's,
	// then erin's account.updated.
	var n, later int64
	for _, it := range items {
		pl := payload(t, it)
		if pl.Account == erin.DID && pl.Type == "privacy.updated" {
			n = it.Seq
		}
		if pl.Account == erin.DID && pl.Type == "account.updated" && pl.Shared {
			later = it.Seq
		}
	}
	if n == 0 || later <= n {
		t.Fatalf("feed: %d events, N=%d, later=%d", len(items), n, later)
	}
	feed := &forgedFeed{items: items, forged: map[int64]bool{n: true}}
	srv := httptest.NewServer(feed)
	defer srv.Close()
	b.fed.HTTP = srv.Client()
	peerA := a.peerOf(t, b)
	peerA.Endpoint = srv.URL
	if err := b.db.PutPeer(ctx, peerA); err != nil {
		t.Fatal(err)
	}

	if err := b.fed.CatchUp(ctx, peerA); err != nil {
		t.Fatalf("the feed stopped at the forged event: %v", err)
	}
	last := items[len(items)-1].Seq
	if p, _ := b.db.GetPeer(ctx, peerA.Issuer); p.Cursor != last {
		t.Fatalf("cursor %d, want %d (past the forged %d)", p.Cursor, last, n)
	}
	if got, err := b.db.GetAccount(ctx, frank.DID); err != nil || got.Name != "Frank" {
		t.Fatalf("frank's events after the forged one: %+v %v", got, err)
	}
	// The feed serves an account's current state, so the order shows in
	// what was applied: erin's later event waits behind the forged one.
	if got := appliedSeqs(t, b, peerA); got[later] || got[n] || !got[later-1] {
		t.Fatalf("applied %v: the forged %d or erin's later %d applied, or frank's %d not", got, n, later, later-1)
	}
	qs, err := b.db.ListQuarantined(ctx, peerA.Issuer, 100)
	if err != nil || len(qs) != 2 || qs[0].Seq != n || qs[1].Seq != later {
		t.Fatalf("quarantine: %+v %v", qs, err)
	}
	if !strings.Contains(qs[0].Reason, "signature") || qs[0].HeldBy != 0 || qs[0].AccountDID != erin.DID || qs[0].Event == "" {
		t.Fatalf("forged event quarantined as %+v", qs[0])
	}
	if qs[1].HeldBy != n || !strings.Contains(qs[1].Reason, "held") {
		t.Fatalf("later event quarantined as %+v", qs[1])
	}
	if st := b.fed.Stats(); st.Quarantined != 2 {
		t.Fatalf("stats: %+v", st)
	}
	if !strings.Contains(logs.String(), "quarantined a peer event") || !strings.Contains(logs.String(), "peer=https://a.example") {
		t.Fatalf("quarantine not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), erin.DID) {
		t.Fatalf("the account's DID reached the log:\n%s", logs.String())
	}
	// Fetched again, the forged copy is not quarantined twice.
	b.fed.CatchUp(ctx, peerA)
	if qs, _ := b.db.ListQuarantined(ctx, peerA.Issuer, 100); len(qs) != 2 {
		t.Fatalf("quarantine after a second pass: %+v", qs)
	}

	// Retried while still forged: it stays, with one more attempt; the
	// held one waits.
	res, err := b.fed.RetryQuarantined(ctx, peerA, 0)
	if err != nil || len(res.Applied) != 0 || len(res.Failed) != 2 {
		t.Fatalf("retry while forged: %+v %v", res, err)
	}
	if qs, _ := b.db.ListQuarantined(ctx, peerA.Issuer, 100); qs[0].Attempts != 2 {
		t.Fatalf("attempts: %+v", qs[0])
	}
	// The path heals: the retry fetches the genuine event and applies
	// both, in order.
	feed.heal(n)
	res, err = b.fed.RetryQuarantined(ctx, peerA, n)
	if err != nil || len(res.Applied) != 2 || len(res.Failed) != 0 {
		t.Fatalf("retry after the fix: %+v %v", res, err)
	}
	if got, err := b.db.GetAccount(ctx, erin.DID); err != nil || got.Name != "Erin Two" {
		t.Fatalf("erin after the retry: %+v %v", got, err)
	}
	if got := appliedSeqs(t, b, peerA); !got[n] || !got[later] {
		t.Fatalf("applied after the retry: %v", got)
	}
	if qs, _ := b.db.ListQuarantined(ctx, peerA.Issuer, 100); len(qs) != 0 {
		t.Fatalf("quarantine after the retry: %+v", qs)
	}
}

func appliedSeqs(t *testing.T, s *side, p *federation.Peer) map[int64]bool {
	t.Helper()
	as, err := s.db.ListApplied(ctx, p.Issuer, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]bool{}
	for _, a := range as {
		got[a.Seq] = true
	}
	return got
}

// outageStore fails replica writes while down is set: a store outage.
type outageStore struct {
	federation.Store
	mu   sync.Mutex
	down bool
}

var errOutage = errors.New("database is down")

func (s *outageStore) PutReplica(ctx context.Context, a *identity.Account) error {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		return errOutage
	}
	return s.Store.PutReplica(ctx, a)
}

// TestQuarantineNotForOutages: a store failure while applying stops the
// batch, quarantines nothing and leaves the cursor; once the store is
// back the same events apply.
func TestQuarantineNotForOutages(t *testing.T) {
	a, b := newSide(t, "https://a.example"), newSide(t, "https://b.example")
	erin, err := a.fed.Accounts.Create(ctx, identity.CreateParams{Handle: "erin", Name: "Erin", Password: "a fine password"})
	if err != nil {
		t.Fatal(err)
	}
	setSharing(t, a, erin.DID, federation.ShareAll)
	items, err := a.fed.Page(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	st := &outageStore{Store: b.db, down: true}
	b.fed.Store = st
	peerA := a.peerOf(t, b)
	err = b.fed.ApplyBatch(ctx, peerA, items)
	if !errors.Is(err, errOutage) || errors.Is(err, federation.ErrRejected) {
		t.Fatalf("apply during an outage: %v", err)
	}
	if qs, _ := b.db.ListQuarantined(ctx, peerA.Issuer, 100); len(qs) != 0 {
		t.Fatalf("an outage quarantined %+v", qs)
	}
	if p, _ := b.db.GetPeer(ctx, peerA.Issuer); p.Cursor != 0 {
		t.Fatalf("cursor moved to %d during an outage", p.Cursor)
	}
	st.mu.Lock()
	st.down = false
	st.mu.Unlock()
	if err := b.fed.ApplyBatch(ctx, peerA, items); err != nil {
		t.Fatal(err)
	}
	if got, err := b.db.GetAccount(ctx, erin.DID); err != nil || got.Name != "Erin" {
		t.Fatalf("after the outage: %+v %v", got, err)
	}
}

// TestQuarantineBound: at most Limits.MaxQuarantine events are kept per
// peer; the oldest give way and are counted; malformed events hold no
// account.
func TestQuarantineBound(t *testing.T) {
	a, b := newSide(t, "https://a.example"), newSide(t, "https://b.example")
	b.fed.Limits.MaxQuarantine = 3
	peerA := a.peerOf(t, b)
	var junk []federation.Item
	for seq := int64(1); seq <= 5; seq++ {
		junk = append(junk, federation.Item{Seq: seq, JWS: "not.a.jws"})
	}
	if err := b.fed.ApplyBatch(ctx, peerA, junk); !errors.Is(err, federation.ErrQuarantined) {
		t.Fatalf("malformed events: %v", err)
	}
	qs, err := b.db.ListQuarantined(ctx, peerA.Issuer, 100)
	if err != nil || len(qs) != 3 || qs[0].Seq != 3 || qs[2].Seq != 5 || !strings.Contains(qs[0].Reason, "malformed") {
		t.Fatalf("bounded quarantine: %+v %v", qs, err)
	}
	held, dropped, err := b.db.QuarantineCount(ctx, peerA.Issuer)
	if err != nil || held != 3 || dropped != 2 {
		t.Fatalf("count: %d held, %d dropped, %v", held, dropped, err)
	}
	// Malformed events never verify, so they do not move the cursor.
	if p, _ := b.db.GetPeer(ctx, peerA.Issuer); p.Cursor != 0 {
		t.Fatalf("cursor moved to %d on unverified sequence numbers", p.Cursor)
	}
	// Drop discards one.
	if _, err := b.fed.DropQuarantined(ctx, peerA, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := b.fed.DropQuarantined(ctx, peerA, 4); !errors.Is(err, federation.ErrNotQuarantined) {
		t.Fatalf("drop twice: %v", err)
	}
	if held, _, _ := b.db.QuarantineCount(ctx, peerA.Issuer); held != 2 {
		t.Fatalf("%d held after a drop", held)
	}
}
