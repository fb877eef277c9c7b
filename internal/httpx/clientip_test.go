package httpx

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies(" 10.0.0.0/8, 192.0.2.7 ,fd00::/8,")
	if err != nil || len(got) != 3 || got[1].String() != "192.0.2.7/32" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.org", "10.0.0.1/8/2", "::ffff:10.0.0.0/104"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestClientIP: the client is the rightmost hop that is not a trusted
// proxy, from Forwarded before X-Forwarded-For, and only when the peer
// itself is trusted.
func TestClientIP(t *testing.T) {
	trusted, _ := ParseTrustedProxies("10.0.0.0/8,fd00::/8")
	for _, c := range []struct {
		name, peer string
		header     map[string]string
		want       string
	}{
		{"no proxy", "198.51.100.1:5000", nil, "198.51.100.1"},
		{"untrusted peer ignores the header", "198.51.100.1:5000", map[string]string{"X-Forwarded-For": "203.0.113.9"}, "198.51.100.1"},
		{"trusted proxy", "10.0.0.2:5000", map[string]string{"X-Forwarded-For": "203.0.113.9"}, "203.0.113.9"},
		{"spoofed left hop", "10.0.0.2:5000", map[string]string{"X-Forwarded-For": "1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"two trusted proxies", "10.0.0.2:5000", map[string]string{"X-Forwarded-For": "1.2.3.4, 203.0.113.9, 10.1.1.1"}, "203.0.113.9"},
		{"forwarded", "10.0.0.2:5000", map[string]string{"Forwarded": `for=1.2.3.4, for="[2001:db8::17]:4711";proto=https`, "X-Forwarded-For": "9.9.9.9"}, "2001:db8::17"},
		{"forwarded v4 with port", "[fd00::1]:5000", map[string]string{"Forwarded": `for="203.0.113.5:80"`}, "203.0.113.5"},
		{"unknown hop keeps the proxy", "10.0.0.2:5000", map[string]string{"Forwarded": `for=unknown`}, "10.0.0.2"},
		{"garbage keeps the proxy", "10.0.0.2:5000", map[string]string{"X-Forwarded-For": "<script>"}, "10.0.0.2"},
		{"only trusted hops", "10.0.0.2:5000", map[string]string{"X-Forwarded-For": "10.3.3.3"}, "10.3.3.3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got string
			h := TrustProxies(trusted)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = ClientIP(r) }))
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = c.peer
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if got != c.want {
				t.Fatalf("ClientIP = %q, want %q", got, c.want)
			}
		})
	}
}

func FuzzForwarded(f *testing.F) {
	f.Add(`for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"`)
	f.Add(`for="\"quoted\""`)
	trusted, _ := ParseTrustedProxies("10.0.0.0/8")
	f.Fuzz(func(t *testing.T, v string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = "10.0.0.1:1"
		req.Header.Set("Forwarded", v)
		forwardedClient(req, trusted)
	})
}
