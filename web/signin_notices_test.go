package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/smtptest"
	"github.com/onecommons/commonsid/internal/testdb"
	"github.com/onecommons/commonsid/mail"
)

// withMail gives the replica a sender to a real SMTP server in the test.
func withMail(t *testing.T, rep *replica) *smtptest.Server {
	t.Helper()
	srv := smtptest.Start(t, smtptest.Options{})
	s, err := mail.Open("smtp://"+srv.Addr+"?from=id@cloud.example&ca_file="+url.QueryEscape(srv.CAFile), "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rep.h.Mail = s
	return srv
}

// settled waits until every notice the handler started is sent and
// returns the messages to addr.
func settled(h *Handler, srv *smtptest.Server, addr string) []smtptest.Message {
	h.WaitNotices()
	var out []smtptest.Message
	for _, m := range srv.Messages() {
		for _, to := range m.To {
			if to == addr {
				out = append(out, m)
			}
		}
	}
	return out
}

// TestNewDeviceMail: a sign-in from a browser that does not know the
// account mails the new-device notice to the verified address, once; the
// same browser signing in again mails nothing; an unverified address gets
// nothing; a flood of new devices is bounded per account.
func TestNewDeviceMail(t *testing.T) {
	t.Parallel()
	db, _ := testdb.SQLite(t)
	c := &clock{t: time.Now()}
	rep := newReplicas(t, db, c, 1)[0]
	srv := withMail(t, rep)
	ctx := context.Background()
	for _, p := range []identity.CreateParams{
		{Handle: "alice", Email: "alice@example.net", Password: "correct horse battery"},
		{Handle: "bob", Email: "bob@example.net", Password: "correct horse battery"},
	} {
		a, err := rep.h.Accounts.Create(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if p.Handle == "alice" {
			if ok, err := rep.h.Accounts.MarkEmailVerified(ctx, a.DID, p.Email); err != nil || !ok {
				t.Fatalf("verify: %v %v", ok, err)
			}
		}
	}
	login := func(user string, cookies ...*http.Cookie) *http.Cookie {
		rec := rep.do("/login", "192.0.2.10", url.Values{"username": {user}, "password": {"correct horse battery"}}, cookies...)
		if rec.Code != http.StatusSeeOther || !hasSession(rec) {
			t.Fatalf("sign-in of %s: %d", user, rec.Code)
		}
		return cookieOf(rec, DeviceCookieName(true))
	}
	device := login("alice")
	msgs := settled(rep.h, srv, "alice@example.net")
	if len(msgs) != 1 {
		t.Fatalf("%d mails after a sign-in from a new device, want 1", len(msgs))
	}
	p := msgs[0].Parsed(t)
	if !strings.Contains(p.Subject, "New sign-in") || !strings.Contains(p.Text, "192.0.2.10") || !strings.Contains(p.Text, "https://cloud.example/account/activity") {
		t.Fatalf("new-device mail %q:\n%s", p.Subject, p.Text)
	}
	login("alice", device)
	login("alice", device)
	if msgs := settled(rep.h, srv, "alice@example.net"); len(msgs) != 1 {
		t.Fatalf("%d mails after sign-ins from the known device, want still 1", len(msgs))
	}
	login("bob")
	if msgs := settled(rep.h, srv, "bob@example.net"); len(msgs) != 0 {
		t.Fatalf("%d mails to an unverified address, want 0", len(msgs))
	}
	// Ten new devices in a row: the free three, then a wait between two.
	for range 10 {
		login("alice")
	}
	if msgs := settled(rep.h, srv, "alice@example.net"); len(msgs) != newDeviceMailBudget.Free {
		t.Fatalf("%d new-device mails after a flood, want %d", len(msgs), newDeviceMailBudget.Free)
	}
}
