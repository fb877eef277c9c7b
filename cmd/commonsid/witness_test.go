package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

// TestWitnessBetweenClouds: a running cloud publishes its witness in
// discovery and witnesses a peer's DID log (the proofs meet the log's
// threshold), refuses a fork of it, and keeps its witness id across a
// restart; SQLite witness, PostgreSQL peer.
func TestWitnessBetweenClouds(t *testing.T) {
	t.Parallel()
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

// TestResolveWhileHomeDown: the home of a did:webvh account serves its log,
// its witness file and /federation/v1/dids/{scid}; when the home is down,
// another cloud still resolves the account's DID from a peer's copy
// (/federation/v1/dids/{scid} through the guarded client), then from its
// own did_logs row when that peer is down too. Home on SQLite, the
// resolving cloud on PostgreSQL.
func TestResolveWhileHomeDown(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped with -short: runs three clouds")
	}
	ctx := context.Background()
	a, _ := startWebVHCloud(t, sqliteEnv(t))
	b, c := startCloud(t, postgresEnv(t)), startCloud(t, sqliteEnv(t))
	for _, pair := range [][2]*cloudProc{{a, b}, {a, c}, {b, c}} {
		pair[0].env.must(t, "", "peer", "add", pair[1].base)
		pair[1].env.must(t, "", "peer", "add", pair[0].base)
	}
	var meta map[string]any
	getJSON(t, a.base+"/.well-known/openid-configuration", &meta)
	if meta["federation_dids_endpoint"] != a.base+federation.DIDsPath {
		t.Fatalf("discovery: federation_dids_endpoint = %v", meta["federation_dids_endpoint"])
	}
	id := lastLine(a.env.must(t, "correct horse battery\n", "user", "create", "--username", "wren", "--email", "wren@example.org", "--password-stdin"))
	parsed, err := webvh.ParseDID(id)
	if err != nil {
		t.Fatal(err)
	}
	name := parsed.Path[len(parsed.Path)-1]

	// The home's log, once witnessed as its configuration asks.
	dbA := openTestCloud(t, a.live()).db
	var stored *identity.DIDLog
	deadline := time.Now().Add(30 * time.Second)
	for {
		stored, err = dbA.GetDIDLog(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		w := stored.Witness
		if _, err = webvh.Verify(stored.Log, webvh.Options{Witness: func() ([]byte, error) { return w, nil }}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the home's log is not witnessed: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for attempt := 0; !bytes.Contains(stored.Log, []byte(`"witnesses"`)); attempt++ {
		// The home's witnesses are the commons: an entry by the custodial
		// key sets them, and the proofs are collected from the three clouds.
		clA := openTestCloud(t, a.live())
		fedA := clA.federation()
		fedA.HTTP = http.DefaultClient
		acct, err := clA.db.GetAccount(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		key, err := clA.accounts.SigningKey(ctx, acct)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := fedA.MemberWitnesses(ctx)
		if err != nil || len(ids) != 3 {
			t.Fatalf("member witnesses %v %v", ids, err)
		}
		opened, err := webvh.Open(stored.Log, webvh.Options{})
		if err != nil {
			t.Fatal(err)
		}
		l2, err := identity.AppendWitnesses(opened, identity.WitnessConfig(ids), key.Private, opened.Result().Metadata.VersionTime.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		file, err := fedA.CollectWitness(ctx, l2.Bytes(), stored.Witness)
		if err != nil {
			t.Fatal(err)
		}
		next := *stored
		next.Log, next.Witness, next.Version, next.UpdatedAt = l2.Bytes(), file, 2, time.Now()
		ok, err := dbA.PutDIDLog(ctx, &next, stored.Version)
		if err != nil || (!ok && attempt >= 5) {
			t.Fatalf("store the witnessed log: %v %v", ok, err)
		}
		if !ok {
			// The home changed the log meanwhile (its own witnessing):
			// read it again and look once more.
			if stored, err = dbA.GetDIDLog(ctx, id); err != nil {
				t.Fatal(err)
			}
			continue
		}
		stored = &next
	}
	if res, err := webvh.Verify(stored.Log, webvh.Options{Witness: func() ([]byte, error) { return stored.Witness, nil }}); err != nil ||
		res.Metadata.Witness == nil || res.Metadata.Witness.Threshold != 2 {
		t.Fatalf("the home's log is not witnessed by the commons: %v", err)
	}
	t.Logf("the home's log: version %d, witness file of %d bytes", stored.Version, len(stored.Witness))
	// did.jsonl, did-witness.json and the federation's copy, as stored.
	if got := getBody(t, a.base+"/accounts/"+name+"/did.jsonl", "text/jsonl"); !bytes.HasPrefix(got, stored.Log[:len(stored.Log)/2]) {
		t.Fatalf("did.jsonl:\n%s", got)
	}
	wf := getBody(t, a.base+"/accounts/"+name+"/did-witness.json", "application/json")
	var recs []webvh.WitnessProofs
	if err := json.Unmarshal(wf, &recs); err != nil || len(recs) == 0 {
		t.Fatalf("did-witness.json %s: %v", wf, err)
	}
	var ans federation.DIDAnswer
	getJSON(t, a.base+federation.DIDsPath+"/"+parsed.SCID, &ans)
	if ans.Log == "" || !json.Valid(ans.Witness) {
		t.Fatalf("/federation/v1/dids: %+v", ans)
	}

	clB := openTestCloud(t, b.live())
	fedB := clB.federation()
	if doc, err := fedB.Resolver.Resolve(ctx, id); err != nil || doc.ID != id {
		t.Fatalf("resolve with the home up: %v", err)
	}

	// C holds a copy (as the federation replicates it); the home goes down.
	dbC := openTestCloud(t, c.live()).db
	putCopy(t, dbC, stored)
	a.stop()
	plain := clB.cfg.Outbound(clB.log).resolver
	if _, err := plain.Resolve(ctx, id); err == nil {
		t.Fatal("the home is down and the DID resolved without a fallback")
	}
	// Without a copy of its own (B's store seen without its DID logs: the
	// federation may have replicated one there), B asks its peers and C
	// answers.
	var logB lockedBuffer
	fedB.Log = slog.New(slog.NewTextHandler(&logB, nil))
	fedB.Store = federationOnly{clB.db}
	doc, err := fedB.Resolver.Resolve(ctx, id)
	if err != nil || doc.ID != id || len(doc.AssertionMethod) == 0 {
		t.Fatalf("resolve with the home down: %+v %v", doc, err)
	}
	if !strings.Contains(logB.String(), "from="+c.base) {
		t.Fatalf("B did not resolve from C's copy:\n%s", logB.String())
	}
	fedB.Store = clB.db
	// C down too: B's own row.
	putCopy(t, clB.db, stored)
	c.stop()
	logB.mu.Lock()
	logB.buf.Reset()
	logB.mu.Unlock()
	if doc, err := fedB.Resolver.Resolve(ctx, id); err != nil || doc.ID != id {
		t.Fatalf("resolve from this cloud's own copy: %v", err)
	}
	if !strings.Contains(logB.String(), `from="this cloud"`) {
		t.Fatalf("B did not resolve from its own copy:\n%s", logB.String())
	}
	// A DID no cloud holds still fails.
	other := strings.Replace(id, parsed.SCID, "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", 1)
	if _, err := fedB.Resolver.Resolve(ctx, other); err == nil {
		t.Fatal("a DID without any copy resolved")
	}

	// After the account moves away, the old home still serves its log and
	// witness file at the old location; its did:web document points to the
	// new one.
	moved := *stored
	moved.CurrentDID = strings.Replace(id, parsed.HostPath(), "elsewhere.example:accounts:"+name, 1)
	moved.HomeIssuer, moved.Version, moved.UpdatedAt = "https://elsewhere.example", stored.Version+1, time.Now()
	if ok, err := dbA.PutDIDLog(ctx, &moved, stored.Version); err != nil || !ok {
		t.Fatalf("store the moved log: %v %v", ok, err)
	}
	clA := openTestCloud(t, a.live())
	if err := clA.accounts.MarkMoved(ctx, id, "https://elsewhere.example"); err != nil {
		t.Fatal(err)
	}
	a.start()
	if got := getBody(t, a.base+"/accounts/"+name+"/did.jsonl", "text/jsonl"); !bytes.Equal(got, moved.Log) {
		t.Fatalf("did.jsonl after the move:\n%s", got)
	}
	getBody(t, a.base+"/accounts/"+name+"/did-witness.json", "application/json")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(a.base + "/accounts/" + name + "/did.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "https://elsewhere.example/accounts/"+name+"/did.json" {
		t.Fatalf("did.json after the move: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// federationOnly is a federation store without its DID logs.
type federationOnly struct{ federation.Store }

func (federationOnly) GetDIDLogBySCID(context.Context, string) (*identity.DIDLog, error) {
	return nil, store.ErrNotFound
}

func (federationOnly) GetDIDLog(context.Context, string) (*identity.DIDLog, error) {
	return nil, store.ErrNotFound
}

// putCopy stores l in db as a replica would, unless db already holds it
// or a later version.
func putCopy(t *testing.T, db interface {
	GetDIDLogBySCID(context.Context, string) (*identity.DIDLog, error)
	PutDIDLog(context.Context, *identity.DIDLog, int) (bool, error)
}, l *identity.DIDLog) {
	t.Helper()
	ctx := context.Background()
	prev := 0
	if have, err := db.GetDIDLogBySCID(ctx, l.SCID); err == nil {
		if have.Version >= l.Version {
			return
		}
		prev = have.Version
	}
	c := *l
	if ok, err := db.PutDIDLog(ctx, &c, prev); err != nil || !ok {
		t.Fatalf("store a copy: %v %v", ok, err)
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func getBody(t *testing.T, u, ctype string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ctype || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, resp.Header)
	}
	return raw
}
