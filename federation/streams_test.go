package federation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/federation"
)

// hostileFeed pretends to be a peer's feed: empty pages, and a stream
// that sends prefix, then unit over and over, up to limit bytes, then
// holds the connection open without a word.
type hostileFeed struct {
	path         string // the hostile endpoint; the other answers as a quiet peer
	prefix, unit []byte
	limit        int

	mu    sync.Mutex
	conns []streamConn
	full  chan struct{} // closed when a stream sent all of limit
}

type streamConn struct {
	start, end time.Time
	sent       int
	dropped    bool // the follower went away before the end
}

func (h *hostileFeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != h.path {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"iss":"https://a.example","events":[],"next":0,"more":false}`))
		return
	}
	c := streamConn{start: time.Now()}
	w.WriteHeader(http.StatusOK)
	chunk := []byte(strings.Repeat(string(h.unit), max(1, (32<<10)/len(h.unit))))
	w.Write(h.prefix)
	for c.sent < h.limit {
		n, err := w.Write(chunk)
		c.sent += n
		if err != nil {
			c.dropped = true
			break
		}
	}
	if !c.dropped {
		http.NewResponseController(w).Flush()
		select {
		case <-h.full:
		default:
			close(h.full)
		}
		<-r.Context().Done() // holds the follower on the line
		c.dropped = true
	}
	c.end = time.Now()
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
}

func (h *hostileFeed) done() []streamConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]streamConn(nil), h.conns...)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestHostilePeerStream: a peer whose stream never ends its event (one
// endless line, or data lines without the blank line that ends an event),
// or whose feed page never ends, is disconnected after about the limit,
// holds little memory here, is counted, and is reconnected to only after
// a back-off.
func TestHostilePeerStream(t *testing.T) {
	const bound = 64 << 20 // what the hostile peer sends at most
	for name, tc := range map[string]struct {
		path, prefix, unit string
		limits             federation.Limits
	}{
		"one endless line":   {path: "/federation/v1/stream", prefix: ": https://a.example\n\ndata: ", unit: "x"},
		"endless data lines": {path: "/federation/v1/stream", prefix: ": https://a.example\n\n", unit: "data: " + strings.Repeat("y", 1000) + "\n"},
		// A page is read whole before it is applied: the heap holds up to
		// about twice its bound, here 4 MiB.
		"endless page": {path: "/federation/v1/events", prefix: `{"iss":"https://a.example","events":[`, unit: `{"seq":1,"jws":"a.b.c"},`,
			limits: federation.Limits{MaxPage: 4 << 20}},
	} {
		t.Run(name, func(t *testing.T) {
			b := newSide(t, "http://127.0.0.1:9")
			b.fed.Limits = tc.limits
			h := &hostileFeed{path: tc.path, prefix: []byte(tc.prefix), unit: []byte(tc.unit), limit: bound, full: make(chan struct{})}
			srv := httptest.NewServer(h)
			defer srv.Close()
			pub, err := b.fed.Keys.Published(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The peer's keys do not matter: no event gets as far as
			// verification.
			if err := b.db.PutPeer(ctx, &federation.Peer{Issuer: "https://a.example", DID: "did:web:a.example", JWKSURI: "https://a.example/jwks.json",
				JWKS: jose.JSONWebKeySet{Keys: pub}, Endpoint: srv.URL, Metadata: []byte(`{}`), AddedAt: time.Now(), KeysAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			before := heapInUse()
			rctx, cancel := context.WithCancel(ctx)
			ran := make(chan struct{})
			go func() { b.fed.Run(rctx); close(ran) }()
			defer func() { cancel(); <-ran }()

			// Wait for the follower to drop the first stream and open a
			// second, or for the hostile peer to have sent everything.
			deadline := time.After(30 * time.Second)
			for len(h.done()) < 2 {
				select {
				case <-h.full:
					grown := int64(heapInUse()) - int64(before)
					t.Fatalf("the follower read all %d MiB without disconnecting; the heap grew by %d MiB", bound>>20, grown>>20)
				case <-deadline:
					t.Fatal("no second stream within 30 s")
				case <-time.After(20 * time.Millisecond):
				}
				// Far below the 64 MiB sent: the follower's reads (a page
				// buffer grows by copying), with room for what else the
				// test process holds on a busy machine.
				if grown := int64(heapInUse()) - int64(before); grown > 24<<20 {
					t.Fatalf("the heap grew by %d MiB while reading a hostile stream", grown>>20)
				}
			}
			cs := h.done()
			if !cs[0].dropped || cs[0].sent > federation.DefaultMaxPage+16<<20 {
				t.Fatalf("first stream: sent %d bytes, dropped %v", cs[0].sent, cs[0].dropped)
			}
			if gap := cs[1].start.Sub(cs[0].end); gap < 150*time.Millisecond {
				t.Fatalf("reconnected %v after the drop, without backing off", gap)
			}
			if st := b.fed.Stats(); st.Oversize < 1 {
				t.Fatalf("the drop was not counted: %+v", st)
			}
			// The follower records the drop once its read has failed,
			// which may be just after the peer saw the connection end, and
			// a catch-up that succeeds in between clears it: poll for it.
			var last string
			for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				p, err := b.db.GetPeer(ctx, "https://a.example")
				if err != nil {
					t.Fatal(err)
				}
				if last = p.LastError; strings.Contains(last, "size limit") {
					break
				}
			}
			if !strings.Contains(last, "size limit") {
				t.Fatalf("peer's last error: %q", last)
			}
		})
	}
}

// TestFeedBounds: the feed refuses repeated or oversized parameters and
// tokens, and keeps a page within its byte budget (saying more follows),
// so that a follower with the default limit reads every page.
func TestFeedBounds(t *testing.T) {
	a, b := newSide(t, "https://a.example"), newSide(t, "https://b.example")
	b.peerOf(t, a)
	// 200 events of about 28 KiB: 5.6 MB in all.
	var toks []map[string]any
	for i := range 200 {
		toks = append(toks, map[string]any{"hash": strings.Repeat("0", 60) + fmt.Sprintf("%04x", i), "exp": time.Now().Add(time.Hour).Unix()})
	}
	if err := a.db.InTx(ctx, func(ctx context.Context) error {
		for range 200 {
			if err := a.db.AppendEvent(ctx, "token.revoked", "", time.Now().UTC(), map[string]any{"tokens": toks}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	a.fed.Mount(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	good, err := b.fed.PeerToken(ctx, a.fed.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, token string, hdr ...string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Add(hdr[i], hdr[i+1])
		}
		// Bounded: a stream served where it should be refused ends too.
		// A page of 1000 signed events takes seconds under -race on a
		// busy machine: the bound is generous, and a body cut short fails
		// here rather than as a JSON error.
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil && !strings.HasSuffix(path, "/stream") {
			t.Fatalf("%s: reading the body: %v", path, err)
		}
		return resp, body
	}
	for name, tc := range map[string]struct {
		path, token string
		hdr         []string
		want        int
	}{
		"after twice":           {"/federation/v1/events?after=1&after=0", good, nil, 400},
		"limit twice":           {"/federation/v1/events?limit=1&limit=1000", good, nil, 400},
		"long limit":            {"/federation/v1/events?limit=00000000000000000001", good, nil, 400},
		"long cursor":           {"/federation/v1/events?after=" + strings.Repeat("0", 40) + "1", good, nil, 400},
		"stream, after twice":   {"/federation/v1/stream?after=1&after=2", good, nil, 400},
		"two Last-Event-IDs":    {"/federation/v1/stream", good, []string{"Last-Event-ID", "1", "Last-Event-ID", "2"}, 400},
		"an oversized token":    {"/federation/v1/stream", strings.Repeat("a", 9<<10), nil, 401},
		"two tokens":            {"/federation/v1/events", good, []string{"Authorization", "Bearer " + good}, 401},
		"stream, not a peer":    {"/federation/v1/stream", "abc", nil, 401},
		"a page, within bounds": {"/federation/v1/events?limit=3", good, nil, 200},
	} {
		resp, _ := get(tc.path, tc.token, tc.hdr...)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", name, resp.StatusCode, tc.want)
		}
	}
	// The page budget: a page of up to 1000 events stays under about
	// 4 MiB, and says that more follow; paging gets every event.
	var after int64
	seen := 0
	for pages := 0; ; pages++ {
		resp, body := get(fmt.Sprintf("/federation/v1/events?limit=1000&after=%d", after), good)
		if resp.StatusCode != 200 {
			t.Fatalf("page: %s %s", resp.Status, body)
		}
		if len(body) > 4<<20+64<<10 || len(body) > federation.DefaultMaxPage {
			t.Fatalf("a page of %d bytes", len(body))
		}
		var page struct {
			Events []federation.Item `json:"events"`
			Next   int64             `json:"next"`
			More   bool              `json:"more"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		seen += len(page.Events)
		after = page.Next
		if !page.More {
			if pages == 0 {
				t.Fatal("5.6 MB of events came in one page")
			}
			break
		}
	}
	if seen != 200 {
		t.Fatalf("paged %d events of 200", seen)
	}
}
