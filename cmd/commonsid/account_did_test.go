package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/internal/safehttp"
)

// didLogProxy stands in front of a cloud, on the port its issuer names.
// While tampering it flips one byte of every did.jsonl it passes; the feed
// and everything else pass unchanged.
type didLogProxy struct {
	srv      *httptest.Server
	tamper   atomic.Bool
	tampered atomic.Int64
}

func newDIDLogProxy(t *testing.T, target string) *didLogProxy {
	u, _ := url.Parse(target)
	p := &didLogProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if !p.tamper.Load() || !strings.HasSuffix(resp.Request.URL.Path, "/did.jsonl") || resp.StatusCode != 200 {
			return nil
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// A digit of the versionTime: the JSON stays well formed, the
		// entry hash and the proof no longer match.
		if i := strings.Index(string(raw), `"versionTime":"20`); i >= 0 {
			raw[i+len(`"versionTime":"20`)] ^= 1
		}
		p.tampered.Add(1)
		resp.Body = io.NopCloser(strings.NewReader(string(raw)))
		resp.ContentLength = int64(len(raw))
		resp.Header.Del("Content-Length")
		return nil
	}
	rp.ErrorLog = log.New(io.Discard, "", 0) // "connection refused" until the cloud is up
	p.srv = httptest.NewServer(rp)
	t.Cleanup(func() {
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

// startWebVHCloud serves a cloud with COMMONSID_ACCOUNT_DID=webvh on
// 127.0.0.1 behind a didLogProxy whose port its issuer, on localhost,
// names.
func startWebVHCloud(t *testing.T, e env) (*cloudProc, *didLogProxy) {
	t.Helper()
	port := freePort(t)
	proxy := newDIDLogProxy(t, "http://127.0.0.1:"+port)
	pu, _ := url.Parse(proxy.srv.URL)
	e["COMMONSID_ADDR"] = "127.0.0.1:" + port
	e["COMMONSID_ISSUER"] = "http://localhost:" + pu.Port()
	e["COMMONSID_ACCOUNT_DID"] = "webvh"
	c := &cloudProc{t: t, env: e, base: e["COMMONSID_ISSUER"], logs: &lockedBuffer{}}
	c.start()
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("log of %s:\n%s", c.base, c.logs.String())
		}
	})
	return c, proxy
}

type shownAccount struct {
	DID           string `json:"did"`
	DIDMethod     string `json:"did_method"`
	DIDLogVersion int    `json:"did_log_version"`
	DIDDocument   struct {
		ID              string   `json:"id"`
		AssertionMethod []string `json:"assertionMethod"`
	} `json:"did_document"`
}

func showDIDAccount(t *testing.T, e env, ref string) shownAccount {
	t.Helper()
	var s shownAccount
	if err := json.Unmarshal([]byte(e.must(t, "", "user", "show", ref)), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func signUpSharedWebVH(t *testing.T, base, handle string) *browser {
	t.Helper()
	br := newBrowser(t)
	form := url.Values{"handle": {handle}, "password": {"correct horse battery"}, "return_to": {"/account"}, "federation_sharing": {"all"}}
	if p := passRecoveryKit(br, base, br.post(base+"/signup", form)); p.url.Path != "/account" {
		t.Fatalf("sign-up of %s: %d %s\n%s", handle, p.status, p.url, p.body)
	}
	return br
}

// TestAccountDIDWebVH: a cloud on localhost with COMMONSID_ACCOUNT_DID=webvh
// gives new accounts — by sign-up and by `user create` — a
// did:webvh DID whose log it serves and which verifies; a peer on
// 127.0.0.1 replicates a shared account by resolving that log
// over HTTP to verify the person signatures, and quarantines the events of
// an account whose log reaches it tampered with. Exports of such accounts
// carry their log. Home and peer run on SQLite and
// PostgreSQL, then the other way round.
func TestAccountDIDWebVH(t *testing.T) {
	t.Parallel()
	t.Run("home on SQLite", func(t *testing.T) { testAccountDIDWebVH(t, sqliteEnv(t), postgresEnv(t)) })
	t.Run("home on PostgreSQL", func(t *testing.T) { testAccountDIDWebVH(t, postgresEnv(t), sqliteEnv(t)) })
}

func testAccountDIDWebVH(t *testing.T, homeEnv, peerEnv env) {
	ctx := context.Background()
	a, proxy := startWebVHCloud(t, homeEnv)
	b := startCloud(t, peerEnv)
	a.env.must(t, "", "peer", "add", b.base)
	b.env.must(t, "", "peer", "add", a.base)
	dbB := openTestCloud(t, b.live()).db

	// user create
	pu, _ := url.Parse(a.base)
	id := lastLine(a.env.must(t, "correct horse battery\n", "user", "create", "--username", "carol", "--email", "carol@example.org", "--password-stdin"))
	prefix := "did:webvh:"
	wantPath := ":id.localhost%3A" + pu.Port() + ":accounts:"
	if !strings.HasPrefix(id, prefix) || !strings.Contains(id, wantPath) {
		t.Fatalf("user create gave %s, want did:webvh:{SCID}%s{name}", id, wantPath)
	}
	parsed, err := webvh.ParseDID(id)
	if err != nil {
		t.Fatal(err)
	}
	name := parsed.Path[len(parsed.Path)-1]

	// The log is served, public, and verifies (SCID and proof).
	logURL := a.base + "/accounts/" + name + "/did.jsonl"
	resp, err := http.Get(logURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/jsonl" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("GET did.jsonl: %d %v", resp.StatusCode, resp.Header)
	}
	// The witness worker may have added the member witnesses (entry 2)
	// already: every check but their proofs (didhome_test.go has those).
	served, err := webvh.Open(body, webvh.Options{DID: id})
	if err != nil {
		t.Fatalf("served log: %v\n%s", err, body)
	}
	res := served.Result()
	if res.Metadata.SCID != parsed.SCID || !res.Metadata.Portable || res.Metadata.VersionNumber < 1 || res.DID != id {
		t.Fatalf("log metadata: %+v", res.Metadata)
	}
	if got := parsed.LogURL(); got != "https://id.localhost:"+pu.Port()+"/accounts/"+name+"/did.jsonl" {
		t.Fatalf("log URL of the DID: %s", got)
	}
	// The parallel did:web document.
	resp, err = http.Get(a.base + "/accounts/" + name + "/did.json")
	if err != nil {
		t.Fatal(err)
	}
	var web struct {
		ID          string   `json:"id"`
		AlsoKnownAs []string `json:"alsoKnownAs"`
	}
	json.NewDecoder(resp.Body).Decode(&web)
	resp.Body.Close()
	if resp.StatusCode != 200 || web.ID != parsed.WebDID() || len(web.AlsoKnownAs) != 1 || web.AlsoKnownAs[0] != id ||
		resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("GET did.json: %d %+v", resp.StatusCode, web)
	}
	for _, bad := range []string{"aaaaaaaaaaaaaaaaaaaaaaaaaa", strings.Repeat("a", 200), "carol", "..%2F..%2Fetc"} {
		if resp, err := http.Get(a.base + "/accounts/" + bad + "/did.jsonl"); err != nil || resp.StatusCode != 404 {
			t.Fatalf("unknown name %q: %v %v", bad, resp, err)
		} else {
			resp.Body.Close()
		}
	}
	// user show names the method and the log version.
	if s := showDIDAccount(t, a.env, "carol"); s.DIDMethod != "webvh" || s.DIDLogVersion < 1 || s.DIDDocument.ID != id ||
		len(s.DIDDocument.AssertionMethod) != 1 || !strings.HasPrefix(s.DIDDocument.AssertionMethod[0], id+"#") {
		t.Fatalf("user show: %+v", s)
	}
	// /dids/{did} resolves it from the stored log.
	if resp, err := http.Get(a.base + "/dids/" + url.PathEscape(id)); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/dids/: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// The export carries the log (moves: move_webvh_test.go).
	out := filepath.Join(t.TempDir(), "carol.json")
	a.env.must(t, "a long enough passphrase\n", "export", "--out", out, "--passphrase-stdin", "carol")
	if raw, err := os.ReadFile(out); err != nil {
		t.Fatal(err)
	} else if d := exportedDocument(t, raw); d.DIDLog == "" || d.Account.DID != id || d.DIDLogVersion < 1 {
		t.Fatalf("export of a did:webvh account: log %d bytes, account %s, version %d", len(d.DIDLog), d.Account.DID, d.DIDLogVersion)
	}

	// Sign-up, shared: B replicates the account, which it can only do by
	// resolving the log over HTTP to verify the person signature.
	br := signUpSharedWebVH(t, a.base, "alice")
	alice := showDIDAccount(t, a.env, "alice")
	// "Download my identity" gives the file.
	if p := br.post(a.base+"/account/export", url.Values{"passphrase": {"a long passphrase here"}, "passphrase_confirm": {"a long passphrase here"}}); p.status != 200 || exportedDocument(t, []byte(p.body)).DIDLog == "" {
		t.Fatalf("export page of a did:webvh account: %d %s", p.status, p.body)
	}
	if !strings.HasPrefix(alice.DID, prefix) || !strings.Contains(alice.DID, wantPath) {
		t.Fatalf("sign-up gave %s", alice.DID)
	}
	eventually(t, 10*time.Second, "alice on B", func() bool {
		acc, err := dbB.GetAccount(ctx, alice.DID)
		return err == nil && acc.HomeIssuer == a.base
	})
	if qs, err := dbB.ListQuarantined(ctx, a.base, 100); err != nil || len(qs) != 0 {
		t.Fatalf("quarantine on B before tampering: %v %+v", err, qs)
	}

	// A tampered copy on the way changes nothing: B holds each account's log
	// from the did.log event of A's signed feed (self-certifying, checked
	// entry by entry) and checks the account's signatures against it, not
	// against whatever a fetch of did.jsonl returns.
	dbA := openTestCloud(t, a.live()).db
	proxy.tamper.Store(true)
	signUpSharedWebVH(t, a.base, "bob")
	bob := showDIDAccount(t, a.env, "bob")
	eventually(t, 30*time.Second, "bob on B with A's log", func() bool {
		acc, err := dbB.GetAccount(ctx, bob.DID)
		if err != nil || acc.HomeIssuer != a.base {
			return false
		}
		held, err := dbB.GetDIDLog(ctx, bob.DID)
		own, err2 := dbA.GetDIDLog(ctx, bob.DID)
		// A's last entry may still wait for witnesses: B holds the
		// witnessed part of A's log.
		return err == nil && err2 == nil && len(held.Log) > 0 && strings.HasPrefix(string(own.Log), strings.TrimRight(string(held.Log), "\n"))
	})
	if qs, err := dbB.ListQuarantined(ctx, a.base, 100); err != nil || len(qs) != 0 {
		t.Fatalf("quarantine on B after tampering: %v %+v", err, qs)
	}
}

// TestAccountDIDConfig: a bad COMMONSID_ACCOUNT_DID and a did:webvh cloud
// on an IP address are refused at start, naming the variable.
func TestAccountDIDConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ method, issuer, want string }{
		{"plc", "http://localhost:8080", `COMMONSID_ACCOUNT_DID "plc": use auto, webvh or key`},
		{"webvh", "http://127.0.0.1:8080", "COMMONSID_ACCOUNT_DID=webvh"},
		{"webvh", "https://192.0.2.1", "IP address"},
	} {
		e := sqliteEnv(t)
		e["COMMONSID_ACCOUNT_DID"], e["COMMONSID_ISSUER"], e["COMMONSID_ADDR"] = tc.method, tc.issuer, "127.0.0.1:"+freePort(t)
		for _, cmd := range [][]string{{"serve"}, {"user", "list"}, {"user", "create", "--username", "xavier", "--password-stdin"}} {
			r := e.run(t, "correct horse battery\n", cmd...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%s with %s on %s: exit %d, stderr %q, want %q", cmd[0], tc.method, tc.issuer, r.code, r.stderr, tc.want)
			}
		}
	}
}

// TestWebVHFetcherLoopback: the did:webvh fetcher reaches a log on a
// loopback host (over plain http) only through a guarded client that may
// reach loopback, i.e. on a cloud whose own issuer is on loopback; a cloud
// on a public issuer refuses, and fetches nothing but https.
func TestWebVHFetcherLoopback(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/accounts/x/did.jsonl" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("log"))
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	ctx := context.Background()
	for _, host := range []string{"id.localhost", "localhost"} {
		u := "https://" + host + ":" + port + "/accounts/x/did.jsonl"
		if b, err := webvhFetcher(safehttp.New(safehttp.Options{AllowLoopback: true}))(ctx, u); err != nil || string(b) != "log" {
			t.Fatalf("loopback cloud, %s: %q %v", u, b, err)
		}
		_, err := webvhFetcher(safehttp.New(safehttp.Options{}))(ctx, u)
		if !errors.Is(err, safehttp.ErrRefused) {
			t.Fatalf("public cloud, %s: %v, want refused", u, err)
		}
	}
	if _, err := webvhFetcher(safehttp.New(safehttp.Options{AllowLoopback: true}))(ctx, srv.URL+"/accounts/x/did.jsonl"); err == nil {
		t.Fatal("a plain http URL was fetched")
	}
}

// TestAccountDIDWebVHNeedsIssuer: before any issuer is recorded or given,
// `user create` with webvh is refused rather than minting a DID under the
// default issuer that serve may later replace.
func TestAccountDIDWebVHNeedsIssuer(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	e["COMMONSID_ACCOUNT_DID"] = "webvh"
	r := e.run(t, "correct horse battery\n", "user", "create", "--username", "early", "--password-stdin")
	if r.code == 0 || !strings.Contains(r.stderr, "no recorded issuer yet") {
		t.Fatalf("user create before any issuer: %+v", r)
	}
	e["COMMONSID_ISSUER"] = "http://localhost:8080"
	if id := lastLine(e.must(t, "correct horse battery\n", "user", "create", "--username", "early", "--password-stdin")); !strings.HasPrefix(id, "did:webvh:") || !strings.Contains(id, ":id.localhost%3A8080:accounts:") {
		t.Fatalf("user create with the issuer given: %s", id)
	}
}
