package access_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/access"
)

var key = []byte("a-secret-of-at-least-32-characters-long")

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"notice_id":"n","account":"alice","level":"enhanced","expires_at":"2099-01-01T00:00:00Z"}`)
	secrets := []access.Secret{{Service: "other", Key: []byte("another-secret-of-at-least-32-characters")}, {Service: "pay", Key: key}}
	good := access.Sign(key, body, now)
	for _, c := range []struct {
		name   string
		header string
		body   []byte
		want   error
	}{
		{"good", good, body, nil},
		{"a rotated secret beside", good + ",v1=" + strings.Repeat("ab", 32), body, nil},
		{"other body", good, append([]byte(" "), body...), access.ErrSignature},
		{"no header", "", body, access.ErrSignature},
		{"no v1", "t=1800000000", body, access.ErrSignature},
		{"bad hex", "t=1800000000,v1=zz", body, access.ErrSignature},
		{"two t", "t=1800000000," + good, body, access.ErrSignature},
		{"t changed", strings.Replace(good, "t=1800000000", "t=1800000001", 1), body, access.ErrSignature},
		{"another key", access.Sign([]byte("not-the-key-not-the-key-not-the-key!!"), body, now), body, access.ErrSignature},
		{"stale", access.Sign(key, body, now.Add(-5*time.Minute-time.Second)), body, access.ErrStale},
		{"future", access.Sign(key, body, now.Add(5*time.Minute+time.Second)), body, access.ErrStale},
		{"edge of the window", access.Sign(key, body, now.Add(-5*time.Minute)), body, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			svc, err := access.Verify(secrets, c.header, c.body, now)
			if err != c.want || (err == nil && svc != "pay") {
				t.Fatalf("Verify = %q, %v; want pay, %v", svc, err, c.want)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	if l, err := access.ParseLevels(""); err != nil || len(l) != 1 || l[0] != "enhanced" {
		t.Fatalf("default levels = %v, %v", l, err)
	}
	if l, err := access.ParseLevels(" enhanced , patron"); err != nil || len(l) != 2 || l[1] != "patron" {
		t.Fatalf("levels = %v, %v", l, err)
	}
	for _, bad := range []string{"basic", "Gold", "a,a", "x y", strings.Repeat("a", 33), ","} {
		if _, err := access.ParseLevels(bad); err == nil {
			t.Errorf("ParseLevels(%q) accepted", bad)
		}
	}
	if s, err := access.ParseSecrets("pay:" + string(key) + ",shop:" + string(key)); err != nil || len(s) != 2 || s[1].Service != "shop" {
		t.Fatalf("secrets = %v, %v", s, err)
	}
	for _, bad := range []string{"pay", "pay:short", "Pay:" + string(key), "pay:" + string(key) + ",pay:" + string(key)} {
		_, err := access.ParseSecrets(bad)
		if err == nil {
			t.Errorf("ParseSecrets(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "short") || strings.Contains(err.Error(), string(key)) {
			t.Errorf("ParseSecrets error repeats the secret: %v", err)
		}
	}
}

func TestGrantEffective(t *testing.T) {
	t.Parallel()
	end := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	g := &access.Grant{Level: "enhanced", ExpiresAt: end}
	if v := access.Value(g, end.Add(-time.Second)); v.Level != "enhanced" || v.ExpiresAt != "2030-01-01T00:00:00Z" {
		t.Fatalf("before the end: %+v", v)
	}
	if v := access.Value(g, end); v.Level != access.Basic || v.ExpiresAt != "" || !g.Expired(end) {
		t.Fatalf("at the end: %+v", v)
	}
	if v := access.Value(nil, end); v.Level != access.Basic {
		t.Fatalf("no grant: %+v", v)
	}
}

// FuzzVerify: no header or body makes Verify panic or accept a signature
// it did not make.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"notice_id":"n"}`)
	f.Add(access.Sign(key, body, now), body)
	f.Add("t=1800000000,v1=00", []byte("{}"))
	f.Add("t=,v1=,v1=,t=", []byte(""))
	secrets := []access.Secret{{Service: "pay", Key: key}}
	f.Fuzz(func(t *testing.T, header string, b []byte) {
		svc, err := access.Verify(secrets, header, b, now)
		if err != nil {
			return
		}
		if svc != "pay" {
			t.Fatalf("accepted for %q", svc)
		}
		// Accepted: the header holds a t and the MAC of "t.body" under the key.
		for _, part := range strings.Split(header, ",") {
			if ts, ok := strings.CutPrefix(strings.TrimSpace(part), "t="); ok {
				n, _ := strconv.ParseInt(ts, 10, 64)
				want := strings.SplitN(access.Sign(key, b, time.Unix(n, 0)), ",", 2)[1]
				if !strings.Contains(header, want) {
					t.Fatalf("accepted a header without the body's MAC: %q", header)
				}
				return
			}
		}
		t.Fatalf("accepted a header without t: %q", header)
	})
}
