package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/mail"
	"github.com/onecommons/commonsid/web"
)

// userResetPassword makes a password-reset link for an account homed here
// (30 minutes, single use), prints it, and with --mail also mails it to
// the account's address.
func userResetPassword(ctx context.Context, c *cli, args []string) error {
	var sendMail bool
	var smtpURL string
	cl, fs, err := openForCommand(ctx, c, "user reset-password", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&sendMail, "mail", false, "also mail the link to the account's email address")
		fs.StringVar(&smtpURL, "smtp", c.env("COMMONSID_SMTP"), "mail server for --mail, as serve's --smtp (env COMMONSID_SMTP); empty: the data folder's outbox")
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	if fs.NArg() != 1 {
		return usagef("usage: commonsid user reset-password [--mail] <handle|DID>")
	}
	a, err := homedHere(ctx, cl, fs.Arg(0))
	if err != nil {
		return err
	}
	var sender mail.Sender
	if sendMail {
		if a.Email == "" {
			return fmt.Errorf("%s has no email address: give the person the printed link instead (run without --mail)", a.Handle)
		}
		mcfg := *cl.cfg
		mcfg.SMTP = smtpURL
		if sender, err = openMail(&mcfg, slog.New(slog.NewTextHandler(c.stderr, nil))); err != nil {
			return err
		}
		if sender == nil {
			return fmt.Errorf("mail is off (no --smtp and no data folder): run without --mail and give the person the link")
		}
	}
	token, err := identity.IssueAccountToken(ctx, cl.db, a.DID, identity.PurposeResetPassword, "", time.Now(), identity.ResetPasswordTTL)
	if err != nil {
		return err
	}
	link := web.AccountLink(cl.cfg.Issuer, web.ResetLinkPath, token)
	if sender != nil {
		m, err := mail.Render(mail.KindPasswordReset, mail.PasswordReset{
			Common: mail.Common{To: a.Email, Issuer: cl.cfg.Issuer, Handle: a.Handle},
			Link:   link, ValidFor: identity.ResetPasswordTTL})
		if err != nil {
			return err
		}
		if err := sender.Send(ctx, m); err != nil {
			return fmt.Errorf("mail the link: %w", err)
		}
		fmt.Fprintf(c.stderr, "mailed the link to the address of %s\n", a.Handle)
	}
	fmt.Fprintln(c.stdout, link)
	fmt.Fprintf(c.stderr, "valid once, for %s; it replaces earlier reset links of %s\n", identity.ResetPasswordTTL, a.Handle)
	return nil
}
