package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/keys"
)

// TestPeerQuarantineCommands: events of a peer whose key was pinned
// wrong are quarantined; peer list counts them, peer rejected lists them,
// peer retry keeps them while they still fail, peer drop discards one,
// and once the right key is pinned peer retry applies the rest and the
// quarantine empties.
func TestPeerQuarantineCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const home = "https://a.example"
	cfgA := &Config{DataDir: filepath.Join(t.TempDir(), "a"), Issuer: home, LogFormat: "text", LogLevel: "warn"}
	clA, err := openCloud(ctx, cfgA, newLogger(cfgA, os.Stderr), true)
	if err != nil {
		t.Fatal(err)
	}
	defer clA.Close()
	if _, err := clA.keys.Ensure(ctx, keys.DefaultAlg); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"erin", "frank"} {
		if _, err := clA.accounts.Create(ctx, identity.CreateParams{Handle: h, Name: h, Password: "a fine password"}); err != nil {
			t.Fatal(err)
		}
	}
	items, err := clA.federation().Page(ctx, 0, 100)
	if err != nil || len(items) < 2 {
		t.Fatalf("home feed: %d events, %v", len(items), err)
	}
	pub, err := clA.keys.Published(ctx)
	if err != nil {
		t.Fatal(err)
	}

	e := sqliteEnv(t)
	cfgB := &Config{DataDir: e["COMMONSID_DATA"], Issuer: defaultIssuer, LogFormat: "text", LogLevel: "warn"}
	clB, err := openCloud(ctx, cfgB, newLogger(cfgB, os.Stderr), true)
	if err != nil {
		t.Fatal(err)
	}
	defer clB.Close()
	// The peer's key id pinned with another key: every event fails its
	// signature. The endpoint refuses connections, so a retry cannot
	// fetch a fresh copy either.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wrong := jose.JSONWebKey{Key: &other.PublicKey, KeyID: pub[0].KeyID, Algorithm: string(jose.ES256), Use: "sig"}
	p := &federation.Peer{Issuer: home, DID: "did:web:a.example", JWKSURI: home + "/jwks.json", Endpoint: "http://127.0.0.1:1",
		JWKS: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{wrong}}, Metadata: []byte(`{}`), AddedAt: time.Now(), KeysAt: time.Now()}
	if err := clB.db.PutPeer(ctx, p); err != nil {
		t.Fatal(err)
	}
	p, _ = clB.db.GetPeer(ctx, home)
	if err := clB.federation().ApplyBatch(ctx, p, items); !errors.Is(err, federation.ErrQuarantined) {
		t.Fatalf("apply with the wrong key: %v", err)
	}

	var listed []struct {
		Issuer      string `json:"issuer"`
		Quarantined int    `json:"quarantined_events"`
	}
	json.Unmarshal([]byte(e.must(t, "", "peer", "list", "--json")), &listed)
	if len(listed) != 1 || listed[0].Quarantined != len(items) {
		t.Fatalf("peer list: %+v, want %d quarantined", listed, len(items))
	}
	if out := e.must(t, "", "peer", "list"); !strings.Contains(out, "QUARANTINED") {
		t.Fatalf("peer list table:\n%s", out)
	}
	rejected := func() []quarantinedJSON {
		t.Helper()
		var qs []quarantinedJSON
		if err := json.Unmarshal([]byte(e.must(t, "", "peer", "rejected", "--json")), &qs); err != nil {
			t.Fatal(err)
		}
		return qs
	}
	qs := rejected()
	if len(qs) != len(items) || qs[0].Seq != items[0].Seq || qs[0].Peer != home || qs[0].Type != "account.created" ||
		!strings.Contains(qs[0].Reason, "signature") || qs[0].Attempts != 1 {
		t.Fatalf("peer rejected: %+v", qs)
	}
	if out := e.must(t, "", "peer", "rejected", home); !strings.Contains(out, "cloud signature does not verify") || !strings.Contains(out, "account.created") {
		t.Fatalf("peer rejected table:\n%s", out)
	}

	// Retried before the fix: they stay, with one more attempt.
	if r := e.run(t, "", "peer", "retry", home, "--all"); r.code == 0 || !strings.Contains(r.stdout, "0 applied") {
		t.Fatalf("retry before the fix: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if qs := rejected(); qs[0].Attempts != 2 {
		t.Fatalf("attempts after a failed retry: %+v", qs[0])
	}
	// Drop discards one event; a second drop finds nothing.
	first := strconv.FormatInt(items[0].Seq, 10)
	e.must(t, "", "peer", "drop", home, first)
	if r := e.run(t, "", "peer", "drop", home, first); r.code == 0 || !strings.Contains(r.stderr, "not in quarantine") {
		t.Fatalf("drop twice: exit %d %s", r.code, r.stderr)
	}
	if r := e.run(t, "", "peer", "retry", home, "x"); r.code != 2 {
		t.Fatalf("retry with a bad sequence: exit %d %s", r.code, r.stderr)
	}

	// The fix: the peer's real key pinned. The retry applies the rest.
	raw, _ := json.Marshal(jose.JSONWebKeySet{Keys: pub})
	if err := clB.db.SetPeerKeys(ctx, home, raw, time.Now()); err != nil {
		t.Fatal(err)
	}
	out := e.must(t, "", "peer", "retry", home, "--all")
	if want := strconv.Itoa(len(items)-1) + " applied, 0 still quarantined"; !strings.Contains(out, want) {
		t.Fatalf("retry after the fix: %q, want %q", out, want)
	}
	if qs := rejected(); len(qs) != 0 {
		t.Fatalf("quarantine after the retry: %+v", qs)
	}
	if applied, _ := clB.db.ListApplied(ctx, home, 0, 100); len(applied) != len(items)-1 {
		t.Fatalf("%d events applied, want %d", len(applied), len(items)-1)
	}
}
