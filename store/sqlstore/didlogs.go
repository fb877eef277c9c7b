package sqlstore

import (
	"context"
	"fmt"

	"github.com/onecommons/commonsid/identity"
)

var _ identity.DIDLogStore = (*DB)(nil)

// CreateAccountWithDIDLog inserts a new account and its did:webvh log in
// one transaction, with the account.created event.
func (d *DB) CreateAccountWithDIDLog(ctx context.Context, a *identity.Account, l *identity.DIDLog) error {
	if l.DID != a.DID {
		return fmt.Errorf("DID log of %s given for account %s", l.DID, a.DID)
	}
	return d.withEvent(ctx, "account.created", a.DID, nil, func(ctx context.Context) error {
		if err := d.createAccount(ctx, a); err != nil {
			return err
		}
		_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO account_did_logs (did, name, log, version, updated_at)
			VALUES ($1, $2, $3, $4, $5)`, l.DID, l.Name, string(l.Log), l.Version, toMicros(l.UpdatedAt))
		if err != nil {
			return fmt.Errorf("insert DID log: %w", err)
		}
		return nil
	})
}

// GetDIDLog returns the did:webvh log of the account didID.
func (d *DB) GetDIDLog(ctx context.Context, didID string) (*identity.DIDLog, error) {
	l, err := d.getDIDLog(ctx, `did = $1`, didID)
	if err != nil {
		return nil, fmt.Errorf("DID log of %s: %w", didID, err)
	}
	return l, nil
}

// GetDIDLogByName returns the did:webvh log served under name.
func (d *DB) GetDIDLogByName(ctx context.Context, name string) (*identity.DIDLog, error) {
	l, err := d.getDIDLog(ctx, `name = $1`, name)
	if err != nil {
		return nil, fmt.Errorf("DID log %s: %w", name, err)
	}
	return l, nil
}

func (d *DB) getDIDLog(ctx context.Context, where string, arg string) (*identity.DIDLog, error) {
	var (
		l   identity.DIDLog
		log string
		at  int64
	)
	err := d.q(ctx).QueryRowContext(ctx, `SELECT did, name, log, version, updated_at FROM account_did_logs WHERE `+where, arg).
		Scan(&l.DID, &l.Name, &log, &l.Version, &at)
	if err != nil {
		return nil, mapErr(err)
	}
	l.Log, l.UpdatedAt = []byte(log), fromMicros(at)
	return &l, nil
}
