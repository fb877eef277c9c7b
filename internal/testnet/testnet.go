// Package testnet holds network fixtures for tests.
package testnet

import (
	"net"
	"sync/atomic"
	"testing"
)

// Internal is a raw TCP listener on loopback standing for a service on a
// cloud's own network (a database, a metadata endpoint): it writes greeting
// to every connection, closes it, and counts connections. Tests of the
// outbound guard assert that it was never reached and that its greeting
// never shows in an error.
func Internal(t testing.TB, greeting string) (addr string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Write([]byte(greeting))
			c.Close()
		}
	}()
	return ln.Addr().String(), conns
}
