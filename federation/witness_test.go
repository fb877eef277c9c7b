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
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/federation"
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
