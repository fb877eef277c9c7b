package main

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDemo: serve --demo runs a sample service on the next port; logging in
// through it shows the claims it received.
func TestDemo(t *testing.T) {
	t.Parallel()
	// Two consecutive free ports.
	var port int
	for i := 0; i < 20; i++ {
		p, _ := strconv.Atoi(freePort(t))
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		if err == nil {
			ln.Close()
			port = p
			break
		}
	}
	if port == 0 {
		t.Fatal("no two consecutive free ports")
	}
	e := sqliteEnv(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	e["COMMONSID_ADDR"], e["COMMONSID_ISSUER"] = "127.0.0.1:"+strconv.Itoa(port), base
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		var out, errb bytes.Buffer
		done <- runEnv(ctx, []string{"serve", "--demo"}, strings.NewReader(""), &out, &errb, e.get)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	}()
	waitReady(t, base, 15*time.Second)
	e.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--name", "Alice", "--password-stdin")
	demoURL := "http://127.0.0.1:" + strconv.Itoa(port+1)
	b := newBrowser(t)
	if p := b.get(demoURL + "/"); p.status != 200 || !strings.Contains(p.body, `id="login"`) {
		t.Fatalf("demo home: %d %s", p.status, p.body)
	}
	p := b.authorize(demoURL+"/login", "alice", "correct horse battery", nil)
	if p.status != 200 || !strings.Contains(p.body, `id="sub"`) || !strings.Contains(p.body, "alice@example.org") || !strings.Contains(p.body, "did:key:") {
		t.Fatalf("demo after login: %d %s\n%s", p.status, p.url, p.body)
	}
}
