//go:build linux

package federation_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/onecommons/commonsid/federation"
)

// stalledClient opens a live stream and never reads past the response
// head; its receive buffer is small, so the server's writes soon block.
func stalledClient(t *testing.T, addr, token string) (net.Conn, int) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	req := "GET /federation/v1/stream?after=0 HTTP/1.1\r\nHost: " + addr + "\r\n"
	if token != "" {
		req += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 16), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK && (resp.Header.Get("Retry-After") == "" && resp.StatusCode != http.StatusUnauthorized) {
		t.Errorf("%s without Retry-After", resp.Status)
	}
	return conn, resp.StatusCode
}

// TestStalledStreams: 40 clients open the live stream and never read.
// At most the caps are served (per peer, then in all), the rest are
// refused before anything is held for them, strangers first of all; the
// served ones are disconnected once a write has waited the write timeout,
// and the server's goroutines return to what they were.
func TestStalledStreams(t *testing.T) {
	a := newSide(t, "https://a.example")
	a.fed.Limits = federation.Limits{StreamsPerPeer: 4, Streams: 8, WriteTimeout: 4 * time.Second}
	// A backlog far larger than the socket buffers: 40 events of about
	// 28 KiB, so the writes block.
	tokens := []map[string]any{}
	for i := range 200 {
		tokens = append(tokens, map[string]any{"hash": fmt.Sprintf("%064x", i), "exp": time.Now().Add(time.Hour).Unix()})
	}
	if err := a.db.InTx(ctx, func(ctx context.Context) error {
		for range 40 {
			if err := a.db.AppendEvent(ctx, "token.revoked", "", time.Now().UTC(), map[string]any{"tokens": tokens}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	peerTokens := map[string]string{}
	for _, name := range []string{"b", "c", "d"} {
		s := newSide(t, "https://"+name+".example")
		s.peerOf(t, a)
		tok, err := s.fed.PeerToken(ctx, a.fed.Issuer)
		if err != nil {
			t.Fatal(err)
		}
		peerTokens[name] = tok
	}
	r := chi.NewRouter()
	a.fed.Mount(r)
	// The server's send buffers are kept small, as under memory pressure;
	// on loopback they would otherwise grow to a few MiB per connection.
	srv := httptest.NewUnstartedServer(r)
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	runtime.GC()
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	// 16 streams as b, 12 as c, 8 as d, 4 without a token: 40.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	got := map[string]map[int]int{}
	for _, c := range []struct {
		who string
		n   int
	}{{"b", 16}, {"c", 12}, {"d", 8}, {"", 4}} {
		got[c.who] = map[int]int{}
		for range c.n {
			conn, status := stalledClient(t, addr, peerTokens[c.who])
			conns = append(conns, conn)
			got[c.who][status]++
		}
	}
	want := map[string]map[int]int{
		"b": {200: 4, 429: 12},
		"c": {200: 4, 429: 8},
		"d": {503: 8}, // the 8 places in all are taken
		"":  {401: 4},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("answers by peer and status: %v, want %v", got, want)
	}
	if st := a.fed.Stats(); st.Serving != 8 || st.Refused != 28 {
		t.Fatalf("while held: %+v", st)
	}
	// The writes to the stalled streams time out; their goroutines end.
	start := time.Now()
	for {
		n := runtime.NumGoroutine()
		st := a.fed.Stats()
		if n <= baseline+2 && st.Serving == 0 {
			if st.Stalled != 8 {
				t.Fatalf("after the drop: %+v", st)
			}
			break
		}
		if time.Since(start) > 15*time.Second {
			buf := make([]byte, 1<<20)
			t.Fatalf("after %v: %d goroutines (baseline %d), %+v\n%s", time.Since(start), n, baseline, st, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
	// With the places free again, a peer is served.
	conn, status := stalledClient(t, addr, peerTokens["d"])
	conns = append(conns, conn)
	if status != http.StatusOK {
		t.Fatalf("after the stalled streams ended, d gets %d", status)
	}
}

// smallSendBuffers gives every accepted connection a 16 KiB send buffer.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(16 << 10)
	}
	return c, err
}
