package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/onecommons/commonsid/identity"
)

var _ identity.TokenStore = (*DB)(nil)

// PutAccountToken stores a new single-use link.
func (d *DB) PutAccountToken(ctx context.Context, t *identity.AccountToken) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO account_tokens (token_hash, purpose, account_did, email, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, t.Hash, t.Purpose, t.AccountDID, t.Email, toMicros(t.CreatedAt), toMicros(t.ExpiresAt))
	if err != nil {
		return fmt.Errorf("put account token: %w", mapErr(err))
	}
	return nil
}

// UseAccountToken marks an unused, unexpired link used and returns it.
func (d *DB) UseAccountToken(ctx context.Context, hash, purpose string, now time.Time) (*identity.AccountToken, error) {
	var (
		t                identity.AccountToken
		created, expires int64
		used             sql.NullInt64
	)
	err := d.q(ctx).QueryRowContext(ctx, `UPDATE account_tokens SET used_at = $3
		WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
		RETURNING token_hash, purpose, account_did, email, created_at, expires_at, used_at`,
		hash, purpose, toMicros(now)).Scan(&t.Hash, &t.Purpose, &t.AccountDID, &t.Email, &created, &expires, &used)
	if err != nil {
		return nil, fmt.Errorf("use account token: %w", mapErr(err))
	}
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromMicros(created), fromMicros(expires), fromMicrosPtr(used)
	return &t, nil
}

// DropAccountTokens deletes an account's unused links of one purpose.
func (d *DB) DropAccountTokens(ctx context.Context, did, purpose string) (int64, error) {
	res, err := d.q(ctx).ExecContext(ctx, `DELETE FROM account_tokens WHERE account_did = $1 AND purpose = $2 AND used_at IS NULL`, did, purpose)
	if err != nil {
		return 0, fmt.Errorf("drop account tokens: %w", err)
	}
	return res.RowsAffected()
}

// AccountByEmail returns the active account with this address (compared
// without case), a verified one first, else the oldest: the account a
// password reset by email goes to.
func (d *DB) AccountByEmail(ctx context.Context, email string) (*identity.Account, error) {
	a, err := scanAccount(d.q(ctx).QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts
		WHERE lower(email) = lower($1) AND email <> '' AND status = 'active'
		ORDER BY email_verified DESC, created_at LIMIT 1`, email))
	if err != nil {
		return nil, fmt.Errorf("account by email: %w", err)
	}
	return a, nil
}
