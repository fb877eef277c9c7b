package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/federation"
)

// TestWitnessBetweenClouds: a running cloud publishes its witness in
// discovery and witnesses a peer's DID log (the proofs meet the log's
// threshold), refuses a fork of it, and keeps its witness id across a
// restart; SQLite witness, PostgreSQL peer.
func TestWitnessBetweenClouds(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: runs two clouds and restarts one")
	}
	ctx := context.Background()
	a, b := startCloud(t, sqliteEnv(t)), startCloud(t, postgresEnv(t))
	a.env.must(t, "", "peer", "add", b.base)
	b.env.must(t, "", "peer", "add", a.base)
	ws := discoveredWitness(t, a.base)
	if !strings.HasPrefix(ws.ID, "did:key:z6Mk") || ws.Endpoint != a.base+federation.WitnessPath {
		t.Fatalf("discovery: federation_witness = %+v", ws)
	}
	if other := discoveredWitness(t, b.base); other.ID == ws.ID || other.ID == "" {
		t.Fatalf("two clouds with witness ids %q and %q", ws.ID, other.ID)
	}

	clB := openTestCloud(t, b.live())
	fedB := clB.federation()
	fedB.HTTP = http.DefaultClient
	peerA, err := clB.db.GetPeer(ctx, a.base)
	if err != nil {
		t.Fatal(err)
	}
	_, signer, _ := ed25519.GenerateKey(rand.Reader)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	l1, err := webvh.Create(webvh.CreateOptions{HostPath: "b.example:accounts:vera",
		UpdateKeys: []ed25519.PublicKey{signer.Public().(ed25519.PublicKey)},
		Witness:    &webvh.Witness{Threshold: 1, Witnesses: []webvh.WitnessMember{{ID: ws.ID}}}, Time: t0, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	proofs, err := fedB.RequestWitness(ctx, peerA, l1.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	file, _ := json.Marshal(proofs)
	if _, err := webvh.Verify(l1.Bytes(), webvh.Options{Witness: func() ([]byte, error) { return file, nil }}); err != nil {
		t.Fatalf("the witness's proofs: %v", err)
	}
	ttl := int64(60)
	l2, err := l1.Update(webvh.UpdateOptions{TTL: &ttl, Time: t0.Add(time.Minute), Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fedB.RequestWitness(ctx, peerA, l2.Bytes()); err != nil {
		t.Fatal(err)
	}
	// A log well over the server's default body bound (8 KiB) is taken.
	long := l2
	for i := 0; len(long.Bytes()) < 24<<10; i++ {
		n := int64(1000 + i)
		if long, err = long.Update(webvh.UpdateOptions{TTL: &n, Time: t0.Add(time.Duration(2+i) * time.Minute), Signer: signer}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fedB.RequestWitness(ctx, peerA, long.Bytes()); err != nil {
		t.Fatalf("a log of %d bytes: %v", len(long.Bytes()), err)
	}
	ttl2 := int64(120)
	fork, err := l1.Update(webvh.UpdateOptions{TTL: &ttl2, Time: t0.Add(time.Minute), Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fedB.RequestWitness(ctx, peerA, fork.Bytes()); !errors.Is(err, federation.ErrWitnessFork) {
		t.Fatalf("fork: %v", err)
	}
	if !strings.Contains(a.logs.String(), "refused a forked DID log") {
		t.Fatal("the fork was not logged")
	}
	// The witness key survives a restart: it comes from the KEK.
	a.stop()
	a.start()
	if again := discoveredWitness(t, a.base); again.ID != ws.ID {
		t.Fatalf("witness id after a restart: %s, was %s", again.ID, ws.ID)
	}
	if _, err := fedB.RequestWitness(ctx, peerA, fork.Bytes()); !errors.Is(err, federation.ErrWitnessFork) {
		t.Fatalf("fork after a restart: %v", err)
	}
}

func discoveredWitness(t *testing.T, base string) federation.WitnessService {
	t.Helper()
	resp, err := http.Get(base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var meta struct {
		Witness federation.WitnessService `json:"federation_witness"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil {
		t.Fatal(err)
	}
	return meta.Witness
}
