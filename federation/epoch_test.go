package federation_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

// servedHome serves a side's real feed over HTTP and points peer's
// record of it there.
func servedHome(t *testing.T, home, follower *side) *federation.Peer {
	t.Helper()
	follower.peerOf(t, home)
	r := chi.NewRouter()
	home.fed.Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	follower.fed.HTTP = srv.Client()
	p := home.peerOf(t, follower)
	p.Endpoint = srv.URL
	if err := follower.db.PutPeer(ctx, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func createShared(t *testing.T, s *side, handle string) *identity.Account {
	t.Helper()
	a, err := s.fed.Accounts.Create(ctx, identity.CreateParams{Handle: handle, Name: handle, Password: "a fine password"})
	if err != nil {
		t.Fatal(err)
	}
	setSharing(t, s, a.DID, federation.ShareAll)
	return a
}

// TestResyncOnNewEpoch: a follower records the home's epoch and does not
// resync while it stays; when it changes, the follower replays the feed
// from 0, keeps what the replay mentions and the revoked tokens, sweeps
// the replicas and services it does not, and afterwards refuses copies of
// events signed for the old epoch.
func TestResyncOnNewEpoch(t *testing.T) {
	a, b := newSide(t, "https://a.example"), newSide(t, "https://b.example")
	if _, _, err := a.db.EnsureFeedEpoch(ctx, "E1"); err != nil {
		t.Fatal(err)
	}
	peerA := servedHome(t, a, b)
	erin := createShared(t, a, "erin")
	if err := b.fed.CatchUp(ctx, peerA); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.GetAccount(ctx, erin.DID); err != nil {
		t.Fatalf("erin on b: %v", err)
	}
	pe, _ := b.db.PeerEpoch(ctx, a.fed.Issuer)
	if pe.Epoch != "E1" || pe.Resyncs != 0 {
		t.Fatalf("after the first pages: %+v", pe)
	}
	oldCopies, err := a.fed.Page(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	// Unchanged: no resync.
	if err := b.fed.CatchUp(ctx, peerA); err != nil {
		t.Fatal(err)
	}
	if pe, _ := b.db.PeerEpoch(ctx, a.fed.Issuer); pe.Resyncs != 0 {
		t.Fatalf("a resync with the epoch unchanged: %+v", pe)
	}
	cursor := peerA.Cursor

	// What b holds from a that a's feed no longer mentions, and a
	// revocation b must keep.
	ghost := &identity.Account{DID: "did:key:z6MkghostGhostGhost", Handle: "ghost@a.example", Status: identity.StatusActive,
		HomeIssuer: a.fed.Issuer, PairwiseSecretSealed: []byte{1}, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := b.db.PutReplica(ctx, ghost); err != nil {
		t.Fatal(err)
	}
	if err := b.db.PutRemoteService(ctx, a.fed.Issuer, "gone-service", []byte(`{"client_id":"gone-service"}`), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := b.db.PutRevokedTokens(ctx, a.fed.Issuer, []federation.RevokedToken{{Hash: "feedface", ExpiresAt: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}

	if _, err := a.db.RotateFeedEpoch(ctx, "E1", "E2"); err != nil {
		t.Fatal(err)
	}
	if err := b.fed.CatchUp(ctx, peerA); err != nil {
		t.Fatal(err)
	}
	pe, _ = b.db.PeerEpoch(ctx, a.fed.Issuer)
	if pe.Epoch != "E2" || pe.Resyncs != 1 || pe.Resyncing || !strings.Contains(pe.Reason, "epoch changed from E1 to E2") || pe.DoneAt.IsZero() {
		t.Fatalf("after the epoch changed: %+v", pe)
	}
	got, _ := b.db.GetPeer(ctx, a.fed.Issuer)
	last, _ := a.db.LastEventSeq(ctx)
	applied, _ := b.db.ListApplied(ctx, a.fed.Issuer, 0, 1000)
	if got.Cursor != last || peerA.Cursor != last || cursor != last || len(applied) != len(oldCopies) {
		t.Fatalf("cursor %d (in memory %d, before %d), head %d, %d applied of %d", got.Cursor, peerA.Cursor, cursor, last, len(applied), len(oldCopies))
	}
	if _, err := b.db.GetAccount(ctx, erin.DID); err != nil {
		t.Fatalf("erin after the replay: %v", err)
	}
	if _, err := b.db.GetAccount(ctx, ghost.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a replica the replay did not mention survived: %v", err)
	}
	if _, err := b.db.RemoteService(ctx, a.fed.Issuer, "gone-service"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a service the replay did not mention survived: %v", err)
	}
	if revoked, _ := b.db.TokenRevoked(ctx, a.fed.Issuer, "feedface"); !revoked {
		t.Fatal("a revoked token was forgotten by the resync")
	}

	// Copies of the old epoch's events, sent again in the new epoch, are
	// refused: the applied set that stopped them before is gone.
	if err := b.db.StartResync(ctx, a.fed.Issuer, "E2", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	peerA.Cursor = 0
	err = b.fed.ApplyBatch(ctx, peerA, oldCopies)
	if !errors.Is(err, federation.ErrQuarantined) || !strings.Contains(err.Error(), `signed for feed epoch "E1"`) {
		t.Fatalf("old-epoch copies: %v", err)
	}
	if applied, _ := b.db.ListApplied(ctx, a.fed.Issuer, 0, 1000); len(applied) != 0 {
		t.Fatalf("%d old-epoch copies applied", len(applied))
	}
}

// restoredFeed serves a feed as captured at some point, with the head it
// had then: a home restored from a backup that did not notice.
type restoredFeed struct {
	mu    sync.Mutex
	epoch string
	items []federation.Item
}

func (h *restoredFeed) set(items []federation.Item) {
	h.mu.Lock()
	h.items = items
	h.mu.Unlock()
}

func (h *restoredFeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/federation/v1/events" {
		http.Error(w, "no stream here", http.StatusNotFound)
		return
	}
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []federation.Item{}
	var head int64
	for _, it := range h.items {
		head = max(head, it.Seq)
		if it.Seq > after && len(out) < limit {
			out = append(out, it)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"iss": "https://a.example", "epoch": h.epoch, "head": head, "events": out, "more": false})
}

// TestResyncOnHeadBelowCursor: a home restored without a new epoch serves
// a head below the follower's cursor; the follower replays it and drops
// the account made after the backup, keeping the others. Another process
// of the follower, on the same database, resyncs only once.
func TestResyncOnHeadBelowCursor(t *testing.T) {
	a, b := newSide(t, "https://a.example"), newSide(t, "https://b.example")
	if _, _, err := a.db.EnsureFeedEpoch(ctx, "E1"); err != nil {
		t.Fatal(err)
	}
	erin := createShared(t, a, "erin")
	backup, err := a.fed.Page(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	carol := createShared(t, a, "carol")
	full, err := a.fed.Page(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	feed := &restoredFeed{epoch: "E1", items: full}
	srv := httptest.NewServer(feed)
	defer srv.Close()
	b.fed.HTTP = srv.Client()
	peerA := a.peerOf(t, b)
	peerA.Endpoint = srv.URL
	if err := b.db.PutPeer(ctx, peerA); err != nil {
		t.Fatal(err)
	}
	if err := b.fed.CatchUp(ctx, peerA); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{erin.DID, carol.DID} {
		if _, err := b.db.GetAccount(ctx, d); err != nil {
			t.Fatalf("replica before the restore: %v", err)
		}
	}
	stale := *peerA // another process of b, on the same database
	feed.set(backup)
	if err := b.fed.CatchUp(ctx, peerA); err != nil {
		t.Fatal(err)
	}
	// The other process finds the resync done: it takes the cursor and
	// does not start another.
	b2 := &federation.Federation{Issuer: b.fed.Issuer, DID: b.fed.DID, Store: b.db, Keys: b.fed.Keys, Accounts: b.fed.Accounts, HTTP: b.fed.HTTP}
	if err := b2.CatchUp(ctx, &stale); err != nil {
		t.Fatal(err)
	}
	if stale.Cursor != peerA.Cursor {
		t.Fatalf("the other process's cursor %d, want %d", stale.Cursor, peerA.Cursor)
	}
	pe, _ := b.db.PeerEpoch(ctx, a.fed.Issuer)
	want := "feed head " + strconv.FormatInt(backup[len(backup)-1].Seq, 10) + " is below the cursor " + strconv.FormatInt(full[len(full)-1].Seq, 10)
	if pe.Resyncs != 1 || pe.Resyncing || pe.Epoch != "E1" || !strings.Contains(pe.Reason, want) {
		t.Fatalf("after the restore: %+v, want reason %q", pe, want)
	}
	if _, err := b.db.GetAccount(ctx, carol.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the account made after the backup survived the replay: %v", err)
	}
	if _, err := b.db.GetAccount(ctx, erin.DID); err != nil {
		t.Fatalf("erin after the replay: %v", err)
	}
	if p, _ := b.db.GetPeer(ctx, a.fed.Issuer); p.Cursor != backup[len(backup)-1].Seq {
		t.Fatalf("cursor %d after the replay", p.Cursor)
	}
	// The feed goes on from the restored head: no further resync.
	if err := b.fed.CatchUp(ctx, peerA); err != nil {
		t.Fatal(err)
	}
	if pe, _ := b.db.PeerEpoch(ctx, a.fed.Issuer); pe.Resyncs != 1 {
		t.Fatalf("resynced again: %+v", pe)
	}
}
