package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/onecommons/commonsid/access"
	"github.com/onecommons/commonsid/admin"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

// Contributors' access (package access): the cloud's levels
// (COMMONSID_ACCESS_LEVELS), the secrets of the payment services whose
// notices it accepts (COMMONSID_CONTRIBUTION_SECRETS, serve only), the
// commands `user access set|show` and the admin API's
// /admin/v1/accounts/{id}/access.

func (c *Config) validateLevels() []error {
	if _, err := access.ParseLevels(c.AccessLevels); err != nil {
		return []error{fmt.Errorf("COMMONSID_ACCESS_LEVELS: %w", err)}
	}
	return nil
}

func (c *Config) validateSecrets() []error {
	if _, err := access.ParseSecrets(c.ContributionSecrets); err != nil {
		return []error{fmt.Errorf("COMMONSID_CONTRIBUTION_SECRETS: %w", err)}
	}
	return nil
}

// access is the cloud's contribution-level service.
func (cl *cloud) access() *access.Service {
	levels, _ := access.ParseLevels(cl.cfg.AccessLevels) // checked by Validate
	return &access.Service{Store: cl.db, Accounts: cl.accounts, Issuer: cl.cfg.Issuer, Levels: levels, Now: time.Now}
}

// noticeHandler serves the payment services' notices.
func (cl *cloud) noticeHandler() *access.NoticeHandler {
	secrets, _ := access.ParseSecrets(cl.cfg.ContributionSecrets) // checked by Validate
	return &access.NoticeHandler{Service: cl.access(), Secrets: secrets, Log: cl.log}
}

// accessJSON is what `user access show --json` and the admin API answer.
type accessJSON struct {
	Account string `json:"account"`
	Handle  string `json:"handle"`
	// Level is the level in force now, ExpiresAt its end.
	Level     string `json:"level"`
	ExpiresAt string `json:"expires_at,omitempty"`
	// Granted is the level of the grant held, which may have expired.
	Granted string `json:"granted,omitempty"`
	Expired bool   `json:"expired,omitempty"`
	Source  string `json:"source,omitempty"`
	SetAt   string `json:"set_at,omitempty"`
	// Replica tells that the grant is the account's home's.
	Replica bool `json:"replica,omitempty"`
	// ReleasedTo are the services whose consent releases the claim.
	ReleasedTo []string `json:"released_to"`
}

func (cl *cloud) accessView(ctx context.Context, a *identity.Account) (*accessJSON, error) {
	svc := cl.access()
	g, err := svc.Get(ctx, a.DID)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	v := access.Value(g, now)
	out := &accessJSON{Account: a.DID, Handle: a.Handle, Level: v.Level, ExpiresAt: v.ExpiresAt, ReleasedTo: []string{},
		Replica: a.HomeIssuer != cl.cfg.Issuer && a.Status != identity.StatusMoved}
	if g != nil {
		out.Granted, out.Expired, out.Source, out.SetAt = g.Level, g.Expired(now), g.Source, g.SetAt.Format(time.RFC3339)
		if g.Expired(now) {
			out.ExpiresAt = g.ExpiresAt.UTC().Format(time.RFC3339)
		}
	}
	consents, err := cl.db.ListConsents(ctx, a.DID)
	if err != nil {
		return nil, err
	}
	settings, err := cl.db.GetSettings(ctx, a.DID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if rs := access.Recipients(consents, settings); rs != nil {
		out.ReleasedTo = rs
	}
	return out, nil
}

// setAccess is `user access set` and PUT /admin/v1/accounts/{id}/access.
func (cl *cloud) setAccess(ctx context.Context, a *identity.Account, level, until string) (*accessJSON, error) {
	var t time.Time
	if level != access.Basic {
		if until == "" {
			return nil, fmt.Errorf("%w: give --until (RFC 3339, e.g. 2027-01-01T00:00:00Z)", access.ErrExpiry)
		}
		var err error
		if t, err = time.Parse(time.RFC3339, until); err != nil {
			return nil, fmt.Errorf("%w: %q is not an RFC 3339 time such as 2027-01-01T00:00:00Z", access.ErrExpiry, until)
		}
	}
	if a.HomeIssuer != cl.cfg.Issuer && a.Status != identity.StatusMoved {
		return nil, fmt.Errorf("%w: %s is a replica of an account homed at %s: set its level there", access.ErrNotHome, a.Handle, a.HomeIssuer)
	}
	if _, err := cl.access().Set(ctx, a, level, t, access.SourceOperator, ""); err != nil {
		return nil, err
	}
	return cl.accessView(ctx, a)
}

const userAccessUsage = "usage: commonsid user access set <handle|DID> LEVEL --until 2027-01-01T00:00:00Z | show <handle|DID> [--json]"

func userAccess(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usagef(userAccessUsage)
	}
	sub, args := args[0], args[1:]
	var until string
	var asJSON bool
	open := openForCommand
	var extra func(*flag.FlagSet)
	switch sub {
	case "set":
		extra = func(fs *flag.FlagSet) {
			fs.StringVar(&until, "until", "", "when the level ends, RFC 3339 (required but for basic)")
		}
	case "show":
		open = openForReading
		extra = func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON") }
	case "-h", "--help", "help":
		fmt.Fprintln(c.stdout, userAccessUsage)
		return nil
	default:
		return usagef("unknown user access command %q; %s", sub, userAccessUsage)
	}
	cl, fs, err := open(ctx, c, "user access "+sub, args, extra)
	if err != nil {
		return err
	}
	defer cl.Close()
	want := 1
	if sub == "set" {
		want = 2
	}
	if fs.NArg() != want {
		return usagef("%s", userAccessUsage)
	}
	a, err := findAccount(ctx, cl, fs.Arg(0))
	if err != nil {
		return err
	}
	var v *accessJSON
	if sub == "set" {
		if v, err = cl.setAccess(ctx, a, fs.Arg(1), until); err != nil {
			if errors.Is(err, access.ErrUnknownLevel) || errors.Is(err, access.ErrExpiry) {
				return usagef("%v", err)
			}
			return err
		}
	} else if v, err = cl.accessView(ctx, a); err != nil {
		return err
	}
	if asJSON {
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(c.stdout, string(b))
		return nil
	}
	fmt.Fprintf(c.stdout, "%s: %s", v.Handle, v.Level)
	if v.Level != access.Basic {
		fmt.Fprintf(c.stdout, " until %s", v.ExpiresAt)
	}
	if v.Expired {
		fmt.Fprintf(c.stdout, " (%s ended %s)", v.Granted, v.ExpiresAt)
	}
	if v.Source != "" {
		fmt.Fprintf(c.stdout, ", set by %s at %s", v.Source, v.SetAt)
	}
	fmt.Fprintln(c.stdout)
	if len(v.ReleasedTo) > 0 {
		fmt.Fprintf(c.stdout, "released to: %s\n", strings.Join(v.ReleasedTo, ", "))
	}
	return nil
}

// ShowAccess is GET /admin/v1/accounts/{id}/access.
func (b *adminBackend) ShowAccess(ctx context.Context, ref string) (any, error) {
	a, err := b.find(ctx, ref)
	if err != nil {
		return nil, err
	}
	v, err := b.cl.accessView(ctx, a)
	return v, classify(err)
}

// SetAccess is PUT /admin/v1/accounts/{id}/access.
func (b *adminBackend) SetAccess(ctx context.Context, ref, level, until string) (any, error) {
	a, err := b.homed(ctx, ref)
	if err != nil {
		return nil, err
	}
	v, err := b.cl.setAccess(ctx, a, level, until)
	switch {
	case errors.Is(err, access.ErrUnknownLevel), errors.Is(err, access.ErrExpiry):
		return nil, admin.BadRequest("%s", err.Error())
	case errors.Is(err, access.ErrNotHome):
		return nil, admin.Conflict("%s", err.Error())
	}
	return v, classify(err)
}

var _ admin.AccessBackend = (*adminBackend)(nil)
