package mail_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/onecommons/commonsid/internal/metrics"
	"github.com/onecommons/commonsid/mail"
)

// counted is the value of the family name with label kind=kind.
func counted(t *testing.T, name, kind string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "kind" && lp.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestMetered: a message written to the outbox counts as sent by its kind;
// one that cannot be written counts as failed; an unknown kind is "other".
func TestMetered(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	s, err := mail.Open("", filepath.Dir(dir), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m := mail.Metered(s)
	msg, err := mail.Render(mail.KindPasswordChanged, mail.PasswordChanged{Common: mail.Common{To: "alice@example.org", Issuer: "https://id.example.org", Handle: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	sent0, failed0 := counted(t, "commonsid_mail_sent_total", "password-changed"), counted(t, "commonsid_mail_failed_total", "password-changed")
	if err := m.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if got := counted(t, "commonsid_mail_sent_total", "password-changed"); got != sent0+1 {
		t.Fatalf("sent: %v → %v", sent0, got)
	}
	// The outbox folder replaced by a file: the next message fails.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Send(context.Background(), msg); err == nil {
		t.Fatal("a message went into a folder that is a file")
	}
	if got := counted(t, "commonsid_mail_failed_total", "password-changed"); got != failed0+1 {
		t.Fatalf("failed: %v → %v", failed0, got)
	}
	other := msg
	other.Kind = ""
	other0 := counted(t, "commonsid_mail_failed_total", "other")
	m.Send(context.Background(), other)
	if got := counted(t, "commonsid_mail_failed_total", "other"); got != other0+1 {
		t.Fatalf("a message without a kind: %v → %v", other0, got)
	}
}
