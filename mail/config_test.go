package mail_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/onecommons/commonsid/mail"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		raw  string
		want mail.Config
	}{
		{"smtp://user%40example.org:p%40ss@mx.example.org?from=id@example.org", mail.Config{
			Host: "mx.example.org", Port: 587, Security: mail.SecurityStartTLS, Username: "user@example.org", Password: "p@ss",
			Auth: mail.AuthAuto, From: "id@example.org", Timeout: mail.DefaultTimeout,
		}},
		{"smtp://mx.example.org:25?from=Commons+ID+%3Cid@example.org%3E", mail.Config{
			Host: "mx.example.org", Port: 25, Security: mail.SecurityStartTLS, Auth: mail.AuthAuto,
			From: "Commons ID <id@example.org>", Timeout: mail.DefaultTimeout,
		}},
		// The user name is the sender when it is an address.
		{"smtps://id@example.org:pw@smtp.example.org", mail.Config{
			Host: "smtp.example.org", Port: 465, Security: mail.SecurityTLS, Username: "id@example.org", Password: "pw",
			Auth: mail.AuthAuto, From: "id@example.org", Timeout: mail.DefaultTimeout,
		}},
		{"SMTPS://u:pw@[2001:db8::1]:2465/?from=a@b.example&auth=LOGIN&timeout=45s&ca_file=/etc/ca.pem&helo=id.example.org", mail.Config{
			Host: "2001:db8::1", Port: 2465, Security: mail.SecurityTLS, Username: "u", Password: "pw", Auth: mail.AuthLogin,
			From: "a@b.example", Timeout: 45 * time.Second, CAFile: "/etc/ca.pem", HELO: "id.example.org",
		}},
		{"smtp://127.0.0.1:1025?starttls=off&from=a@b.example", mail.Config{
			Host: "127.0.0.1", Port: 1025, Security: mail.SecurityNone, Auth: mail.AuthAuto, From: "a@b.example", Timeout: mail.DefaultTimeout,
		}},
		{"smtp://localhost:1025?insecure_skip_verify&from=a@b.example", mail.Config{
			Host: "localhost", Port: 1025, Security: mail.SecurityStartTLS, Auth: mail.AuthAuto, From: "a@b.example",
			Timeout: mail.DefaultTimeout, InsecureSkipVerify: true,
		}},
		{"smtps://[::1]:1465?insecure_skip_verify=true&from=a@b.example", mail.Config{
			Host: "::1", Port: 1465, Security: mail.SecurityTLS, Auth: mail.AuthAuto, From: "a@b.example",
			Timeout: mail.DefaultTimeout, InsecureSkipVerify: true,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := mail.ParseURL(tc.raw)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			if d := cmp.Diff(tc.want, *got); d != "" {
				t.Errorf("config (-want +got):\n%s", d)
			}
			// String round-trips, without the password.
			again, err := mail.ParseURL(strings.Replace(got.String(), "REDACTED", url.QueryEscape(got.Password), 1))
			if err != nil {
				t.Fatalf("ParseURL(String()): %v", err)
			}
			if d := cmp.Diff(*got, *again); d != "" {
				t.Errorf("String does not round-trip (-want +got):\n%s", d)
			}
			if got.Password != "" && strings.Contains(got.String(), got.Password) {
				t.Errorf("String() = %q shows the password", got.String())
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	const pw = "Hunter2-sekrit"
	tests := []struct {
		raw, want string
	}{
		{"", "empty"},
		{"mx.example.org", "no scheme"},
		{"http://mx.example.org?from=a@b.example", `scheme "http" is not supported`},
		{"smtp:mx.example.org", "no host"},
		{"smtp://?from=a@b.example", "no host"},
		{"smtp://mx.example.org/a@b.example", "has a path"},
		{"smtp://mx.example.org?from=a@b.example#x", "fragment"},
		{"smtp://mx.example.org:0?from=a@b.example", "not a port"},
		{"smtp://mx.example.org:70000?from=a@b.example", "not a port"},
		{"smtp://u:" + pw + "@mx.example.org:x25?from=a@b.example", "does not parse"},
		{"smtp://:" + pw + "@mx.example.org?from=a@b.example", "no user name"},
		{"smtp://u:" + pw + "@mx.example.org", "no sender"},
		{"smtp://mx.example.org?from=not-an-address", "not an email address"},
		{"smtp://mx.example.org?from=a@b.example%0D%0ABcc:+x@y.example", "line break"},
		{"smtp://mx.example.org?from=a@b.example&from=c@d.example", "given 2 times"},
		{"smtp://mx.example.org?from=a@b.example&auth=cram-md5", "auth=\"cram-md5\" is not supported"},
		{"smtp://mx.example.org?from=a@b.example&auth=plain", "needs a user name"},
		{"smtp://mx.example.org?from=a@b.example&timeout=soon", "not a duration"},
		{"smtp://mx.example.org?from=a@b.example&timeout=1ms", "outside"},
		{"smtp://mx.example.org?from=a@b.example&timeout=1h", "outside"},
		{"smtp://mx.example.org?from=a@b.example&starttls=off", "only for a loopback server"},
		{"smtp://10.0.0.1?from=a@b.example&starttls=off", "only for a loopback server"},
		{"smtp://localhost.example.org?from=a@b.example&starttls=off", "only for a loopback server"},
		{"smtps://127.0.0.1?from=a@b.example&starttls=off", "does not apply to smtps"},
		{"smtp://127.0.0.1?from=a@b.example&starttls=maybe", "only starttls=off"},
		{"smtp://mx.example.org?from=a@b.example&insecure_skip_verify", "insecure_skip_verify is allowed only for a loopback"},
		{"smtp://127.0.0.1?from=a@b.example&insecure_skip_verify=perhaps", "want true or false"},
		{"smtp://127.0.0.1?from=a@b.example&insecure_skip_verify&ca_file=/x.pem", "choose one"},
		{"smtp://127.0.0.1?from=a@b.example&starttls=off&ca_file=/x.pem", "do not apply"},
		{"smtp://mx.example.org?from=a@b.example&tls=off", `parameter "tls" is unknown`},
		{"smtp://mx.example.org?from=a@b.example&helo=a+b", "not a host name"},
		{"smtp://mx.example.org?from=a@b.example&ca_file=", "ca_file is empty"},
		{"smtp://u:pw%0D%0A@mx.example.org?from=a@b.example", "line break"},
		{"smtp://mx.example.org?from=a@b.example&" + strings.Repeat("x", 2100), "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			_, err := mail.ParseURL(tc.raw)
			if err == nil {
				t.Fatalf("ParseURL(%q) = nil error, want %q", tc.raw, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error %q repeats the password", err)
			}
		})
	}
}

// TestParseURLReportsAll: every problem is reported at once.
func TestParseURLReportsAll(t *testing.T) {
	_, err := mail.ParseURL("smtp://mx.example.org?starttls=off&insecure_skip_verify&timeout=x")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"starttls=off", "insecure_skip_verify", "timeout", "no sender"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"smtp://user:pass@mx.example.org:587?from=id@example.org",
		"smtps://u:pw@[::1]:465?insecure_skip_verify&from=a@b.example",
		"smtp://127.0.0.1:25?starttls=off&from=a@b.example&auth=login",
		"smtp://u:p@h:x?from=",
		"smtp://%zz:secretsecret@host",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		cfg, err := mail.ParseURL(raw)
		u, perr := url.Parse(raw)
		var pw string
		if perr == nil && u.User != nil {
			pw, _ = u.User.Password()
		}
		if err != nil {
			if pw != "" && len(pw) >= 6 && strings.Contains(err.Error(), pw) && !strings.Contains(strings.Replace(raw, pw, "", 1), pw) {
				t.Fatalf("error %q repeats the password %q", err, pw)
			}
			return
		}
		if cfg.Security == mail.SecurityNone || cfg.InsecureSkipVerify {
			if !strings.Contains(cfg.String(), "127.") && !strings.Contains(cfg.String(), "localhost") && !strings.Contains(cfg.String(), "::1") {
				t.Fatalf("%q: weakened TLS for a host that is not loopback: %s", raw, cfg)
			}
		}
		if cfg.Password != "" {
			u2, err := url.Parse(cfg.String())
			if err != nil {
				t.Fatalf("String() %q does not parse: %v", cfg, err)
			}
			if p2, _ := u2.User.Password(); p2 != "REDACTED" {
				t.Fatalf("String() %q does not redact the password", cfg)
			}
		}
	})
}
