package mail_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/onecommons/commonsid/internal/smtptest"
	"github.com/onecommons/commonsid/mail"
)

var (
	at      = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	hostile = mail.Common{
		To:     "ada@example.net",
		Cloud:  `Example <b>Commons</b> & "Friends"`,
		Issuer: "https://id.example.org",
		Handle: "<script>alert(1)</script>",
	}
	hostileReq = mail.Request{
		At:     at,
		IP:     "203.0.113.7<img src=x onerror=alert(1)>",
		Device: "Firefox 140 <i>on</i> Linux\r\n\r\nAll is well. Confirm at https://evil.example/x or www.evil.example or evil.example",
	}
)

func renderCases() map[mail.Kind]struct {
	data  any
	link  string
	words []string // in both parts
} {
	return map[mail.Kind]struct {
		data  any
		link  string
		words []string
	}{
		mail.KindVerifyEmail: {
			data: mail.VerifyEmail{Common: hostile, Link: "https://id.example.org/account/verify?token=v1&x=1", ValidFor: 24 * time.Hour},
			link: "https://id.example.org/account/verify?token=v1&x=1", words: []string{"24 hours", "Please confirm that this is your email address"},
		},
		mail.KindPasswordReset: {
			data: &mail.PasswordReset{Common: hostile, Link: "https://id.example.org/reset?token=r1", ValidFor: 30 * time.Minute, Request: hostileReq},
			link: "https://id.example.org/reset?token=r1", words: []string{"30 minutes", "Wednesday 4 March 2026, 05:06 UTC", "Firefox 140"},
		},
		mail.KindPasswordChanged: {
			data: mail.PasswordChanged{Common: hostile, Request: hostileReq, Link: "https://id.example.org/forgot"},
			link: "https://id.example.org/forgot", words: []string{"was just changed", "Firefox 140"},
		},
		mail.KindLockout: {
			data: mail.Lockout{Common: hostile, Failures: 12, Until: at.Add(15 * time.Minute), Request: hostileReq, Link: "https://id.example.org/forgot"},
			link: "https://id.example.org/forgot", words: []string{"12 wrong password attempts", "05:21 UTC", "Firefox 140"},
		},
		mail.KindNewDeviceSignIn: {
			data: mail.NewDeviceSignIn{Common: hostile, Request: hostileReq, Link: "https://id.example.org/account#activity"},
			link: "https://id.example.org/account#activity", words: []string{"device that has not been used", "Firefox 140"},
		},
		mail.KindRecoveryKitSignIn: {
			data: mail.RecoveryKitSignIn{Common: hostile, Request: hostileReq, Link: "https://id.example.org/account/security"},
			link: "https://id.example.org/account/security", words: []string{"in place of its second factor", "Firefox 140"},
		},
	}
}

func TestRenderEveryKind(t *testing.T) {
	cases := renderCases()
	if len(cases) != len(mail.Kinds()) {
		t.Fatalf("test covers %d kinds, there are %d", len(cases), len(mail.Kinds()))
	}
	for _, kind := range mail.Kinds() {
		tc := cases[kind]
		t.Run(string(kind), func(t *testing.T) {
			m, err := mail.Render(kind, tc.data)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if m.Kind != kind || len(m.To) != 1 || m.To[0] != "ada@example.net" {
				t.Errorf("kind %q, to %q", m.Kind, m.To)
			}
			if m.Subject == "" || strings.ContainsAny(m.Subject, "\r\n") || !strings.Contains(m.Subject, "Example <b>Commons</b>") {
				t.Errorf("subject %q: want one line naming the cloud", m.Subject)
			}
			if m.Text == "" || m.HTML == "" {
				t.Fatalf("a part is empty: text %d bytes, HTML %d bytes", len(m.Text), len(m.HTML))
			}

			// Text: the link on a line of its own, data as given but
			// on one line.
			if !strings.Contains(m.Text, "\n"+tc.link+"\n") {
				t.Errorf("text does not hold the link on its own line:\n%s", m.Text)
			}
			if links := smtptest.Links(m.Text); len(links) != 2 || links[0] != tc.link || links[1] != "https://id.example.org" {
				t.Errorf("links in text = %q, want the link and the issuer only", links)
			}
			if !strings.Contains(m.Text, "Hello <script>alert(1)</script>,") {
				t.Errorf("text does not greet the handle:\n%s", m.Text)
			}
			if !strings.HasSuffix(m.Text, "Replies are not read.\n") || !strings.Contains(m.Text, "\n-- \n") {
				t.Errorf("text does not end with the signature:\n%s", m.Text)
			}

			// HTML: everything escaped, the link an href.
			for _, bad := range []string{"<script>", "<b>Commons", "<img", "<i>on", "onerror=alert", "evil"} {
				if strings.Contains(m.HTML, bad) {
					t.Errorf("HTML holds %q unescaped:\n%s", bad, m.HTML)
				}
			}
			for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "Example &lt;b&gt;Commons&lt;/b&gt; &amp; &#34;Friends&#34;",
				`href="` + strings.ReplaceAll(tc.link, "&", "&amp;") + `"`, "<!DOCTYPE html>", "</html>"} {
				if !strings.Contains(m.HTML, want) {
					t.Errorf("HTML does not hold %q:\n%s", want, m.HTML)
				}
			}
			for _, w := range tc.words {
				if !strings.Contains(m.Text, w) || !strings.Contains(m.HTML, w) {
					t.Errorf("%q is not in both parts", w)
				}
			}
			// A hostile User-Agent stays one line and carries no link.
			if strings.Contains(m.Text, "evil") || strings.Contains(m.Text, "\r") {
				t.Errorf("text carries the hostile device text:\n%s", m.Text)
			}
			if strings.Contains(m.Text, "Device:") && !strings.Contains(m.Text, "Device:  Firefox 140 <i>on</i> Linux All is well. Confirm at or or\n") {
				t.Errorf("device line not cleaned:\n%s", m.Text)
			}
			if strings.Contains(m.Text, "From: ") && !strings.Contains(m.Text, "From:    203.0.113.7imgsrcxonerroralert1\n") {
				t.Errorf("IP line not cleaned:\n%s", m.Text)
			}
		})
	}
}

func TestRenderOptionalFields(t *testing.T) {
	c := mail.Common{To: "ada@example.net", Issuer: "https://id.example.org"}
	for _, kind := range []mail.Kind{mail.KindPasswordChanged, mail.KindLockout, mail.KindNewDeviceSignIn} {
		var data any
		switch kind {
		case mail.KindPasswordChanged:
			data = mail.PasswordChanged{Common: c}
		case mail.KindLockout:
			data = mail.Lockout{Common: c}
		case mail.KindNewDeviceSignIn:
			data = mail.NewDeviceSignIn{Common: c}
		}
		m, err := mail.Render(kind, data)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		// The sender is named by the issuer's host; no empty lines of
		// request details, no link but the issuer's.
		if !strings.Contains(m.Subject, "id.example.org") || strings.Contains(m.Text, "When:") || strings.Contains(m.HTML, "<td>When") {
			t.Errorf("%s: subject %q\n%s", kind, m.Subject, m.Text)
		}
		if links := smtptest.Links(m.Text); len(links) != 1 || links[0] != "https://id.example.org" {
			t.Errorf("%s: links %q", kind, links)
		}
		if !strings.Contains(m.Text, "Hello,") {
			t.Errorf("%s: greeting without a handle:\n%s", kind, m.Text)
		}
		if strings.Contains(m.Text, "\n\n\n") {
			t.Errorf("%s: runs of blank lines:\n%q", kind, m.Text)
		}
	}
}

func TestRenderRefuses(t *testing.T) {
	ok := mail.Common{To: "ada@example.net", Cloud: "Example Commons"}
	tests := []struct {
		name string
		kind mail.Kind
		data any
		want string
	}{
		{"unknown kind", "welcome", mail.VerifyEmail{}, "no template"},
		{"wrong data type", mail.KindVerifyEmail, mail.PasswordReset{Common: ok, Link: "https://x.example", ValidFor: time.Hour}, "want mail.VerifyEmail"},
		{"nil pointer", mail.KindVerifyEmail, (*mail.VerifyEmail)(nil), "nil"},
		{"no link", mail.KindVerifyEmail, mail.VerifyEmail{Common: ok, ValidFor: time.Hour}, "Link is not set"},
		{"no validity", mail.KindPasswordReset, mail.PasswordReset{Common: ok, Link: "https://x.example"}, "ValidFor"},
		{"javascript link", mail.KindVerifyEmail, mail.VerifyEmail{Common: ok, Link: "javascript:alert(1)", ValidFor: time.Hour}, "not an absolute http(s) URL"},
		{"relative link", mail.KindVerifyEmail, mail.VerifyEmail{Common: ok, Link: "/verify?t=1", ValidFor: time.Hour}, "not an absolute"},
		{"link with a line break", mail.KindPasswordChanged, mail.PasswordChanged{Common: ok, Link: "https://x.example/\nClick https://evil.example"}, "space or control"},
		{"link with user info", mail.KindPasswordChanged, mail.PasswordChanged{Common: ok, Link: "https://id.example.org@evil.example/"}, "not an absolute"},
		{"bad issuer", mail.KindPasswordChanged, mail.PasswordChanged{Common: mail.Common{To: "ada@example.net", Issuer: "ftp://x"}}, "Issuer"},
		{"no cloud", mail.KindPasswordChanged, mail.PasswordChanged{Common: mail.Common{To: "ada@example.net"}}, "neither field Cloud nor Issuer"},
		{"no recipient", mail.KindPasswordChanged, mail.PasswordChanged{Common: mail.Common{Cloud: "X"}}, "recipient"},
		{"recipient with a line break", mail.KindPasswordChanged, mail.PasswordChanged{Common: mail.Common{Cloud: "X", To: "a@b.example\nBcc: c@d.example"}}, "recipient"},
		{"negative failures", mail.KindLockout, mail.Lockout{Common: ok, Failures: -1}, "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mail.Render(tc.kind, tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Render = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestRenderSubjectOneLine: a cloud name with line breaks cannot add a
// header.
func TestRenderSubjectOneLine(t *testing.T) {
	m, err := mail.Render(mail.KindVerifyEmail, mail.VerifyEmail{
		Common:   mail.Common{To: "ada@example.net", Cloud: "Example\r\nBcc: victim@example.com\u2028" + strings.Repeat("x", 300)},
		Link:     "https://id.example.org/v?t=1",
		ValidFor: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(m.Subject, "\r\n\u2028") || len(m.Subject) > mail.MaxSubjectBytes {
		t.Errorf("subject %q (%d bytes)", m.Subject, len(m.Subject))
	}
	if !strings.HasPrefix(m.Subject, "Confirm your email address for Example Bcc: victim@example.com x") {
		t.Errorf("subject %q", m.Subject)
	}
	// The caller's value is not changed by the cleaning.
	d := &mail.PasswordReset{Common: mail.Common{To: "ada@example.net", Cloud: "A\nB"}, Link: "https://x.example/r", ValidFor: time.Hour}
	if _, err := mail.Render(mail.KindPasswordReset, d); err != nil {
		t.Fatal(err)
	}
	if d.Cloud != "A\nB" {
		t.Errorf("Render changed the caller's data: %q", d.Cloud)
	}
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestRenderGolden keeps the rendered messages in testdata/ (refresh with
// go test ./mail -run TestRenderGolden -update), so that a change to a
// template shows in review.
func TestRenderGolden(t *testing.T) {
	c := mail.Common{To: "ada@example.net", Cloud: "Example Commons", Issuer: "https://id.example.org", Handle: "ada"}
	req := mail.Request{At: at, IP: "203.0.113.7", Device: "Firefox 140 on Linux"}
	data := map[mail.Kind]any{
		mail.KindVerifyEmail:       mail.VerifyEmail{Common: c, Link: "https://id.example.org/account/email/verify?token=TOKEN", ValidFor: 24 * time.Hour},
		mail.KindPasswordReset:     mail.PasswordReset{Common: c, Link: "https://id.example.org/login/reset?token=TOKEN", ValidFor: 30 * time.Minute, Request: req},
		mail.KindPasswordChanged:   mail.PasswordChanged{Common: c, Request: req, Link: "https://id.example.org/login/forgot"},
		mail.KindLockout:           mail.Lockout{Common: c, Failures: 12, Until: at.Add(15 * time.Minute), Request: req, Link: "https://id.example.org/login/forgot"},
		mail.KindNewDeviceSignIn:   mail.NewDeviceSignIn{Common: c, Request: req, Link: "https://id.example.org/account/activity"},
		mail.KindRecoveryKitSignIn: mail.RecoveryKitSignIn{Common: c, Request: req, Link: "https://id.example.org/account/security"},
	}
	for _, kind := range mail.Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			m, err := mail.Render(kind, data[kind])
			if err != nil {
				t.Fatal(err)
			}
			for ext, got := range map[string]string{".txt": "Subject: " + m.Subject + "\n\n" + m.Text, ".html": m.HTML} {
				path := filepath.Join("testdata", string(kind)+ext)
				if *update {
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if d := cmp.Diff(string(want), got); d != "" {
					t.Errorf("%s differs (-want +got; refresh with -update):\n%s", path, d)
				}
			}
		})
	}
}
