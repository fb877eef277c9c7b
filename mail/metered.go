package mail

import (
	"context"

	"github.com/onecommons/commonsid/internal/metrics"
)

// Metered wraps s so that every message counts in
// commonsid_mail_sent_total or commonsid_mail_failed_total by its kind (a
// template kind, or "other").
func Metered(s Sender) Sender { return metered{s} }

type metered struct{ Sender }

func (m metered) Send(ctx context.Context, msg Message) error {
	kind := "other"
	for _, k := range Kinds() {
		if msg.Kind == k {
			kind = string(k)
		}
	}
	err := m.Sender.Send(ctx, msg)
	if err != nil {
		metrics.MailFailed(kind)
	} else {
		metrics.MailSent(kind)
	}
	return err
}
