package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/onecommons/commonsid/store"
)

// GetMeta returns a cloud-wide value, or store.ErrNotFound.
func (d *DB) GetMeta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := d.q(ctx).QueryRowContext(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v)
	if err != nil {
		return nil, fmt.Errorf("meta %s: %w", key, mapErr(err))
	}
	return v, nil
}

// PutMetaIfAbsent stores value under key unless the key exists; it returns
// the value that is stored afterwards.
func (d *DB) PutMetaIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error) {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, key, value)
	if err != nil {
		return nil, fmt.Errorf("meta %s: %w", key, err)
	}
	v, err := d.GetMeta(ctx, key)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("meta %s: %w", key, store.ErrNotFound)
	}
	return v, nil
}

// PutMeta stores value under key, replacing any earlier value.
func (d *DB) PutMeta(ctx context.Context, key string, value []byte) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, key, value)
	if err != nil {
		return fmt.Errorf("meta %s: %w", key, err)
	}
	return nil
}

// IssuerUse counts what depends on a cloud's issuer name: renaming the
// cloud strands accounts homed under the old name, breaks every peer's
// pinned view of it and makes every live token fail its issuer check.
type IssuerUse struct {
	Accounts int // accounts homed under the issuer (not deleted, not moved away)
	Peers    int
	Tokens   int // live codes, access and refresh tokens
}

// Any reports whether anything depends on the issuer.
func (u IssuerUse) Any() bool { return u.Accounts > 0 || u.Peers > 0 || u.Tokens > 0 }

// IssuerUse counts the accounts, peers and live tokens that depend on issuer.
func (d *DB) IssuerUse(ctx context.Context, issuer string, now time.Time) (IssuerUse, error) {
	var u IssuerUse
	q := d.q(ctx)
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts WHERE home_issuer = $1 AND status NOT IN ('deleted', 'moved')`, issuer).Scan(&u.Accounts); err != nil {
		return u, fmt.Errorf("count accounts: %w", err)
	}
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM peers`).Scan(&u.Peers); err != nil {
		return u, fmt.Errorf("count peers: %w", err)
	}
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM oauth_requests WHERE expires_at > $1`, toMicros(now)).Scan(&u.Tokens); err != nil {
		return u, fmt.Errorf("count tokens: %w", err)
	}
	return u, nil
}

// RehomeAccounts moves the accounts homed under from to to, and returns how
// many moved. With custodialOnly, only accounts that hold their DID key
// here (made or imported here, never a replica) move.
func (d *DB) RehomeAccounts(ctx context.Context, from, to string, custodialOnly bool, now time.Time) (int64, error) {
	query := `UPDATE accounts SET home_issuer = $1, updated_at = $2 WHERE home_issuer = $3`
	if custodialOnly {
		query += ` AND did_key_sealed IS NOT NULL`
	}
	res, err := d.q(ctx).ExecContext(ctx, query, to, toMicros(now), from)
	if err != nil {
		return 0, fmt.Errorf("rehome accounts: %w", err)
	}
	return res.RowsAffected()
}
