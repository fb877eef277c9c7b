package oidc

import "testing"

func TestRedirectMatches(t *testing.T) {
	registered := []string{"http://127.0.0.1:8000/cb", "http://[::1]/native?x=1", "https://app.example/cb"}
	for requested, want := range map[string]bool{
		"http://127.0.0.1:8000/cb":       true,
		"http://127.0.0.1:9999/cb":       true, // RFC 8252: any port
		"http://127.0.0.1/cb":            true,
		"http://[::1]:51234/native?x=1":  true,
		"https://app.example/cb":         true,
		"http://x@127.0.0.1:9999/cb":     false, // user info
		"http://x:y@127.0.0.1:8000/cb":   false,
		"http://127.0.0.1:9999/c%62":     false, // percent-encoded path
		"http://127.0.0.1:9999/cb%2F..":  false,
		"http://127.0.0.1:9999/cb/":      false,
		"http://127.0.0.1:9999/CB":       false,
		"http://127.0.0.1:9999/cb?x=1":   false, // query must match
		"http://127.0.0.1:9999/cb#f":     false,
		"http://127.0.0.1:99a/cb":        false,
		"http://127.0.0.2:8000/cb":       false, // another host
		"http://localhost:8000/cb":       false,
		"https://127.0.0.1:8000/cb":      false, // scheme must match
		"http://[::1]:5/native?x=2":      false,
		"http://[::1]:5/native?x=1&y=2":  false,
		"https://app.example:444/cb":     false, // the port varies on loopback only
		"http://app.example/cb":          false,
		"http://127.0.0.1%2e:9999/cb":    false,
		"http://[::ffff:127.0.0.1]:1/cb": false,
	} {
		if got := redirectMatches(registered, requested); got != want {
			t.Errorf("redirectMatches(%q) = %v, want %v", requested, got, want)
		}
	}
	// A registered https loopback URI is matched exactly, port included.
	if redirectMatches([]string{"https://127.0.0.1:8000/cb"}, "http://127.0.0.1:9000/cb") {
		t.Error("an https registration matched http on another port")
	}
}
