package main

import (
	"context"
	"time"

	"github.com/onecommons/commonsid/oidc"
)

// endingSignIns prepares the logout tokens owed to services when the
// account's sign-ins end (disabled or deleted from the command line): they
// are queued in the change's transaction and sent by the serving process.
func (cl *cloud) endingSignIns(ctx context.Context, did string) func(ctx context.Context) error {
	secret, err := cl.globalSecret(ctx)
	if err != nil {
		cl.log.ErrorContext(ctx, "back-channel logout: no global secret; services are not told", "err", err)
		return func(context.Context) error { return nil }
	}
	bc := &oidc.Backchannel{Clients: cl.db, Privacy: cl.db, Accounts: cl.accounts, Sessions: cl.db, Outbox: cl.db,
		GlobalSecret: secret, Now: time.Now, Log: cl.log}
	return bc.Ending(ctx, did, "")
}
