package mail_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/internal/smtptest"
	"github.com/onecommons/commonsid/mail"
)

const (
	testUser = "mailer@example.org"
	testPass = "s3cret-Pa55word"
)

func newSender(t *testing.T, raw string) *mail.SMTP {
	t.Helper()
	cfg, err := mail.ParseURL(raw)
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", raw, err)
	}
	s, err := mail.NewSMTP(cfg)
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	s.Log = slog.New(slog.DiscardHandler)
	s.Now = func() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC) }
	return s
}

func smtpURL(scheme, userinfo, addr string, q url.Values) string {
	u := url.URL{Scheme: scheme, Host: addr, RawQuery: q.Encode()}
	if userinfo != "" {
		user, pass, _ := strings.Cut(userinfo, ":")
		u.User = url.UserPassword(user, pass)
	}
	return u.String()
}

func testMessage() mail.Message {
	return mail.Message{
		To:      []string{"Ada Lovelace <ada@example.net>"},
		Subject: "Confirm your address — Example Commons",
		Text:    "Open https://id.example.org/verify?t=abc=def&x=1 to confirm.\n",
		HTML:    `<p>Open <a href="https://id.example.org/verify?t=abc=def&amp;x=1">this link</a>.</p>`,
		Kind:    mail.KindVerifyEmail,
	}
}

func checkDelivered(t *testing.T, srv *smtptest.Server, wantUser string, wantTLS bool) {
	t.Helper()
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server received %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.From != "id@example.org" {
		t.Errorf("MAIL FROM = %q, want id@example.org", got.From)
	}
	if len(got.To) != 1 || got.To[0] != "ada@example.net" {
		t.Errorf("RCPT TO = %q, want [ada@example.net]", got.To)
	}
	if got.User != wantUser {
		t.Errorf("authenticated user = %q, want %q", got.User, wantUser)
	}
	if got.TLS != wantTLS {
		t.Errorf("TLS = %v, want %v", got.TLS, wantTLS)
	}
	p := got.Parsed(t)
	want := testMessage()
	if p.Subject != want.Subject {
		t.Errorf("Subject = %q, want %q", p.Subject, want.Subject)
	}
	if strings.TrimRight(p.Text, "\r\n") != strings.TrimRight(want.Text, "\n") {
		t.Errorf("text part = %q, want %q", p.Text, want.Text)
	}
	if strings.TrimRight(p.HTML, "\r\n") != want.HTML {
		t.Errorf("HTML part = %q, want %q", p.HTML, want.HTML)
	}
	if links := smtptest.Links(p.Text); len(links) != 1 || links[0] != "https://id.example.org/verify?t=abc=def&x=1" {
		t.Errorf("links in text = %q", links)
	}
	for h, want := range map[string]string{
		"From":           "<id@example.org>",
		"To":             `"Ada Lovelace" <ada@example.net>`,
		"Auto-Submitted": "auto-generated",
		"Date":           "Wed, 04 Mar 2026 05:06:07 +0000",
	} {
		if got := p.Header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	if id := p.Header.Get("Message-Id"); !strings.HasSuffix(id, "@example.org>") || len(id) < 40 {
		t.Errorf("Message-ID = %q, want <random@example.org>", id)
	}
}

func TestSMTPDelivers(t *testing.T) {
	users := map[string]string{testUser: testPass}
	tests := []struct {
		name     string
		opts     smtptest.Options
		scheme   string
		tlsAddr  bool
		userinfo string
		q        url.Values
		wantUser string
		wantTLS  bool
	}{
		{name: "STARTTLS with AUTH (plain offered first)", opts: smtptest.Options{Users: users}, scheme: "smtp",
			userinfo: testUser + ":" + testPass, wantUser: testUser, wantTLS: true},
		{name: "STARTTLS with AUTH LOGIN", opts: smtptest.Options{Users: users}, scheme: "smtp",
			userinfo: testUser + ":" + testPass, q: url.Values{"auth": {"login"}}, wantUser: testUser, wantTLS: true},
		{name: "STARTTLS with AUTH PLAIN", opts: smtptest.Options{Users: users}, scheme: "smtp",
			userinfo: testUser + ":" + testPass, q: url.Values{"auth": {"plain"}}, wantUser: testUser, wantTLS: true},
		{name: "STARTTLS without AUTH", scheme: "smtp", wantTLS: true},
		{name: "smtps with AUTH", opts: smtptest.Options{Users: users}, scheme: "smtps", tlsAddr: true,
			userinfo: testUser + ":" + testPass, wantUser: testUser, wantTLS: true},
		{name: "no TLS on loopback", opts: smtptest.Options{Users: users, AllowInsecureAuth: true, NoSTARTTLS: true}, scheme: "smtp",
			userinfo: testUser + ":" + testPass, q: url.Values{"starttls": {"off"}}, wantUser: testUser, wantTLS: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := smtptest.Start(t, tc.opts)
			q := url.Values{"from": {"id@example.org"}}
			if tc.q.Get("starttls") != "off" {
				q.Set("ca_file", srv.CAFile)
			}
			for k, v := range tc.q {
				q[k] = v
			}
			addr := srv.Addr
			if tc.tlsAddr {
				addr = srv.TLSAddr
			}
			s := newSender(t, smtpURL(tc.scheme, tc.userinfo, addr, q))
			if err := s.Send(context.Background(), testMessage()); err != nil {
				t.Fatalf("Send: %v", err)
			}
			checkDelivered(t, srv, tc.wantUser, tc.wantTLS)
		})
	}
}

// TestSMTPConcurrent sends from several goroutines through one sender.
func TestSMTPConcurrent(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Users: map[string]string{testUser: testPass}})
	s := newSender(t, smtpURL("smtp", testUser+":"+testPass, srv.Addr, url.Values{"from": {"id@example.org"}, "ca_file": {srv.CAFile}}))
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			m := testMessage()
			m.To = []string{fmt.Sprintf("p%d@example.net", i)}
			errs <- s.Send(context.Background(), m)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Send: %v", err)
		}
	}
	if got := len(srv.Messages()); got != n {
		t.Errorf("server received %d messages, want %d", got, n)
	}
	for i := range n {
		srv.Wait(t, fmt.Sprintf("P%d@example.net", i), 0, time.Second)
	}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentAddr accepts connections and never says a word.
func silentAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return l.Addr().String()
}

func TestSMTPFailures(t *testing.T) {
	users := map[string]string{testUser: testPass}
	tests := []struct {
		name      string
		opts      smtptest.Options
		url       func(srv *smtptest.Server) string
		msg       func() mail.Message
		want      error
		temporary bool
		wantInErr string
	}{
		{
			name: "wrong password",
			opts: smtptest.Options{Users: users},
			url: func(srv *smtptest.Server) string {
				return smtpURL("smtp", testUser+":wrong-Passw0rd", srv.Addr, url.Values{"from": {"id@example.org"}, "ca_file": {srv.CAFile}})
			},
			want: mail.ErrAuth, wantInErr: "535",
		},
		{
			name: "server down",
			url: func(*smtptest.Server) string {
				return smtpURL("smtp", testUser+":"+testPass, deadAddr(t), url.Values{"from": {"id@example.org"}})
			},
			want: mail.ErrUnreachable, temporary: true, wantInErr: "could not connect",
		},
		{
			name: "server silent past the timeout",
			url: func(*smtptest.Server) string {
				return smtpURL("smtp", "", silentAddr(t), url.Values{"from": {"id@example.org"}, "timeout": {"1s"}})
			},
			want: mail.ErrUnreachable, temporary: true, wantInErr: "timed out",
		},
		{
			name: "certificate not trusted",
			opts: smtptest.Options{Users: users},
			url: func(srv *smtptest.Server) string {
				return smtpURL("smtp", testUser+":"+testPass, srv.Addr, url.Values{"from": {"id@example.org"}})
			},
			want: mail.ErrTLS, wantInErr: "trusted authority",
		},
		{
			name: "smtps certificate not trusted",
			url: func(srv *smtptest.Server) string {
				return smtpURL("smtps", "", srv.TLSAddr, url.Values{"from": {"id@example.org"}})
			},
			want: mail.ErrTLS, wantInErr: "trusted authority",
		},
		{
			name: "smtps to a STARTTLS port",
			url: func(srv *smtptest.Server) string {
				return smtpURL("smtps", "", srv.Addr, url.Values{"from": {"id@example.org"}, "ca_file": {srv.CAFile}, "timeout": {"2s"}})
			},
			want: mail.ErrTLS,
		},
		{
			name: "server without STARTTLS",
			opts: smtptest.Options{Users: users, NoSTARTTLS: true, AllowInsecureAuth: true},
			url: func(srv *smtptest.Server) string {
				return smtpURL("smtp", testUser+":"+testPass, srv.Addr, url.Values{"from": {"id@example.org"}, "ca_file": {srv.CAFile}})
			},
			want: mail.ErrTLS, wantInErr: "STARTTLS",
		},
		{
			name: "recipient refused",
			opts: smtptest.Options{RejectRecipient: func(a string) bool { return a == "ada@example.net" }},
			url: func(srv *smtptest.Server) string {
				return smtpURL("smtp", "", srv.Addr, url.Values{"from": {"id@example.org"}, "ca_file": {srv.CAFile}})
			},
			want: mail.ErrRecipientRefused, wantInErr: "550 5.1.1",
		},
		{
			name: "sender refused",
			opts: smtptest.Options{RejectSender: func(string) bool { return true }},
			url: func(srv *smtptest.Server) string {
				return smtpURL("smtp", "", srv.Addr, url.Values{"from": {"id@example.org"}, "ca_file": {srv.CAFile}})
			},
			want: mail.ErrMessageRefused, wantInErr: "550 5.7.1",
		},
		{
			name: "AUTH required but no user configured",
			opts: smtptest.Options{Users: users},
			url: func(srv *smtptest.Server) string {
				return smtpURL("smtp", "", srv.Addr, url.Values{"from": {"id@example.org"}, "ca_file": {srv.CAFile}})
			},
			want: mail.ErrAuth, wantInErr: "wants authentication",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := smtptest.Start(t, tc.opts)
			s := newSender(t, tc.url(srv))
			m := testMessage()
			if tc.msg != nil {
				m = tc.msg()
			}
			err := s.Send(context.Background(), m)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Send error = %v, want %v", err, tc.want)
			}
			t.Logf("error: %v", err)
			for _, other := range []error{mail.ErrAuth, mail.ErrUnreachable, mail.ErrTLS, mail.ErrRecipientRefused, mail.ErrMessageRefused, mail.ErrInvalidMessage} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("error %v also matches %v", err, other)
				}
			}
			if got := mail.Temporary(err); got != tc.temporary {
				t.Errorf("Temporary(%v) = %v, want %v", err, got, tc.temporary)
			}
			if !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("error %q does not say %q", err, tc.wantInErr)
			}
			for _, secret := range []string{testPass, "wrong-Passw0rd", "ada@example.net", "Lovelace"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q repeats %q", err, secret)
				}
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("server received %d messages, want 0", n)
			}
		})
	}
}

// TestSMTPNoPasswordWithoutTLS: when STARTTLS is required and the server
// does not offer it, the password is never sent.
func TestSMTPNoPasswordWithoutTLS(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Users: map[string]string{testUser: "other"}, NoSTARTTLS: true, AllowInsecureAuth: true})
	s := newSender(t, smtpURL("smtp", testUser+":"+testPass, srv.Addr, url.Values{"from": {"id@example.org"}}))
	if err := s.Send(context.Background(), testMessage()); !errors.Is(err, mail.ErrTLS) {
		t.Fatalf("Send = %v, want ErrTLS", err)
	}
	if n := srv.AuthFailures(); n != 0 {
		t.Errorf("server saw %d AUTH attempts, want 0", n)
	}
}

func TestSMTPRefusesInvalidMessages(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	s := newSender(t, smtpURL("smtp", "", srv.Addr, url.Values{"from": {"id@example.org"}, "ca_file": {srv.CAFile}}))
	tests := []struct {
		name string
		edit func(*mail.Message)
	}{
		{"CRLF in subject", func(m *mail.Message) { m.Subject = "Hello\r\nBcc: victim@example.com" }},
		{"LF in subject", func(m *mail.Message) { m.Subject = "Hello\nBcc: victim@example.com" }},
		{"CR in subject", func(m *mail.Message) { m.Subject = "Hello\rBcc: victim@example.com" }},
		{"CRLF in recipient", func(m *mail.Message) { m.To = []string{"ada@example.net\r\nBcc: victim@example.com"} }},
		{"LF in recipient name", func(m *mail.Message) { m.To = []string{"\"Ada\nBcc: v@example.com\" <ada@example.net>"} }},
		{"two addresses in one recipient", func(m *mail.Message) { m.To = []string{"ada@example.net, victim@example.com"} }},
		{"no recipient", func(m *mail.Message) { m.To = nil }},
		{"not an address", func(m *mail.Message) { m.To = []string{"ada"} }},
		{"too many recipients", func(m *mail.Message) {
			m.To = nil
			for i := range mail.MaxRecipients + 1 {
				m.To = append(m.To, fmt.Sprintf("p%d@example.net", i))
			}
		}},
		{"address too long", func(m *mail.Message) { m.To = []string{strings.Repeat("a", 250) + "@example.net"} }},
		{"subject too long", func(m *mail.Message) { m.Subject = strings.Repeat("s", mail.MaxSubjectBytes+1) }},
		{"empty subject", func(m *mail.Message) { m.Subject = "" }},
		{"empty text", func(m *mail.Message) { m.Text = " \n" }},
		{"body too big", func(m *mail.Message) { m.Text = strings.Repeat("x", mail.MaxBodyBytes) }},
		{"NUL in body", func(m *mail.Message) { m.Text = "a\x00b" }},
		{"invalid UTF-8", func(m *mail.Message) { m.Subject = "\xff\xfe" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := testMessage()
			tc.edit(&m)
			err := s.Send(context.Background(), m)
			if !errors.Is(err, mail.ErrInvalidMessage) {
				t.Fatalf("Send = %v, want ErrInvalidMessage", err)
			}
			if strings.Contains(err.Error(), "victim") {
				t.Errorf("error %q repeats the input", err)
			}
		})
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server received %d messages, want 0", n)
	}
	// The bounds are not off by one: the largest valid message goes.
	m := testMessage()
	m.To = nil
	for i := range mail.MaxRecipients {
		m.To = append(m.To, fmt.Sprintf("p%d@example.net", i))
	}
	m.Subject = strings.Repeat("s", mail.MaxSubjectBytes)
	m.Text = strings.Repeat("x", mail.MaxBodyBytes-len(m.HTML))
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send at the bounds: %v", err)
	}
}

func TestSMTPContextCanceled(t *testing.T) {
	s := newSender(t, smtpURL("smtp", "", silentAddr(t), url.Values{"from": {"id@example.org"}, "timeout": {"1m"}}))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Send(ctx, testMessage())
	if !errors.Is(err, mail.ErrUnreachable) {
		t.Fatalf("Send = %v, want ErrUnreachable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send took %s after its context ended", d)
	}
}

func TestNewSMTPCAFile(t *testing.T) {
	for name, raw := range map[string]string{
		"missing": "smtp://mx.example.org?from=id@example.org&ca_file=/nonexistent/ca.pem",
		"not PEM": "smtp://mx.example.org?from=id@example.org&ca_file=smtp_test.go",
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := mail.ParseURL(raw)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := mail.NewSMTP(cfg); err == nil || !strings.Contains(err.Error(), "ca_file") {
				t.Errorf("NewSMTP = %v, want a ca_file error", err)
			}
		})
	}
}
