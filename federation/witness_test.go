package federation_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/testdb"
	"github.com/onecommons/commonsid/keys"
)

// witnessWorld: A witnesses for its peer B, which reaches A's server.
type witnessWorld struct {
	a, b   *side
	peerA  *federation.Peer // A, as B knows it
	url    string
	signer ed25519.PrivateKey
}

func newWitnessWorld(t *testing.T) *witnessWorld {
	t.Helper()
	w := &witnessWorld{a: newSide(t, "https://a.example"), b: newSide(t, "https://b.example")}
	w.b.peerOf(t, w.a) // A authenticates B
	srv := w.a.serve(t)
	w.url = srv.URL + federation.WitnessPath
	pa := w.a.peerOf(t, w.b)
	pa.Endpoint = srv.URL
	if err := w.b.db.PutPeer(ctx, pa); err != nil {
		t.Fatal(err)
	}
	w.peerA, _ = w.b.db.GetPeer(ctx, pa.Issuer)
	w.b.fed.HTTP = srv.Client()
	_, w.signer, _ = ed25519.GenerateKey(rand.Reader)
	return w
}

// post sends body to A's witness endpoint.
func (w *witnessWorld) post(t *testing.T, token, ctype string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", w.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// witnessed verifies log with the witness threshold, did-witness.json
// being the proofs given.
func witnessed(log []byte, proofs ...[]webvh.WitnessProofs) error {
	var all []webvh.WitnessProofs
	for _, p := range proofs {
		all = append(all, p...)
	}
	file, _ := json.Marshal(all)
	_, err := webvh.Verify(log, webvh.Options{Witness: func() ([]byte, error) { return file, nil }})
	return err
}

func ttl(n int64) *int64 { return &n }

// TestWitnessLog: the witness proves a log and its extensions (the proofs
// meet a threshold of 1 naming its did:key), refuses a fork at a version
// already witnessed and an older log, and keeps what it witnessed.
func TestWitnessLog(t *testing.T) {
	w := newWitnessWorld(t)
	wid, err := w.a.fed.WitnessID()
	if err != nil || !strings.HasPrefix(wid, "did:key:z6Mk") {
		t.Fatalf("witness id %q %v", wid, err)
	}
	if svc := w.a.fed.WitnessService(); svc == nil || svc.ID != wid || svc.Endpoint != "https://a.example"+federation.WitnessPath {
		t.Fatalf("discovery entry %+v", svc)
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	l1, err := webvh.Create(webvh.CreateOptions{HostPath: "b.example:accounts:vera", UpdateKeys: []ed25519.PublicKey{w.signer.Public().(ed25519.PublicKey)},
		Witness: &webvh.Witness{Threshold: 1, Witnesses: []webvh.WitnessMember{{ID: wid}}}, Time: t0, Signer: w.signer})
	if err != nil {
		t.Fatal(err)
	}
	if err := witnessed(l1.Bytes()); !errors.Is(err, webvh.ErrWitness) {
		t.Fatalf("unwitnessed log: %v", err)
	}
	p1, err := w.b.fed.RequestWitness(ctx, w.peerA, l1.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(p1) != 1 || p1[0].VersionID != l1.Result().Metadata.VersionID {
		t.Fatalf("proofs %+v", p1)
	}
	if err := witnessed(l1.Bytes(), p1); err != nil {
		t.Fatalf("witnessed log: %v", err)
	}

	// An extension: proofs for the new entry only, which meet the threshold.
	l2, err := l1.Update(webvh.UpdateOptions{TTL: ttl(60), Time: t0.Add(time.Minute), Signer: w.signer})
	if err != nil {
		t.Fatal(err)
	}
	v2 := l2.Result().Metadata.VersionID
	p2, err := w.b.fed.RequestWitness(ctx, w.peerA, l2.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(p2) != 1 || p2[0].VersionID != v2 {
		t.Fatalf("extension proofs %+v", p2)
	}
	if err := witnessed(l2.Bytes(), p2); err != nil {
		t.Fatalf("witnessed extension: %v", err)
	}
	scid := l1.Result().Metadata.SCID
	head, err := w.a.db.WitnessedLog(ctx, scid)
	if err != nil || head.VersionID != v2 || head.VersionNumber != 2 || !bytes.Equal(head.Log, l2.Bytes()) || head.DID != l2.Result().DID {
		t.Fatalf("head %+v %v", head, err)
	}

	// A fork: a second, validly signed entry at version 2.
	fork, err := l1.Update(webvh.UpdateOptions{TTL: ttl(120), Time: t0.Add(time.Minute), Signer: w.signer})
	if err != nil {
		t.Fatal(err)
	}
	if fork.Result().Metadata.VersionID == v2 {
		t.Fatal("the fork is the same entry")
	}
	if _, err := w.b.fed.RequestWitness(ctx, w.peerA, fork.Bytes()); !errors.Is(err, federation.ErrWitnessFork) {
		t.Fatalf("fork: %v", err)
	}
	longer, err := fork.Update(webvh.UpdateOptions{TTL: ttl(180), Time: t0.Add(2 * time.Minute), Signer: w.signer})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := w.b.fed.PeerToken(ctx, w.a.fed.Issuer)
	if st, out := w.post(t, tok, "application/jsonl", longer.Bytes()); st != 409 || out["error"] != "fork" || out["proofs"] != nil {
		t.Fatalf("longer fork: %d %v", st, out)
	}
	// An older log.
	if _, err := w.b.fed.RequestWitness(ctx, w.peerA, l1.Bytes()); !errors.Is(err, federation.ErrWitnessStale) {
		t.Fatalf("stale: %v", err)
	}
	if st, out := w.post(t, tok, "text/jsonl", l1.Bytes()); st != 409 || out["error"] != "stale" {
		t.Fatalf("stale: %d %v", st, out)
	}
	after, err := w.a.db.WitnessedLog(ctx, scid)
	if err != nil || after.VersionID != v2 || !bytes.Equal(after.Log, l2.Bytes()) || !after.UpdatedAt.Equal(head.UpdatedAt) {
		t.Fatalf("refusals changed the witnessed head: %+v %v", after, err)
	}
	// The same log again is proved again (a retry).
	if p, err := w.b.fed.RequestWitness(ctx, w.peerA, l2.Bytes()); err != nil || len(p) != 1 || p[0].VersionID != v2 {
		t.Fatalf("retry: %+v %v", p, err)
	}
}

// TestWitnessRefusals: only peers ask; a body over the log bound, a
// malformed or tampered log and another media type are refused.
func TestWitnessRefusals(t *testing.T) {
	w := newWitnessWorld(t)
	wid, _ := w.a.fed.WitnessID()
	l, err := webvh.Create(webvh.CreateOptions{HostPath: "b.example:accounts:wes", UpdateKeys: []ed25519.PublicKey{w.signer.Public().(ed25519.PublicKey)},
		Witness: &webvh.Witness{Threshold: 1, Witnesses: []webvh.WitnessMember{{ID: wid}}}, Signer: w.signer})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := w.b.fed.PeerToken(ctx, w.a.fed.Issuer)
	if st, out := w.post(t, "", "application/jsonl", l.Bytes()); st != 401 || out["proofs"] != nil {
		t.Fatalf("without a peer token: %d %v", st, out)
	}
	stranger := newSide(t, "https://s.example")
	stok, _ := stranger.fed.PeerToken(ctx, w.a.fed.Issuer)
	if st, out := w.post(t, stok, "application/jsonl", l.Bytes()); st != 401 || out["proofs"] != nil {
		t.Fatalf("a cloud that is not a peer: %d %v", st, out)
	}
	tampered := bytes.Replace(l.Bytes(), []byte("b.example"), []byte("c.example"), 1)
	for name, tc := range map[string]struct {
		ctype string
		body  []byte
		want  int
		code  string
	}{
		"oversize":       {"application/jsonl", bytes.Repeat([]byte("x"), webvh.DefaultLimits.MaxLogBytes+1), 413, "too_large"},
		"not JSON Lines": {"application/jsonl", []byte("not a log\n"), 400, "invalid_log"},
		"empty":          {"application/jsonl", nil, 400, "invalid_log"},
		"tampered entry": {"application/jsonl", tampered, 400, "invalid_log"},
		"JSON body":      {"application/json", l.Bytes(), 415, "invalid_request"},
	} {
		st, out := w.post(t, tok, tc.ctype, tc.body)
		if st != tc.want || out["error"] != tc.code || out["proofs"] != nil {
			t.Errorf("%s: %d %v, want %d %s", name, st, out, tc.want, tc.code)
		}
	}
	if _, err := w.a.db.WitnessedLog(ctx, l.Result().Metadata.SCID); err == nil {
		t.Fatal("a refused request stored a witnessed log")
	}
	// The refusals left nothing; the log itself is witnessed.
	if p, err := w.b.fed.RequestWitness(ctx, w.peerA, l.Bytes()); err != nil || witnessed(l.Bytes(), p) != nil {
		t.Fatalf("witness after refusals: %v", err)
	}
}

// TestWitnessKey: the witness key comes from the key-encryption key: the
// same KEK gives the same witness id, another KEK another.
func TestWitnessKey(t *testing.T) {
	id := func(seed byte) string {
		kek, err := keys.NewKEK(bytes.Repeat([]byte{seed}, keys.KEKSize))
		if err != nil {
			t.Fatal(err)
		}
		f := &federation.Federation{Issuer: "https://a.example", Keys: &keys.Manager{KEK: kek}}
		s, err := f.WitnessID()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if a, b, c := id(1), id(1), id(2); a != b || a == c {
		t.Fatalf("witness ids %s %s %s", a, b, c)
	}
	kek, _ := keys.NewKEK(bytes.Repeat([]byte{1}, keys.KEKSize))
	other, _ := kek.Derive("commonsid/other/v1", ed25519.SeedSize)
	if bytes.Equal(ed25519.NewKeyFromSeed(other).Public().(ed25519.PublicKey), mustPub(t, id(1))) {
		t.Fatal("the witness key is not domain-separated")
	}
}

func mustPub(t *testing.T, didKey string) ed25519.PublicKey {
	t.Helper()
	pub, err := webvh.ParseMultikey(strings.TrimPrefix(didKey, "did:key:"))
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestWitnessPeerBound: a peer has at most MaxWitnessedPerPeer SCIDs
// witnessed; a new one over it is refused, an extension still witnessed.
func TestWitnessPeerBound(t *testing.T) {
	w := newWitnessWorld(t)
	wid, _ := w.a.fed.WitnessID()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	mk := func(name string) *webvh.Log {
		l, err := webvh.Create(webvh.CreateOptions{HostPath: "b.example:accounts:" + name, UpdateKeys: []ed25519.PublicKey{w.signer.Public().(ed25519.PublicKey)},
			Witness: &webvh.Witness{Threshold: 1, Witnesses: []webvh.WitnessMember{{ID: wid}}}, Time: t0, Signer: w.signer})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	kept := mk("kept")
	if _, err := w.b.fed.RequestWitness(ctx, w.peerA, kept.Bytes()); err != nil {
		t.Fatal(err)
	}
	err := w.a.db.InTx(ctx, func(ctx context.Context) error {
		for i := 1; i < federation.MaxWitnessedPerPeer; i++ {
			if _, err := w.a.db.PutWitnessedLog(ctx, &federation.WitnessedLog{SCID: fmt.Sprint("QmFill", i), DID: "did:webvh:x", VersionNumber: 1,
				VersionID: "1-x", EntryHash: "x", Log: []byte("x\n"), Peer: w.b.fed.Issuer, UpdatedAt: time.Now()}, ""); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.fed.RequestWitness(ctx, w.peerA, mk("over").Bytes()); !errors.Is(err, federation.ErrWitnessRefused) {
		t.Fatalf("over the bound: %v", err)
	}
	next, err := kept.Update(webvh.UpdateOptions{TTL: ttl(60), Time: t0.Add(time.Minute), Signer: w.signer})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := w.b.fed.RequestWitness(ctx, w.peerA, next.Bytes()); err != nil || witnessed(next.Bytes(), p) != nil {
		t.Fatalf("extension at the bound: %v", err)
	}
}

// TestWitnessRateLimit: a peer gets a burst of witness requests, then
// 429 slow_down with Retry-After; nothing is verified for it meanwhile.
func TestWitnessRateLimit(t *testing.T) {
	w := newWitnessWorld(t)
	l, err := webvh.Create(webvh.CreateOptions{HostPath: "b.example:accounts:rae", UpdateKeys: []ed25519.PublicKey{w.signer.Public().(ed25519.PublicKey)}, Signer: w.signer})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := w.b.fed.PeerToken(ctx, w.a.fed.Issuer)
	limited := 0
	for i := 0; i < 60 && limited == 0; i++ {
		st, out := w.post(t, tok, "application/jsonl", l.Bytes())
		switch {
		case st == http.StatusTooManyRequests && out["error"] == "slow_down":
			limited = i
		case st != http.StatusOK:
			t.Fatalf("request %d: %d %v", i, st, out)
		}
	}
	if limited == 0 || limited > 40 {
		t.Fatalf("the witness endpoint limited a peer after %d requests (want a burst of about 30)", limited)
	}
}

// commons: n clouds, each with its own KEK (so its own witness id), each
// serving the federation routes and a peer of every other, with its
// witness published in the discovery document the others keep.
type commons struct {
	sides []*side
	srvs  []*httptest.Server
	ids   []string // witness ids, by side
}

func newCommons(t *testing.T, n int) *commons {
	t.Helper()
	c := &commons{}
	for i := range n {
		issuer := fmt.Sprintf("https://%c.example", 'a'+i)
		db, path := testdb.SQLite(t)
		kek, err := keys.NewKEK(bytes.Repeat([]byte{byte(i + 1)}, keys.KEKSize))
		if err != nil {
			t.Fatal(err)
		}
		km := &keys.Manager{Store: db, KEK: kek}
		if _, err := km.Ensure(ctx, keys.DefaultAlg); err != nil {
			t.Fatal(err)
		}
		s := &side{db: db, path: path, fed: &federation.Federation{Issuer: issuer, DID: "did:web:" + strings.TrimPrefix(issuer, "https://"),
			Store: db, Keys: km, Accounts: identity.NewService(db, kek, issuer), HTTP: http.DefaultClient}}
		id, err := s.fed.WitnessID()
		if err != nil {
			t.Fatal(err)
		}
		c.sides, c.srvs, c.ids = append(c.sides, s), append(c.srvs, s.serve(t)), append(c.ids, id)
	}
	for i, x := range c.sides {
		for j, y := range c.sides {
			if i == j {
				continue
			}
			p := x.peerOf(t, y)
			p.Endpoint = c.srvs[i].URL
			p.Metadata, _ = json.Marshal(map[string]any{"issuer": x.fed.Issuer,
				"federation_witness": federation.WitnessService{ID: c.ids[i], Endpoint: x.fed.Issuer + federation.WitnessPath}})
			if err := y.db.PutPeer(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	return c
}

// accountLog is the genesis log of an account homed at a.example with a
// custodial and a person key, witnessed by w.
func accountLog(t *testing.T, name string, custodial, person ed25519.PrivateKey, w *webvh.Witness, at time.Time) *webvh.Log {
	t.Helper()
	l, err := webvh.Create(webvh.CreateOptions{HostPath: "a.example:accounts:" + name, Portable: true,
		UpdateKeys: []ed25519.PublicKey{custodial.Public().(ed25519.PublicKey), person.Public().(ed25519.PublicKey)},
		Witness:    w, Time: at, Signer: custodial})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// proofCount counts the proofs of a did-witness.json, and the witness
// did:keys that made them.
func proofCount(t *testing.T, file []byte) (int, map[string]string) {
	t.Helper()
	var recs []webvh.WitnessProofs
	if err := json.Unmarshal(file, &recs); err != nil {
		t.Fatalf("did-witness.json %s: %v", file, err)
	}
	n, by := 0, map[string]string{}
	for _, r := range recs {
		for _, p := range r.Proof {
			id, err := webvh.VerifyWitnessProof(p, r.VersionID)
			if err != nil {
				t.Fatalf("an invalid proof in the collected file: %v", err)
			}
			n++
			by[id] = r.VersionID
		}
	}
	return n, by
}

// TestPeerWitness: a peer's witness comes from its discovery document (an
// Ed25519 did:key only), and the member witnesses are this cloud's and its
// peers', sorted and distinct.
func TestPeerWitness(t *testing.T) {
	c := newCommons(t, 3)
	a := c.sides[0]
	pb, err := a.db.GetPeer(ctx, c.sides[1].fed.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	if id, ep, ok := pb.Witness(); !ok || id != c.ids[1] || ep != "https://b.example"+federation.WitnessPath {
		t.Fatalf("peer witness: %q %q %v", id, ep, ok)
	}
	for _, meta := range []string{``, `{}`, `not json`, `{"federation_witness": null}`, `{"federation_witness": {"id": "did:web:b.example"}}`,
		`{"federation_witness": {"id": "did:key:z6MkNotAKey"}}`, `{"federation_witness": {"id": "` + c.ids[1] + `#frag"}}`} {
		if id, _, ok := (&federation.Peer{Metadata: []byte(meta)}).Witness(); ok || id != "" {
			t.Errorf("metadata %s gave witness %q", meta, id)
		}
	}
	got, err := a.fed.MemberWitnesses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(c.ids)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("member witnesses %v, want %v", got, want)
	}
	// A peer without a published witness is left out; a duplicate counted once.
	pb.Metadata = []byte(`{}`)
	a.db.PutPeer(ctx, pb)
	pc, _ := a.db.GetPeer(ctx, c.sides[2].fed.Issuer)
	pc.Metadata, _ = json.Marshal(map[string]any{"federation_witness": map[string]string{"id": c.ids[0]}})
	a.db.PutPeer(ctx, pc)
	if got, err := a.fed.MemberWitnesses(ctx); err != nil || !slices.Equal(got, []string{c.ids[0]}) {
		t.Fatalf("member witnesses %v %v, want only %s", got, err, c.ids[0])
	}
}

// TestCollectWitness: a home collects the proofs of a 2-of-3 witness
// configuration (its own witness in-process, the peers over HTTP): the
// file verifies, holds every witness's latest proof only, is merged with
// the proofs the log had, skips a witness that is down, and fails with
// ErrWitnessThreshold when too few can be reached.
func TestCollectWitness(t *testing.T) {
	c := newCommons(t, 3)
	a := c.sides[0]
	custodial, person := newKey(t), newKey(t)
	cfg := identity.WitnessConfig(c.ids)
	if cfg.Threshold != 2 {
		t.Fatalf("threshold %d", cfg.Threshold)
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	l1 := accountLog(t, "vera", custodial, person, cfg, t0)
	if err := witnessed(l1.Bytes()); !errors.Is(err, webvh.ErrWitness) {
		t.Fatalf("unwitnessed: %v", err)
	}
	f1, err := a.fed.CollectWitness(ctx, l1.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(log, file []byte) *webvh.Result {
		t.Helper()
		res, err := webvh.Verify(log, webvh.Options{Witness: func() ([]byte, error) { return file, nil }})
		if err != nil || !res.Metadata.Witnessed {
			t.Fatalf("collected file %s: %v", file, err)
		}
		return res
	}
	check(l1.Bytes(), f1)
	if n, by := proofCount(t, f1); n != 3 || len(by) != 3 {
		t.Fatalf("after the threshold the rest are asked too: %d proofs by %v", n, by)
	}
	for i, s := range c.sides {
		if h, err := s.db.WitnessedLog(ctx, l1.Result().Metadata.SCID); err != nil || h.VersionID != l1.Result().Metadata.VersionID {
			t.Fatalf("witness %d head %+v %v", i, h, err)
		}
	}
	// Collected again: nothing to ask, the same file.
	if again, err := a.fed.CollectWitness(ctx, l1.Bytes(), f1); err != nil || !bytes.Equal(again, f1) {
		t.Fatalf("collecting a witnessed log: %s %v", again, err)
	}

	// A custodial update: the proofs move to the new entry (one per witness).
	l2, err := identity.AppendWitnesses(l1, cfg, custodial, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	f2, err := a.fed.CollectWitness(ctx, l2.Bytes(), f1)
	if err != nil {
		t.Fatal(err)
	}
	check(l2.Bytes(), f2)
	v2 := l2.Result().Metadata.VersionID
	if n, by := proofCount(t, f2); n != 3 || by[c.ids[0]] != v2 || by[c.ids[1]] != v2 || by[c.ids[2]] != v2 {
		t.Fatalf("file after an extension: %d %v", n, by)
	}

	// One witness down: the other two meet the threshold; the file keeps
	// the down witness's older proof.
	down := slices.Index(c.ids, slices.Max(c.ids)) // asked last or not at all
	if down == 0 {
		down = slices.Index(c.ids, slices.Min(c.ids)) // never the home itself
	}
	c.srvs[down].Close()
	l3, err := identity.AppendWitnesses(l2, cfg, custodial, t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	f3, err := a.fed.CollectWitness(ctx, l3.Bytes(), f2)
	if err != nil {
		t.Fatalf("one witness of three down: %v", err)
	}
	check(l3.Bytes(), f3)
	if n, by := proofCount(t, f3); n != 3 || by[c.ids[down]] != v2 {
		t.Fatalf("file with a witness down: %d %v", n, by)
	}
	// Two down: 1 of 3, 2 needed.
	other := 3 - down // the remaining peer (sides 1 and 2)
	c.srvs[other].Close()
	l4, err := identity.AppendWitnesses(l3, cfg, custodial, t0.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.fed.CollectWitness(ctx, l4.Bytes(), f3)
	if !errors.Is(err, federation.ErrWitnessThreshold) || !strings.Contains(err.Error(), "1 of 3 witnesses signed") || !strings.Contains(err.Error(), "2 needed") {
		t.Fatalf("two witnesses down: %v", err)
	}
	// Garbage in the existing file is refused, not merged.
	if _, err := a.fed.CollectWitness(ctx, l1.Bytes(), []byte(`{"not":"an array"}`)); err == nil {
		t.Fatal("a malformed witness file was accepted")
	}
}

// TestCollectWitnessOneWinner: two different entries at the same version
// (two moves of one account, made on two clouds) collected at the same
// time: the witnesses are asked in the same order everywhere, so exactly
// one collection succeeds and the other ends with ErrWitnessFork; every
// witness holds the winner.
func TestCollectWitnessOneWinner(t *testing.T) {
	c := newCommons(t, 3)
	custodial, person := newKey(t), newKey(t)
	cfg := identity.WitnessConfig(c.ids)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	for round := range 4 {
		l1 := accountLog(t, fmt.Sprint("race", round), custodial, person, cfg, t0)
		f1, err := c.sides[0].fed.CollectWitness(ctx, l1.Bytes(), nil)
		if err != nil {
			t.Fatal(err)
		}
		// Moves by the person's key to b.example and to c.example.
		toB, err := identity.AppendMove(l1, "https://b.example", newKey(t).Public().(ed25519.PublicKey), cfg, person, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		toC, err := identity.AppendMove(l1, "https://c.example", newKey(t).Public().(ed25519.PublicKey), cfg, person, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		logs := []*webvh.Log{toB, toC}
		errs := make([]error, 2)
		files := make([][]byte, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				files[i], errs[i] = c.sides[i+1].fed.CollectWitness(ctx, logs[i].Bytes(), f1)
			}()
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if won >= 0 {
					t.Fatalf("round %d: both moves were witnessed", round)
				}
				won = i
			case !errors.Is(err, federation.ErrWitnessFork):
				t.Fatalf("round %d: the losing move: %v, want ErrWitnessFork", round, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: neither move was witnessed: %v", round, errs)
		}
		if err := witnessed(logs[won].Bytes(), decodeFile(t, files[won])); err != nil {
			t.Fatalf("round %d: the winner's file: %v", round, err)
		}
		want := logs[won].Result().Metadata.VersionID
		for i, s := range c.sides {
			h, err := s.db.WitnessedLog(ctx, l1.Result().Metadata.SCID)
			if err != nil || h.VersionID != want {
				t.Fatalf("round %d: witness %d holds %+v %v, want the winner %s", round, i, h, err, want)
			}
		}
	}
}

func decodeFile(t *testing.T, file []byte) []webvh.WitnessProofs {
	t.Helper()
	var recs []webvh.WitnessProofs
	if err := json.Unmarshal(file, &recs); err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestWitnessAuthority: a rogue peer asks for proofs on an account log
// whose new entry, signed by the custodial key alone, removes the person's
// key or moves the DID: 409 unauthorized_change, logged, nothing stored;
// the same move signed by the person's key is witnessed. CollectWitness
// stops at such a refusal.
func TestWitnessAuthority(t *testing.T) {
	w := newWitnessWorld(t)
	var logs lockedLog
	w.a.fed.Log = slog.New(slog.NewTextHandler(&logs, nil))
	wid, _ := w.a.fed.WitnessID()
	custodial, person := newKey(t), newKey(t)
	cfg := &webvh.Witness{Threshold: 1, Witnesses: []webvh.WitnessMember{{ID: wid}}}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	l1 := accountLog(t, "rex", custodial, person, cfg, t0)
	if _, err := w.b.fed.RequestWitness(ctx, w.peerA, l1.Bytes()); err != nil {
		t.Fatal(err)
	}
	scid := l1.Result().Metadata.SCID
	head, _ := w.a.db.WitnessedLog(ctx, scid)
	dropPerson, err := l1.Update(webvh.UpdateOptions{UpdateKeys: []ed25519.PublicKey{custodial.Public().(ed25519.PublicKey)}, Time: t0.Add(time.Minute), Signer: custodial})
	if err != nil {
		t.Fatal(err)
	}
	moveByCustodial, err := l1.Update(webvh.UpdateOptions{MoveTo: "b.example:accounts:rex", Time: t0.Add(time.Minute), Signer: custodial})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := w.b.fed.PeerToken(ctx, w.a.fed.Issuer)
	for name, l := range map[string]*webvh.Log{"removes the person key": dropPerson, "moves the DID": moveByCustodial} {
		if _, err := w.b.fed.RequestWitness(ctx, w.peerA, l.Bytes()); !errors.Is(err, federation.ErrWitnessRefused) || !errors.Is(err, identity.ErrPersonKeyRequired) {
			t.Errorf("%s: %v", name, err)
		}
		if st, out := w.post(t, tok, "application/jsonl", l.Bytes()); st != 409 || out["error"] != "unauthorized_change" || out["proofs"] != nil {
			t.Errorf("%s: %d %v", name, st, out)
		}
	}
	if after, err := w.a.db.WitnessedLog(ctx, scid); err != nil || after.VersionID != head.VersionID || !after.UpdatedAt.Equal(head.UpdatedAt) {
		t.Fatalf("an unauthorized change was stored: %v %v", after.VersionID, err)
	}
	if !strings.Contains(logs.String(), "unauthorized change") {
		t.Fatal("the refusal was not logged")
	}
	// The home's own collection stops there too.
	if _, err := w.a.fed.CollectWitness(ctx, moveByCustodial.Bytes(), nil); !errors.Is(err, identity.ErrPersonKeyRequired) {
		t.Fatalf("collecting an unauthorized move: %v", err)
	}
	// The same move by the person is witnessed.
	moveByPerson, err := l1.Update(webvh.UpdateOptions{MoveTo: "b.example:accounts:rex", Time: t0.Add(time.Minute), Signer: person})
	if err != nil {
		t.Fatal(err)
	}
	p, err := w.b.fed.RequestWitness(ctx, w.peerA, moveByPerson.Bytes())
	if err != nil || witnessed(moveByPerson.Bytes(), p) != nil {
		t.Fatalf("a move by the person: %v", err)
	}
}

type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeDIDLog: GET /federation/v1/dids/{scid} serves the stored log
// and witness file to anyone (no token), 404 for an unknown SCID, 400 for
// one that is not a SCID; LatestDIDLog keeps the best copy that verifies
// among this cloud's and its peers', refusing an unwitnessed one and one
// that breaks rule 2.
func TestServeDIDLog(t *testing.T) {
	c := newCommons(t, 3)
	a, b, cc := c.sides[0], c.sides[1], c.sides[2]
	custodial, person := newKey(t), newKey(t)
	cfg := identity.WitnessConfig(c.ids)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	l1 := accountLog(t, "dina", custodial, person, cfg, t0)
	f1, err := a.fed.CollectWitness(ctx, l1.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	res := l1.Result()
	scid := res.Metadata.SCID
	put := func(s *side, l *webvh.Log, file []byte, prev int) {
		t.Helper()
		r := l.Result()
		ok, err := s.db.PutDIDLog(ctx, &identity.DIDLog{DID: res.DID, SCID: scid, CurrentDID: r.DID, Name: "dina", HomeIssuer: "https://a.example",
			Log: l.Bytes(), Witness: file, Version: r.Metadata.VersionNumber, UpdatedAt: time.Now()}, prev)
		if err != nil || !ok {
			t.Fatalf("put DID log: %v %v", ok, err)
		}
	}
	put(a, l1, f1, 0)

	get := func(path string) (int, http.Header, []byte) {
		t.Helper()
		resp, err := http.Get(c.srvs[0].URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, raw
	}
	st, h, raw := get(federation.DIDsPath + "/" + scid)
	var ans struct {
		Log     string                `json:"log"`
		Witness []webvh.WitnessProofs `json:"witness"`
	}
	if err := json.Unmarshal(raw, &ans); st != 200 || err != nil || ans.Log != string(l1.Bytes()) || witnessed([]byte(ans.Log), ans.Witness) != nil {
		t.Fatalf("GET dids: %d %v %s", st, err, raw)
	}
	if cc := h.Get("Cache-Control"); !strings.HasPrefix(cc, "public, max-age=") || h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", h)
	}
	if st, _, raw := get(federation.DIDsPath + "/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"); st != 404 || !strings.Contains(string(raw), `"error":"not_found"`) {
		t.Fatalf("unknown SCID: %d %s", st, raw)
	}
	for _, bad := range []string{"x", strings.Repeat("Q", 47), "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPb0l", "..%2F..%2Fetc"} {
		if st, _, _ := get(federation.DIDsPath + "/" + bad); st != 400 && st != 404 {
			t.Errorf("bad SCID %q: %d", bad, st)
		}
	}
	if st, _, _ := get(federation.DIDsPath + "/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPb0l"); st != 400 {
		t.Errorf("a SCID with characters outside base58btc: %d, want 400", st)
	}

	// Copies: A holds version 1, C version 2 (witnessed): B, without a
	// copy, gets C's.
	l2, err := identity.AppendWitnesses(l1, cfg, custodial, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	f2, err := a.fed.CollectWitness(ctx, l2.Bytes(), f1)
	if err != nil {
		t.Fatal(err)
	}
	put(cc, l2, f2, 0)
	best, err := b.fed.LatestDIDLog(ctx, scid)
	if err != nil || best.From != cc.fed.Issuer || best.Result.Metadata.VersionNumber != 2 {
		t.Fatalf("latest copy: %+v %v", best, err)
	}
	// C's copy replaced by a longer one without its proofs: refused, A's wins.
	l3, err := identity.AppendWitnesses(l2, cfg, custodial, t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	put(cc, l3, f2, 2)
	if best, err := b.fed.LatestDIDLog(ctx, scid); err != nil || best.From != a.fed.Issuer || best.Result.Metadata.VersionNumber != 1 {
		t.Fatalf("with an unwitnessed copy at C: %+v %v", best, err)
	}
	// A copy that meets its thresholds but breaks rule 2: the person hands
	// witnessing to one witness (witnessed by the commons); then an entry
	// by the custodial key alone drops the person key, which that witness
	// (a key the attacker holds) signs.
	rogueW := newKey(t)
	rogueCfg := &webvh.Witness{Threshold: 1, Witnesses: []webvh.WitnessMember{{ID: "did:key:" + webvh.Multikey(rogueW.Public().(ed25519.PublicKey))}}}
	m1 := accountLog(t, "mona", custodial, person, cfg, t0)
	mres := m1.Result()
	r1, err := m1.Update(webvh.UpdateOptions{Witness: rogueCfg, Time: t0.Add(time.Minute), Signer: person})
	if err != nil {
		t.Fatal(err)
	}
	rf1, err := a.fed.CollectWitness(ctx, r1.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := r1.Update(webvh.UpdateOptions{UpdateKeys: []ed25519.PublicKey{custodial.Public().(ed25519.PublicKey)}, Time: t0.Add(2 * time.Minute), Signer: custodial})
	if err != nil {
		t.Fatal(err)
	}
	v3 := r2.Result().Metadata.VersionID
	rp, _ := webvh.WitnessProof(rogueW, v3, time.Now())
	rogueRaw, _ := json.Marshal(append(decodeFile(t, rf1), webvh.WitnessProofs{VersionID: v3, Proof: []json.RawMessage{rp}}))
	if rr, err := webvh.Verify(r2.Bytes(), webvh.Options{Witness: func() ([]byte, error) { return rogueRaw, nil }}); err != nil || !rr.Metadata.Witnessed {
		t.Fatalf("the rogue copy should meet its thresholds: %v", err)
	}
	if err := identity.CheckAuthority(r2.Result(), 0); !errors.Is(err, identity.ErrPersonKeyRequired) {
		t.Fatalf("the rogue copy should break rule 2: %v", err)
	}
	putLog := func(s *side, l *webvh.Log, file []byte) {
		t.Helper()
		r := l.Result()
		if ok, err := s.db.PutDIDLog(ctx, &identity.DIDLog{DID: mres.DID, SCID: mres.Metadata.SCID, CurrentDID: r.DID, Name: "mona", HomeIssuer: "https://a.example",
			Log: l.Bytes(), Witness: file, Version: r.Metadata.VersionNumber, UpdatedAt: time.Now()}, 0); err != nil || !ok {
			t.Fatalf("put: %v %v", ok, err)
		}
	}
	putLog(a, r1, rf1)
	putLog(cc, r2, rogueRaw)
	if best, err := b.fed.LatestDIDLog(ctx, mres.Metadata.SCID); err != nil || best.From != a.fed.Issuer || best.Result.Metadata.VersionNumber != 2 {
		t.Fatalf("with a rule-2 breaking copy at C: %+v %v", best, err)
	}
	// No copy anywhere: ErrNotFound.
	if _, err := b.fed.LatestDIDLog(ctx, "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"); !errors.Is(err, webvh.ErrNotFound) {
		t.Fatalf("unknown SCID: %v", err)
	}
}

// TestServeDIDLogRateLimit: one IP gets didsPerIP requests a minute, then
// 429 slow_down.
func TestServeDIDLogRateLimit(t *testing.T) {
	s := newSide(t, "https://a.example")
	srv := s.serve(t)
	limited := 0
	for i := 1; i <= 700 && limited == 0; i++ {
		resp, err := http.Get(srv.URL + federation.DIDsPath + "/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusTooManyRequests && strings.Contains(string(raw), "slow_down"):
			limited = i
		case resp.StatusCode != http.StatusNotFound:
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, raw)
		}
	}
	if limited < 600 || limited > 610 {
		t.Fatalf("limited after %d requests, want about 600", limited)
	}
}
