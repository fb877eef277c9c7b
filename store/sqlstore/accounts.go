package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

var _ identity.Store = (*DB)(nil)

const accountCols = `did, handle, email, email_verified, name, password_hash, status, home_issuer,
	did_key_sealed, pairwise_secret_sealed, created_at, updated_at, deleted_at`

type scanner interface{ Scan(...any) error }

// accountRow is where a row of accountCols is scanned.
type accountRow struct {
	a                  identity.Account
	created, updated   int64
	deleted            sql.NullInt64
	didKey, pairSecret []byte
}

func (r *accountRow) dests() []any {
	return []any{&r.a.DID, &r.a.Handle, &r.a.Email, &r.a.EmailVerified, &r.a.Name, &r.a.PasswordHash, &r.a.Status, &r.a.HomeIssuer,
		&r.didKey, &r.pairSecret, &r.created, &r.updated, &r.deleted}
}

func (r *accountRow) account() *identity.Account {
	a := r.a
	a.DIDKeySealed, a.PairwiseSecretSealed = r.didKey, r.pairSecret
	a.CreatedAt, a.UpdatedAt, a.DeletedAt = fromMicros(r.created), fromMicros(r.updated), fromMicrosPtr(r.deleted)
	return &a
}

func scanAccount(s scanner) (*identity.Account, error) {
	var r accountRow
	if err := s.Scan(r.dests()...); err != nil {
		return nil, mapErr(err)
	}
	return r.account(), nil
}

// CreateAccount inserts a new account.
func (d *DB) CreateAccount(ctx context.Context, a *identity.Account) error {
	return d.withEvent(ctx, "account.created", a.DID, nil, func(ctx context.Context) error {
		return d.createAccount(ctx, a)
	})
}

func (d *DB) createAccount(ctx context.Context, a *identity.Account) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO accounts (`+accountCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		a.DID, a.Handle, a.Email, a.EmailVerified, a.Name, a.PasswordHash, a.Status, a.HomeIssuer,
		a.DIDKeySealed, a.PairwiseSecretSealed, toMicros(a.CreatedAt), toMicros(a.UpdatedAt), toMicrosPtr(a.DeletedAt))
	if c, ok := uniqueViolation(err); ok {
		field := "did"
		if strings.Contains(c, "handle") {
			field = "handle"
		}
		return &store.DuplicateError{Entity: "account", Field: field}
	}
	if err != nil {
		return fmt.Errorf("insert account: %w", err)
	}
	return nil
}

// GetAccount returns the account with this DID.
func (d *DB) GetAccount(ctx context.Context, did string) (*identity.Account, error) {
	a, err := scanAccount(d.q(ctx).QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE did = $1`, did))
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", did, err)
	}
	return a, nil
}

// GetAccountByHandle returns the account with this (canonical) handle.
func (d *DB) GetAccountByHandle(ctx context.Context, handle string) (*identity.Account, error) {
	a, err := scanAccount(d.q(ctx).QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE handle = $1`, handle))
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", handle, err)
	}
	return a, nil
}

// ListAccounts pages through accounts ordered by handle.
func (d *DB) ListAccounts(ctx context.Context, after string, limit int) ([]*identity.Account, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE handle > $1 ORDER BY handle LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var out []*identity.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// UpdateAccount applies fn to the account inside a transaction. The DID and
// creation time cannot change.
func (d *DB) UpdateAccount(ctx context.Context, did string, fn func(*identity.Account) error) error {
	return d.InTx(ctx, func(ctx context.Context) error {
		tx := d.q(ctx)
		a, err := scanAccount(tx.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE did = $1`+d.forUpdate(), did))
		if err != nil {
			return fmt.Errorf("account %s: %w", did, err)
		}
		if err := fn(a); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE accounts SET handle = $2, email = $3, email_verified = $4, name = $5,
			password_hash = $6, status = $7, home_issuer = $8, did_key_sealed = $9, pairwise_secret_sealed = $10,
			updated_at = $11, deleted_at = $12 WHERE did = $1`,
			did, a.Handle, a.Email, a.EmailVerified, a.Name, a.PasswordHash, a.Status, a.HomeIssuer,
			a.DIDKeySealed, a.PairwiseSecretSealed, toMicros(a.UpdatedAt), toMicrosPtr(a.DeletedAt))
		if _, ok := uniqueViolation(err); ok {
			return &store.DuplicateError{Entity: "account", Field: "handle"}
		}
		if err != nil {
			return fmt.Errorf("update account %s: %w", did, err)
		}
		if a.Status == identity.StatusActive || a.Status == identity.StatusDisabled {
			// Moves and deletions are announced by their own events.
			return d.AppendEvent(ctx, "account.updated", did, time.Now().UTC(), nil)
		}
		return nil
	})
}
