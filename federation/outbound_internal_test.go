package federation

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/onecommons/commonsid/internal/testnet"
)

// TestEventDIDNotFetchedFromInternalAddress: an event that names a did:web
// account on a loopback host makes a cloud on a public issuer connect
// nowhere; a zero did.Resolver (what this used before) would have fetched
// the document from that host.
func TestEventDIDNotFetchedFromInternalAddress(t *testing.T) {
	addr, conns := testnet.Internal(t, "HTTP/1.1 500 internal-service-banner\r\n\r\n")
	_, port, _ := net.SplitHostPort(addr)
	f := &Federation{Issuer: "https://cloud.example"}
	id := "did:web:127.0.0.1%3A" + port + ":users:alice"
	_, err := f.accountDocument(context.Background(), id)
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
