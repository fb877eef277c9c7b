package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/web"
)

// scrapeMetrics reads the admin listener's /metrics as text.
func scrapeMetrics(t *testing.T, adm string) string {
	t.Helper()
	st, _, _, raw := adminCall(t, "GET", adm+"/metrics", testAdminToken, nil)
	if st != 200 {
		t.Fatalf("admin /metrics: %d %s", st, raw)
	}
	return string(raw)
}

// metricSum adds up the samples of name whose labels include every pair of
// labels; found is false when there is none.
func metricSum(text, name string, labels map[string]string) (sum float64, found bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		end := strings.LastIndexByte(line, ' ')
		head := line[:end]
		ok := true
		for k, v := range labels {
			if !strings.Contains(head, k+`="`+v+`"`) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(line[end+1:], 64)
		if err != nil {
			continue
		}
		sum += f
		found = true
	}
	return sum, found
}

// TestMetrics signs in (right, wrong, then over the account's budget),
// takes a client-credentials token and follows a peer's feed, then scrapes
// /metrics on the admin listener: each family is there with its labels,
// and the counters moved. The cloud's log has the request lines at info
// and a warn line for each failed sign-in, without the password.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	e := sqliteEnv(t)
	e["COMMONSID_RATE_LIMIT"] = "on"
	e["COMMONSID_LOG_LEVEL"] = "info"
	e["COMMONSID_LOG_FORMAT"] = "json"
	port := freePort(t)
	e["COMMONSID_ADMIN_ADDR"] = "127.0.0.1:" + port
	e["COMMONSID_ADMIN_TOKEN"] = testAdminToken
	adm := "http://127.0.0.1:" + port
	a := startCloud(t, e)
	peer := startCloud(t, sqliteEnv(t))
	a.env.must(t, "", "peer", "add", peer.base)
	peer.env.must(t, "", "peer", "add", a.base)
	l := a.live()
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	before := scrapeMetrics(t, adm)

	if _, _, sess := signIn(t, l.base, "alice", "correct horse battery"); sess == "" {
		t.Fatal("alice could not sign in")
	}
	for i := 0; i < 5; i++ {
		if resp, _, _ := signIn(t, l.base, "alice", "wrong password"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i, resp.StatusCode)
		}
	}
	if resp, _, _ := signIn(t, l.base, "alice", "wrong password"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("over the account's budget: %d, want 429", resp.StatusCode)
	}
	if resp, _, _ := signIn(t, l.base, "nobody", "x"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown handle: %d", resp.StatusCode)
	}
	id, secret := cliClient(t, l, "--name", "worker", "--grant", "client_credentials")
	if a := call(t, l.base+"/token", url.Values{"grant_type": {"client_credentials"}}, id, secret, ""); a.status != 200 {
		t.Fatalf("client_credentials: %d %v", a.status, a.body)
	}

	// The request id: kept when sane, else made up; echoed.
	req, _ := http.NewRequest("GET", l.base+"/healthz", nil)
	req.Header.Set("X-Request-Id", "probe-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "probe-1" {
		t.Fatalf("X-Request-Id echo: %q", got)
	}
	req.Header.Set("X-Request-Id", "bad id\twith tab")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.ContainsAny(got, " \t") {
		t.Fatalf("X-Request-Id for an unsafe one: %q", got)
	}

	// An event on the peer's feed, applied here.
	dbA := openTestCloud(t, l).db
	peer.env.must(t, "correct horse battery\n", "user", "create", "--username", "carol", "--password-stdin")
	dbPeer := openTestCloud(t, peer.live()).db
	last, _ := dbPeer.LastEventSeq(ctx)
	eventually(t, 10*time.Second, "the cloud follows its peer", func() bool {
		p, err := dbA.GetPeer(ctx, peer.base)
		return err == nil && p.Cursor >= last
	})

	after := scrapeMetrics(t, adm)
	moved := func(name string, labels map[string]string, by float64) {
		t.Helper()
		b, _ := metricSum(before, name, labels)
		a, ok := metricSum(after, name, labels)
		if !ok {
			t.Errorf("%s%v: no sample", name, labels)
			return
		}
		if a-b < by {
			t.Errorf("%s%v: %v → %v, want +%v", name, labels, b, a, by)
		}
	}
	moved("commonsid_signins_total", map[string]string{"method": "password", "outcome": "success"}, 1)
	moved("commonsid_signins_total", map[string]string{"method": "password", "outcome": "bad_credentials"}, 6)
	moved("commonsid_signins_total", map[string]string{"method": "password", "outcome": "limited"}, 1)
	moved("commonsid_rate_limited_total", map[string]string{"limit": "failures:account"}, 1)
	moved("commonsid_tokens_issued_total", map[string]string{"grant_type": "client_credentials", "client_kind": "confidential"}, 1)
	moved("commonsid_http_request_duration_seconds_count", map[string]string{"route": "/login", "method": "POST", "status": "4xx"}, 7)
	moved("commonsid_http_request_duration_seconds_count", map[string]string{"route": "/token", "method": "POST", "status": "2xx"}, 1)
	for name, labels := range map[string]map[string]string{
		"commonsid_signing_key_age_seconds": {"alg": "ES256"},
		"go_sql_open_connections":           {"db_name": "commonsid"},
		"go_sql_wait_count_total":           {"db_name": "commonsid"},
	} {
		if _, ok := metricSum(after, name, labels); !ok {
			t.Errorf("%s%v: missing", name, labels)
		}
	}
	moved("commonsid_federation_events_applied_total", map[string]string{"peer": peer.base}, 1)
	if v, ok := metricSum(after, "commonsid_federation_lag_seconds", map[string]string{"peer": peer.base}); !ok || v < 0 || v > 60 {
		t.Errorf("federation lag of the peer: %v %v", v, ok)
	}
	for _, name := range []string{"commonsid_federation_events_rejected_total", "commonsid_federation_events_quarantined_total"} {
		if !strings.Contains(after, "# TYPE "+name+" counter") && strings.Contains(after, name+"{") {
			t.Errorf("%s is not a counter", name)
		}
	}
	eventually(t, 10*time.Second, "the stream from the peer is open", func() bool {
		v, ok := metricSum(scrapeMetrics(t, adm), "commonsid_federation_stream_connected", map[string]string{"peer": peer.base})
		return ok && v == 1
	})

	// The log: one info line per request with the route pattern and the
	// request id; a warn line for each failed sign-in, with the account
	// (or a hash of an unknown handle) and never the password.
	logs := a.logs.String()
	if strings.Contains(logs, "wrong password") || strings.Contains(logs, "correct horse") {
		t.Fatal("a password reached the log")
	}
	var reqLine, failAlice, failNobody bool
	for _, line := range strings.Split(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		switch {
		case rec["msg"] == "request" && rec["level"] == "INFO" && rec["route"] == "/healthz" && rec["request_id"] == "probe-1" &&
			rec["method"] == "GET" && rec["status"] == float64(200) && rec["duration"] != nil:
			reqLine = true
		case rec["msg"] == "sign-in failed" && rec["level"] == "WARN" && rec["reason"] == "bad_credentials" && rec["method"] == "password":
			if rec["request_id"] == nil || rec["ip"] != "127.0.0.1" {
				t.Errorf("sign-in failed line without request id or IP: %v", rec)
			}
			if acct, _ := rec["account"].(string); strings.HasPrefix(acct, "did:") {
				failAlice = true
			}
			if rec["handle_hash"] == web.HandleHash("nobody") && rec["account"] == nil {
				failNobody = true
			}
		}
	}
	if !reqLine || !failAlice || !failNobody {
		t.Errorf("log lines: request %v, failed sign-in of an account %v, of an unknown handle %v", reqLine, failAlice, failNobody)
	}

	// The route label is a pattern, never a raw path with a handle in it.
	if strings.Contains(after, `route="/login?`) || strings.Contains(after, "alice") {
		t.Error("a metric label carries request data")
	}
}
