package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// connTransport is the driver's HTTP/1.1 transport: a pool of keep-alive
// connections to the one server under test, each request written and its
// answer read on the caller's goroutine. The driver shares the machine with
// the server more often than not; net/http's Transport spends two more
// goroutines and their hand-offs per request, CPU the server would
// otherwise have, so measuring through it understates the server.
type connTransport struct {
	base    *url.URL
	addr    string
	tls     *tls.Config
	timeout time.Duration // of one request when its context has no deadline
	dialer  net.Dialer

	mu   sync.Mutex
	idle []*rawConn
	max  int // idle connections kept
}

type rawConn struct {
	nc   net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	used bool // has carried a request: the server may have closed it since
}

func newConnTransport(base *url.URL, maxIdle int, timeout time.Duration) *connTransport {
	t := &connTransport{
		base:    base,
		addr:    base.Host,
		timeout: timeout,
		dialer:  net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		max:     maxIdle,
	}
	if base.Port() == "" {
		if base.Scheme == "https" {
			t.addr = net.JoinHostPort(base.Hostname(), "443")
		} else {
			t.addr = net.JoinHostPort(base.Hostname(), "80")
		}
	}
	if base.Scheme == "https" {
		t.tls = &tls.Config{ServerName: base.Hostname(), NextProtos: []string{"http/1.1"}}
	}
	return t
}

// RoundTrip sends req over a pooled connection and returns the answer with
// its body already read. Requests go to the base URL's host only.
func (t *connTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != t.base.Scheme || req.URL.Host != t.base.Host {
		closeBody(req)
		return nil, fmt.Errorf("the load driver sends requests to %s only, not to %s", t.base.Host, req.URL.Host)
	}
	for attempt := 0; ; attempt++ {
		c, err := t.get(req.Context())
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := t.exchange(c, req)
		if err == nil {
			return resp, nil
		}
		c.nc.Close()
		// A kept connection the server closed while it was idle fails
		// before any answer; such a request is sent again, once, on a new
		// connection, when its body can be had again.
		if attempt > 0 || !c.used || !staleConn(err) || req.Context().Err() != nil {
			closeBody(req)
			return nil, err
		}
		if req.Body != nil {
			if req.GetBody == nil {
				return nil, err
			}
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// staleConn reports whether err is what a connection closed by the server
// gives on the next use.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (t *connTransport) exchange(c *rawConn, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(t.timeout)
	}
	if err := c.nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if ctx.Done() != nil {
		// Cancelling the request interrupts its reads and writes.
		stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	reused := c.used
	c.used = true
	if err := req.Write(c.bw); err != nil {
		return nil, wrapCtx(ctx, err)
	}
	if err := c.bw.Flush(); err != nil {
		return nil, wrapCtx(ctx, err)
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		if !reused {
			c.used = false // a new connection that failed is not stale
		}
		return nil, wrapCtx(ctx, err)
	}
	body, err := readBody(resp)
	resp.Body.Close()
	if err != nil {
		return nil, wrapCtx(ctx, fmt.Errorf("reading the answer: %w", err))
	}
	resp.Body = &bufferedBody{Reader: bytes.NewReader(body), b: body}
	if resp.Close || req.Close {
		c.nc.Close()
	} else {
		t.put(c)
	}
	return resp, nil
}

// readBody reads an answer's body to its end, keeping up to maxBody bytes:
// in one piece when its length is given, else as it comes.
func readBody(resp *http.Response) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 && n <= maxBody {
		b := make([]byte, n)
		_, err := io.ReadFull(resp.Body, b)
		return b, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body) // beyond what is kept
	}
	return b, err
}

// bufferedBody is a body already read; send takes its bytes as they are.
type bufferedBody struct {
	*bytes.Reader
	b []byte
}

func (*bufferedBody) Close() error { return nil }

// wrapCtx names the context's error when it is why the connection failed.
func wrapCtx(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

func (t *connTransport) get(ctx context.Context) (*rawConn, error) {
	t.mu.Lock()
	if n := len(t.idle); n > 0 {
		c := t.idle[n-1]
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		return c, nil
	}
	t.mu.Unlock()
	nc, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	if t.tls != nil {
		tc := tls.Client(nc, t.tls)
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	return &rawConn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 8<<10)}, nil
}

func (t *connTransport) put(c *rawConn) {
	t.mu.Lock()
	if len(t.idle) < t.max {
		t.idle = append(t.idle, c)
		c = nil
	}
	t.mu.Unlock()
	if c != nil {
		c.nc.Close()
	}
}

// CloseIdleConnections closes the pooled connections.
func (t *connTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}
