package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/did"
)

// endless yields prefix once, then unit over and over, up to limit bytes
// in all, counting what was read.
type endless struct {
	prefix, unit []byte
	limit, read  int
}

func (e *endless) Read(p []byte) (int, error) {
	if e.read >= e.limit {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && e.read < e.limit {
		var src []byte
		if e.read < len(e.prefix) {
			src = e.prefix[e.read:]
		} else {
			off := (e.read - len(e.prefix)) % len(e.unit)
			src = e.unit[off:]
		}
		c := copy(p[n:], src[:min(len(src), e.limit-e.read)])
		n += c
		e.read += c
	}
	return n, nil
}

// TestStreamReaderBounds: the reader of a peer's stream refuses a line or
// an event longer than the bound after reading at most about the bound,
// and reads well-formed streams whole.
func TestStreamReaderBounds(t *testing.T) {
	const maxEvent = 256 << 10
	atLimit := func() string {
		head := `{"seq":7,"jws":"`
		return head + strings.Repeat("a", maxEvent-len(head)-2) + `"}`
	}()
	for name, tc := range map[string]struct {
		in       io.Reader
		tooLarge bool
		seqs     []int64 // items read, heartbeats as 0
	}{
		"one endless line":   {in: &endless{prefix: []byte("data: "), unit: []byte("x"), limit: 64 << 20}, tooLarge: true},
		"endless data lines": {in: &endless{unit: []byte("data: " + strings.Repeat("y", 1000) + "\n"), limit: 64 << 20}, tooLarge: true},
		"endless comment":    {in: &endless{prefix: []byte(":"), unit: []byte("z"), limit: 64 << 20}, tooLarge: true},
		"endless id field":   {in: &endless{prefix: []byte("id: "), unit: []byte("9"), limit: 64 << 20}, tooLarge: true},
		"events and pings": {in: strings.NewReader(": https://a.example\n\nid: 1\nevent: event\ndata: {\"seq\":1,\"jws\":\"a.b.c\"}\n\n: ping\n\r\n" +
			"data: {\"seq\":2,\r\ndata: \"jws\":\"d.e.f\"}\r\n\r\n"), seqs: []int64{0, 1, 0, 2}},
		"an event at the limit": {in: strings.NewReader("data: " + atLimit + "\n\n"), seqs: []int64{7}},
		"an event one past":     {in: strings.NewReader("data: " + atLimit + "a\n\n"), tooLarge: true},
		"two lines one past":    {in: strings.NewReader("data: " + atLimit[:1000] + "\ndata: " + atLimit[1000:] + "\n\n"), tooLarge: true},
	} {
		t.Run(name, func(t *testing.T) {
			// As the follower reads a stream: items go to the applier,
			// each taking room until applied.
			items := make(chan Item, 8)
			room := newInflight(1<<20, maxEvent)
			done := make(chan struct{})
			defer close(done)
			errc := make(chan error, 1)
			go func() { errc <- readStream(tc.in, maxEvent, items, room, done); close(items) }()
			var got []int64
			for it := range items {
				got = append(got, it.Seq)
				room.release(it)
				if len(got) > 100 {
					t.Fatal("more items than the stream holds")
				}
			}
			err := <-errc
			if tc.tooLarge != errors.Is(err, ErrTooLarge) || (!tc.tooLarge && err != nil) {
				t.Fatalf("error %v; want too large: %v", err, tc.tooLarge)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.seqs) && !tc.tooLarge {
				t.Fatalf("items %v, want %v", got, tc.seqs)
			}
			if e, ok := tc.in.(*endless); ok && e.read > maxEvent+64<<10 {
				t.Fatalf("read %d bytes before refusing; the bound is %d", e.read, maxEvent)
			}
		})
	}
}

// TestInflightBounds: the bytes between the stream reader and the
// database stay bounded, and an event of the largest size fits.
func TestInflightBounds(t *testing.T) {
	room := newInflight(1<<20, 256<<10)
	done := make(chan struct{})
	big := Item{Seq: 1, JWS: strings.Repeat("a", 256<<10)}
	held := 0
	for room.acquireNow(big) {
		held += len(big.JWS)
		if held > 2<<20 {
			t.Fatal("the backlog is not bounded")
		}
	}
	if held == 0 || held > 1<<20+inflightUnit {
		t.Fatalf("held %d bytes, want about 1 MiB", held)
	}
	room.release(big)
	if !room.acquire(big, done) {
		t.Fatal("room released is not available again")
	}
	close(done)
	if room.acquire(big, done) {
		t.Fatal("acquired past the bound")
	}
}

// acquireNow takes room for it if there is some now, without waiting.
func (c inflight) acquireNow(it Item) bool {
	if cap(c)-len(c) < c.cost(it) {
		return false
	}
	return c.acquire(it, nil)
}

// FuzzStreamReader: whatever bytes a peer sends as its stream, the reader
// neither panics nor holds more than its bound, and every event it
// returns fits the bound.
func FuzzStreamReader(f *testing.F) {
	for _, s := range []string{
		": https://a.example\n\nid: 1\nevent: event\ndata: {\"seq\":1,\"jws\":\"a.b.c\",\"person_jws\":\"d.e.f\"}\n\n: ping\n\n",
		"data: {\"seq\":2,\r\ndata: \"jws\":\"d.e.f\"}\r\n\r\n",
		"data:{\"seq\":3}\n\n",
		"data: " + strings.Repeat("x", 600) + "\n\n",
		"data: {\"seq\":4}\ndata: " + strings.Repeat("y", 300) + "\n\n",
		"retry: 10\nid\nevent\n\n\n",
		"data: {\"seq\":-1,\"jws\":1}\n\n",
	} {
		f.Add([]byte(s))
	}
	const maxEvent = 512
	f.Fuzz(func(t *testing.T, in []byte) {
		sr := newStreamReader(bytes.NewReader(in), maxEvent)
		for n := 0; ; n++ {
			it, err := sr.next()
			if len(sr.data) > maxEvent {
				t.Fatalf("holds %d bytes of event data", len(sr.data))
			}
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrTooLarge) && !strings.Contains(err.Error(), "not JSON") {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(it.JWS)+len(it.PersonJWS) > maxEvent {
				t.Fatalf("an event of %d bytes passed a bound of %d", len(it.JWS)+len(it.PersonJWS), maxEvent)
			}
			if n > len(in) {
				t.Fatal("more items than bytes")
			}
		}
	})
}

// failTransport refuses every request: verification must not need the
// network.
type failTransport struct{ t testing.TB }

func (ft failTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ft.t.Errorf("verification made a request to %s", r.URL.Redacted())
	return nil, errors.New("no network here")
}

// fuzzKeys are fixed keys: the peer cloud's and one account's.
type fuzzKeys struct {
	fed    *Federation
	peer   *Peer
	cloud  jose.Signer
	person *did.Key
}

func newFuzzKeys(t testing.TB) *fuzzKeys {
	cloudPriv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	person, err := did.KeyFromPrivate(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: cloudPriv},
		(&jose.SignerOptions{}).WithType(EventType).WithHeader("kid", "cloud-1"))
	if err != nil {
		t.Fatal(err)
	}
	const issuer = "https://a.example"
	peer := &Peer{Issuer: issuer, JWKSURI: issuer + "/jwks.json",
		JWKS: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: cloudPriv.Public(), KeyID: "cloud-1", Algorithm: "EdDSA", Use: "sig"}}}}
	fed := &Federation{Issuer: "https://b.example", HTTP: &http.Client{Transport: failTransport{t}}}
	// An unknown kid would refresh the peer's keys; here it never may.
	fed.keyFetch = map[string]time.Time{issuer: time.Now().Add(100 * 365 * 24 * time.Hour)}
	return &fuzzKeys{fed: fed, peer: peer, cloud: s, person: person}
}

// item signs payload as the peer (and as the person, when the payload
// names the fixed account).
func (k *fuzzKeys) item(t testing.TB, payload []byte) Item {
	obj, err := k.cloud.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	var it Item
	it.JWS, _ = obj.CompactSerialize()
	var pl Payload
	if json.Unmarshal(payload, &pl) == nil {
		it.Seq = pl.Seq
		if pl.Account == k.person.DID {
			if it.PersonJWS, err = did.Sign(k.person.Private, k.person.KeyID, payload, map[string]any{"typ": EventType}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return it
}

// FuzzVerify: a received event (the item as the feed serves it, or a
// payload signed with the peer's fixed key) is verified without network
// and without panicking; what verifies names the peer and the item's
// sequence number.
func FuzzVerify(f *testing.F) {
	k := newFuzzKeys(f)
	person := k.person.DID
	payloads := []string{
		`{"iss":"https://a.example","seq":1,"type":"account.created","account":"` + person + `","at":1795765335850035,"shared":false}`,
		`{"iss":"https://a.example","seq":2,"type":"account.updated","account":"` + person + `","at":1795765335850035,"shared":true,"data":{"handle":"dana","status":"active","home":"https://a.example","pairwise_secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","created_at":1,"updated_at":2,"settings":null}}`,
		`{"iss":"https://a.example","seq":3,"type":"token.revoked","account":"","at":1,"shared":true,"data":{"tokens":[{"hash":"00ff","exp":2000000000}]}}`,
		`{"iss":"https://a.example","seq":4,"type":"consent.granted","account":"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK","at":1,"shared":true,"data":{"client_id":"forum"}}`,
		`{"iss":"https://elsewhere.example","seq":5,"type":"account.deleted","account":"` + person + `","at":1,"shared":true}`,
		`{"iss":"https://a.example","seq":6,"type":"service.registered","at":1,"shared":true,"data":{"client_id":"forum","redirect_uris":["https://forum.example/cb"]}}`,
	}
	ctx := context.Background()
	for i, p := range payloads {
		it := k.item(f, []byte(p))
		// The harness is sound: the seeds verify, but for the person's
		// event without their signature and the one of another issuer.
		if _, err := k.fed.verify(ctx, k.peer, it); (err == nil) != (i != 3 && i != 4) {
			f.Fatalf("seed %d: %v", i, err)
		}
		raw, _ := json.Marshal(it)
		f.Add(string(raw), []byte(p))
	}
	f.Add(`{"seq":1,"jws":"eyJhbGciOiJub25lIn0.e30."}`, []byte(nil))
	f.Add(`{"seq":9,"jws":"a.b.c","person_jws":"d.e.f"}`, []byte(`not json`))
	f.Fuzz(func(t *testing.T, received string, payload []byte) { verifyOne(t, k, received, payload) })
}

// verifyOne is one run of FuzzVerify.
func verifyOne(t *testing.T, k *fuzzKeys, received string, payload []byte) {
	ctx := context.Background()
	k.fed.HTTP = &http.Client{Transport: failTransport{t}}
	check := func(it Item) {
		pl, err := k.fed.verify(ctx, k.peer, it)
		if err != nil {
			return
		}
		if pl.Issuer != k.peer.Issuer || pl.Seq != it.Seq {
			t.Fatalf("verified an event of %q seq %d as item %d", pl.Issuer, pl.Seq, it.Seq)
		}
		if pl.Shared && personTypes[pl.Type] && len(pl.Data) > 0 && it.PersonJWS == "" {
			t.Fatal("verified a person's event without their signature")
		}
	}
	var it Item
	if json.Unmarshal([]byte(received), &it) == nil {
		// Only payloads signed with the fixed cloud key get as far as
		// the person's signature, and those name did:key accounts,
		// which resolve without network.
		check(it)
	}
	if len(payload) > 0 {
		check(k.item(t, payload))
	}
}
