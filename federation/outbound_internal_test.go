package federation

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestEventDIDNotFetchedFromInternalAddress: an event that names a did:web
// account on a loopback host makes a cloud on a public issuer connect
// nowhere; a zero did.Resolver (what this used before) would have fetched
// the document from that host.
func TestEventDIDNotFetchedFromInternalAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Write([]byte("HTTP/1.1 500 internal-service-banner\r\n\r\n"))
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	f := &Federation{Issuer: "https://cloud.example"}
	id := "did:web:127.0.0.1%3A" + strconv.Itoa(port) + ":users:alice"
	_, err = f.accountDocument(context.Background(), id)
	if err == nil {
		t.Fatal("a did:web on a loopback host resolved")
	}
	if strings.Contains(err.Error(), "banner") {
		t.Fatalf("the error repeats what answered: %v", err)
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("the internal listener got %d connections", n)
	}
}
