package mail_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/internal/smtptest"
	"github.com/onecommons/commonsid/mail"
)

func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "mail")
	o, err := mail.NewOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	o.Log = slog.New(slog.NewTextHandler(&logs, nil))
	o.Now = func() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC) }
	o.From = "Example Commons <id@example.org>"

	const link = "https://id.example.org/account/verify?token=abc=def_ghi-jkl&x=1"
	m, err := mail.Render(mail.KindVerifyEmail, mail.VerifyEmail{
		Common:   mail.Common{To: "ada@example.net", Cloud: "Example Commons", Handle: "ada"},
		Link:     link,
		ValidFor: 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := o.Send(context.Background(), m); err != nil {
		t.Fatalf("second Send: %v", err)
	}

	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("outbox folder mode = %o, want 700", got)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("outbox holds %d files, want 2 (same second, distinct names)", len(files))
	}
	for _, f := range files {
		if !strings.HasPrefix(filepath.Base(f), "20260304T050607Z-verify-email-") {
			t.Errorf("file name %s does not start with the time and kind", filepath.Base(f))
		}
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s mode = %o, want 600", f, got)
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// The link is in the file as it is (no quoted-printable), so that
		// a person can copy it or a script can grep it.
		if !bytes.Contains(raw, []byte(link)) {
			t.Errorf("file %s does not hold the link as is:\n%s", f, raw)
		}
		p, err := smtptest.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if p.Subject != m.Subject || p.Header.Get("To") != "<ada@example.net>" || p.Header.Get("From") != `"Example Commons" <id@example.org>` {
			t.Errorf("headers: subject %q, to %q, from %q", p.Subject, p.Header.Get("To"), p.Header.Get("From"))
		}
		if !strings.Contains(p.Text, link) || !strings.Contains(p.HTML, `href="https://id.example.org/account/verify?token=abc=def_ghi-jkl&amp;x=1"`) {
			t.Errorf("parts do not hold the link:\ntext: %s\nhtml: %s", p.Text, p.HTML)
		}
	}

	// One info line per message, naming the file; neither the link nor
	// the full address.
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2:\n%s", len(lines), logs.String())
	}
	for _, l := range lines {
		if !strings.Contains(l, "level=INFO") || !strings.Contains(l, "file="+filepath.Join(dir, "20260304T050607Z-verify-email-")) {
			t.Errorf("log line %q does not name the file at info", l)
		}
		if !strings.Contains(l, "to=a…@example.net") || strings.Contains(l, "ada@") {
			t.Errorf("log line %q does not mask the address", l)
		}
		if strings.Contains(l, "token=") || strings.Contains(l, "abc=def") {
			t.Errorf("log line %q holds the link", l)
		}
	}
}

func TestOutboxTightensFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := mail.NewOutbox(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("outbox folder mode = %o, want 700", got)
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := mail.NewOutbox(file); err == nil {
		t.Error("NewOutbox on a file: no error")
	}
}

func TestOutboxRefusesInvalid(t *testing.T) {
	dir := t.TempDir()
	o, err := mail.NewOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	o.Log = slog.New(slog.DiscardHandler)
	m := testMessage()
	m.Subject = "Hi\r\nBcc: victim@example.com"
	if err := o.Send(context.Background(), m); !errors.Is(err, mail.ErrInvalidMessage) {
		t.Fatalf("Send = %v, want ErrInvalidMessage", err)
	}
	m = testMessage()
	m.Kind = "../../etc/passwd"
	if err := o.Send(context.Background(), m); !errors.Is(err, mail.ErrInvalidMessage) {
		// A kind that is not a name is refused, and never part of a path.
		t.Fatalf("Send with a path as kind = %v, want ErrInvalidMessage", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("outbox holds %d files after refused messages", len(entries))
	}
}

func TestOpen(t *testing.T) {
	data := t.TempDir()
	s, err := mail.Open("", data, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	o, ok := s.(*mail.Outbox)
	if !ok || o.Dir() != filepath.Join(data, "mail") {
		t.Fatalf("Open without SMTP = %T %v, want the outbox in %s/mail", s, s, data)
	}
	s, err = mail.Open("smtps://u:pw@mx.example.org?from=id@example.org", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sm, ok := s.(*mail.SMTP); !ok || sm.Config().Host != "mx.example.org" {
		t.Fatalf("Open with SMTP = %T", s)
	}
	if _, err := mail.Open("smtp://mx.example.org?starttls=off&from=id@example.org", data, nil); err == nil {
		t.Error("Open accepted starttls=off for a remote host")
	}
}
