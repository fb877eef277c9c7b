package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/keys"
)

// TestPeerKeyTrust: a peer's keys change only when a key pinned for it
// vouches for the new set, or when the operator runs peer trust. B on
// SQLite and on PostgreSQL.
//
//  1. A rotates its key with `keys rotate` (the old one stays published):
//     B pins the new key by vouching, events flow, no operator step.
//  2. A's keys are replaced with one that no pinned key signs for (its
//     store taken over: rotated, and every earlier key retired): B
//     quarantines A's events naming the key and `peer trust`, pins
//     nothing, peer list shows the untrusted key, and B's feed and stream
//     refuse A's request tokens.
//  3. `peer trust A` on B shows the change, pins A's current keys, and the
//     quarantined events apply; the feed answers A again.
func TestPeerKeyTrust(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped with -short: waits for key snapshots to refresh (10 s each)")
	}
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) { testPeerKeyTrust(t, mk) })
	}
}

func testPeerKeyTrust(t *testing.T, mkB func(testing.TB) env) {
	ctx := context.Background()
	a := startCloud(t, sqliteEnv(t))
	eb := mkB(t)
	eb["COMMONSID_LOG_LEVEL"] = "info"
	b := startCloud(t, eb)
	a.env.must(t, "", "peer", "add", b.base)
	b.env.must(t, "", "peer", "add", a.base)
	clA, dbB := openTestCloud(t, a.live()), openTestCloud(t, b.live()).db

	const pw = "correct horse battery"
	users := 0
	newUser := func() int64 {
		t.Helper()
		users++
		name := fmt.Sprintf("person%d", users)
		a.env.must(t, pw+"\n", "user", "create", "--username", name, "--email", name+"@example.org", "--name", name, "--password-stdin")
		seq, err := clA.db.LastEventSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	peerA := func() *federation.Peer {
		t.Helper()
		p, err := dbB.GetPeer(ctx, a.base)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	pinned := func() []string {
		var out []string
		for _, k := range peerA().JWKS.Keys {
			out = append(out, k.KeyID)
		}
		return out
	}
	last := newUser()
	eventually(t, 10*time.Second, "B follows A", func() bool { return peerA().Cursor >= last })
	first := pinned()
	if len(first) != 1 {
		t.Fatalf("B pins %v", first)
	}

	// 1. A rotated key, vouched for by the old one.
	out := a.env.must(t, "", "keys", "rotate")
	active, err := clA.keys.Active(ctx, keys.DefaultAlg)
	if err != nil || !strings.Contains(out, active.KID) {
		t.Fatalf("rotate: %q, active %v %v", out, active, err)
	}
	// A signs with it once its key snapshot takes it in (every 10 s); the
	// rest of the limit is for a busy machine running tests in parallel.
	deadline := time.Now().Add(time.Minute)
	for !slices.Contains(pinned(), active.KID) || peerA().Cursor < last {
		if time.Now().After(deadline) {
			t.Fatalf("B pins %v (want %s too), cursor %d of %d", pinned(), active.KID, peerA().Cursor, last)
		}
		last = newUser()
		time.Sleep(300 * time.Millisecond)
	}
	eventually(t, 5*time.Second, "B applies A's events signed with the new key", func() bool { return peerA().Cursor >= last })
	if want := fmt.Sprintf("peer %s rotated keys, vouched by kid %s", a.base, first[0]); !strings.Contains(b.logs.String(), want) {
		t.Fatalf("B's log lacks %q", want)
	}
	if qs, _ := dbB.ListQuarantined(ctx, a.base, 100); len(qs) != 0 {
		t.Fatalf("quarantined after a vouched rotation: %+v", qs[0])
	}

	// 2. A's keys replaced: a new key, every earlier one retired, so no
	// key B pinned signs for it.
	a.env.must(t, "", "keys", "rotate")
	taken, err := clA.keys.Active(ctx, keys.DefaultAlg)
	if err != nil {
		t.Fatal(err)
	}
	for _, kid := range pinned() {
		a.env.must(t, "", "keys", "retire", "--", kid)
	}
	before := peerA().Cursor
	deadline = time.Now().Add(90 * time.Second)
	for {
		last = newUser()
		time.Sleep(300 * time.Millisecond)
		if ks, _ := dbB.ListPendingKeys(ctx, a.base); len(ks) == 1 && ks[0].KID == taken.KID {
			if qs, _ := dbB.ListQuarantined(ctx, a.base, 1000); len(qs) > 0 && strings.Contains(qs[len(qs)-1].Reason, taken.KID) {
				break
			}
		}
		if time.Now().After(deadline) {
			ks, _ := dbB.ListPendingKeys(ctx, a.base)
			qs, _ := dbB.ListQuarantined(ctx, a.base, 1000)
			t.Fatalf("B does not hold %s as pending: pending %+v, %d quarantined, pinned %v", taken.KID, ks, len(qs), pinned())
		}
	}
	if slices.Contains(pinned(), taken.KID) {
		t.Fatalf("B pinned the unvouched key %s", taken.KID)
	}
	// Nothing signed by the new key is applied; the events wait in
	// quarantine with a reason naming the key and the command.
	qs, _ := dbB.ListQuarantined(ctx, a.base, 1000)
	applied, _ := dbB.ListApplied(ctx, a.base, before, 1000)
	for _, q := range qs {
		for _, ap := range applied {
			if ap.Seq == q.Seq {
				t.Fatalf("quarantined event %d was applied", q.Seq)
			}
		}
	}
	if c := peerA().Cursor; c >= last {
		t.Fatalf("B's cursor %d moved to A's last event %d", c, last)
	}
	var rejected []quarantinedJSON
	json.Unmarshal([]byte(b.env.must(t, "", "peer", "rejected", "--json")), &rejected)
	if len(rejected) == 0 || !strings.Contains(rejected[len(rejected)-1].Reason, taken.KID) ||
		!strings.Contains(rejected[len(rejected)-1].Reason, "commonsid peer trust "+a.base) {
		t.Fatalf("peer rejected: %+v", rejected)
	}
	// peer list shows the untrusted key.
	var listed []peerJSON
	json.Unmarshal([]byte(b.env.must(t, "", "peer", "list", "--json")), &listed)
	if len(listed) != 1 || len(listed[0].PendingKeys) != 1 || listed[0].PendingKeys[0].KID != taken.KID ||
		listed[0].PendingKeys[0].FirstSeen.IsZero() || !strings.Contains(listed[0].PendingKeys[0].Reason, "not signed by a key pinned here") {
		t.Fatalf("peer list --json: %+v", listed)
	}
	if out := b.env.must(t, "", "peer", "list"); !strings.Contains(out, "Untrusted keys") || !strings.Contains(out, taken.KID) ||
		!strings.Contains(out, "commonsid peer trust URL") {
		t.Fatalf("peer list:\n%s", out)
	}
	// B's feed and stream refuse A's request tokens signed with it.
	tok, err := clA.federation().PeerToken(ctx, b.base)
	if err != nil {
		t.Fatal(err)
	}
	feedStatus := func(path string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", b.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/federation/v1/events", "/federation/v1/stream"} {
		if st := feedStatus(path); st != http.StatusUnauthorized {
			t.Fatalf("%s with A's token of the unvouched key: %d", path, st)
		}
	}
	// A resource server on B verifies A's tokens with the keys B pinned,
	// not with whatever A's jwks_uri serves now: a token signed by the
	// unvouched key is refused.
	accessByTaken := mintAccessToken(t, clA, a.base, "https://notes.example/api")
	tv := &federation.TokenVerifier{Cloud: b.base}
	if err := tv.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tv.Verify(ctx, accessByTaken, "https://notes.example/api"); err == nil || !strings.Contains(err.Error(), taken.KID) {
		t.Fatalf("B's members list lets a resource server accept a token of the unvouched key: %v", err)
	}
	if n := strings.Count(b.logs.String(), "a peer publishes a key that no pinned key vouched for"); n != 1 {
		t.Fatalf("the untrusted key was logged %d times, want once", n)
	}

	// 3. The operator trusts A's current keys.
	if r := b.env.run(t, "", "peer", "trust"); r.code != 2 {
		t.Fatalf("peer trust without a URL: exit %d %s", r.code, r.stderr)
	}
	if r := b.env.run(t, "", "peer", "trust", "http://127.0.0.1:9"); r.code == 0 || !strings.Contains(r.stderr, "not a peer") {
		t.Fatalf("peer trust of a cloud that is not a peer: exit %d %s", r.code, r.stderr)
	}
	out = b.env.must(t, "", "peer", "trust", a.base)
	for _, want := range []string{"added:   " + taken.KID, "removed: ", first[0], "untrusted key " + taken.KID, "now trusted", "still quarantined"} {
		if !strings.Contains(out, want) {
			t.Fatalf("peer trust output lacks %q:\n%s", want, out)
		}
	}
	if got := pinned(); len(got) != 1 || got[0] != taken.KID {
		t.Fatalf("pinned after peer trust: %v", got)
	}
	t.Logf("peer trust:\n%s", out)
	// The quarantined events applied; A's next events flow.
	last = newUser()
	eventually(t, 15*time.Second, "B applies A's events after peer trust", func() bool {
		qs, _ := dbB.ListQuarantined(ctx, a.base, 1000)
		return peerA().Cursor >= last && len(qs) == 0
	})
	applied, _ = dbB.ListApplied(ctx, a.base, before, 1000)
	for _, q := range qs {
		if !slices.ContainsFunc(applied, func(ap *federation.Applied) bool { return ap.Seq == q.Seq }) {
			t.Fatalf("event %d, quarantined before, is not applied after peer trust", q.Seq)
		}
	}
	if ks, _ := dbB.ListPendingKeys(ctx, a.base); len(ks) != 0 {
		t.Fatalf("pending keys after peer trust: %+v", ks)
	}
	if st := feedStatus("/federation/v1/events"); st != http.StatusOK {
		t.Fatalf("feed with A's token after peer trust: %d", st)
	}
	// The resource server picks the trusted key up from the members list.
	tv = &federation.TokenVerifier{Cloud: b.base}
	if err := tv.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if claims, err := tv.Verify(ctx, accessByTaken, "https://notes.example/api"); err != nil || claims["iss"] != a.base {
		t.Fatalf("a token of the key trusted by peer trust: %v %v", claims, err)
	}
}

// mintAccessToken signs an RFC 9068 access token with the cloud's active
// key, as its token endpoint would.
func mintAccessToken(t *testing.T, cl *cloud, issuer, audience string) string {
	t.Helper()
	k, err := cl.keys.Active(context.Background(), keys.DefaultAlg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Alg), Key: k.Key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", k.KID))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(s).Claims(jwt.Claims{Issuer: issuer, Subject: "did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH",
		Audience: jwt.Audience{audience}, IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestOutboundRefusedMetric: a refusal of the guarded outbound client (a
// registration whose sector_identifier_uri points at an internal address)
// is counted under its reason on /metrics.
func TestOutboundRefusedMetric(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	e["COMMONSID_PUBLIC_METRICS"] = "on" // scraped below
	c := startCloud(t, e)
	metric := func(reason string) string {
		t.Helper()
		_, body := get(t, c.base+"/metrics")
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, `commonsid_outbound_refused_total{reason="`+reason+`"}`) {
				return strings.Fields(l)[1]
			}
		}
		t.Fatalf("/metrics lacks commonsid_outbound_refused_total{reason=%q}", reason)
		return ""
	}
	for _, r := range []string{"address", "scheme", "redirect", "url"} {
		if v := metric(r); v != "0" {
			t.Fatalf("reason %s: %s before any refusal", r, v)
		}
	}
	body := `{"redirect_uris":["https://a.example/cb"],"sector_identifier_uri":"https://10.0.0.1/sector.json"}`
	resp, err := http.Post(c.base+"/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("registration with an internal sector_identifier_uri: %d", resp.StatusCode)
	}
	if v := metric("address"); v != "1" {
		t.Fatalf(`commonsid_outbound_refused_total{reason="address"} = %s, want 1`, v)
	}
}
