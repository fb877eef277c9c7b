package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"log/slog"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/mail"
	"github.com/onecommons/commonsid/web"
)

// openMail opens the cloud's mail sender: SMTP when --smtp is set, else the
// outbox in the data folder. Without either (PostgreSQL and no data
// folder) the cloud sends no mail.
func openMail(cfg *Config, log *slog.Logger) (mail.Sender, error) {
	if cfg.SMTP == "" && cfg.DataDir == "" {
		log.Info("mail is off: no --smtp and no data folder for the outbox")
		return nil, nil
	}
	s, err := mail.Open(cfg.SMTP, cfg.DataDir, log)
	if err != nil || s == nil {
		return s, err
	}
	return mail.Metered(s), nil // commonsid_mail_sent_total / _failed_total
}

// deviceKey derives the key of the known-device cookie from the cloud's
// shared secret, so that every replica knows the same devices.
func deviceKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("commonsid/device-cookie-key"))
	return m.Sum(nil)
}

// lockoutMailer tells the person by mail when wrong passwords start slowing
// sign-ins to their account; only to a verified address (an unverified one
// may be anybody's). nil without a sender.
func lockoutMailer(s mail.Sender, issuer string, log *slog.Logger) func(context.Context, *identity.Account, web.LockoutNotice) {
	if s == nil {
		return nil
	}
	return func(ctx context.Context, a *identity.Account, n web.LockoutNotice) {
		if a.Email == "" || !a.EmailVerified {
			return
		}
		msg, err := mail.Render(mail.KindLockout, mail.Lockout{
			Common:   mail.Common{To: a.Email, Issuer: issuer, Handle: a.Handle},
			Failures: n.Failures, Until: n.Until,
			Request: mail.Request{At: n.At, IP: n.IP, Device: n.UserAgent},
		})
		if err != nil {
			log.ErrorContext(ctx, "lockout notice", "err", err)
			return
		}
		if err := s.Send(ctx, msg); err != nil {
			log.WarnContext(ctx, "lockout notice not sent", "err", err)
		}
	}
}
