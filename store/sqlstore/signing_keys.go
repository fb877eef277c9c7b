package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/store"
)

var _ keys.Store = (*DB)(nil)

// ListSigningKeys returns every signing key, newest first.
func (d *DB) ListSigningKeys(ctx context.Context) ([]*keys.SigningKey, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT kid, alg, status, private_sealed, public_jwk, created_at, rotated_at, retired_at
		FROM signing_keys ORDER BY created_at DESC, kid`)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	defer rows.Close()
	var out []*keys.SigningKey
	for rows.Next() {
		var (
			k                keys.SigningKey
			created          int64
			rotated, retired sql.NullInt64
			pub              string
		)
		if err := rows.Scan(&k.KID, &k.Alg, &k.Status, &k.PrivateSealed, &pub, &created, &rotated, &retired); err != nil {
			return nil, fmt.Errorf("list signing keys: %w", err)
		}
		k.PublicJWK = []byte(pub)
		k.CreatedAt, k.RotatedAt, k.RetiredAt = fromMicros(created), fromMicrosPtr(rotated), fromMicrosPtr(retired)
		out = append(out, &k)
	}
	return out, rows.Err()
}

// AddSigningKey inserts k as the active key of its algorithm.
func (d *DB) AddSigningKey(ctx context.Context, k *keys.SigningKey, onlyIfNone bool) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		var active int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM signing_keys WHERE alg = $1 AND status = 'active'`, k.Alg).Scan(&active); err != nil {
			return err
		}
		if active > 0 {
			if onlyIfNone {
				return &store.DuplicateError{Entity: "active signing key", Field: "alg"}
			}
			if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET status = 'inactive', rotated_at = $2
				WHERE alg = $1 AND status = 'active'`, k.Alg, toMicros(k.CreatedAt)); err != nil {
				return fmt.Errorf("demote active key: %w", err)
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (kid, alg, status, private_sealed, public_jwk, created_at)
			VALUES ($1, $2, 'active', $3, $4, $5)`, k.KID, k.Alg, k.PrivateSealed, string(k.PublicJWK), toMicros(k.CreatedAt))
		if _, ok := uniqueViolation(err); ok {
			return &store.DuplicateError{Entity: "active signing key", Field: "alg"}
		}
		return err
	})
}

// RetireSigningKey marks an inactive key retired.
func (d *DB) RetireSigningKey(ctx context.Context, kid string, at time.Time) error {
	res, err := d.q(ctx).ExecContext(ctx, `UPDATE signing_keys SET status = 'retired', retired_at = $2
		WHERE kid = $1 AND status = 'inactive'`, kid, toMicros(at))
	if err != nil {
		return fmt.Errorf("retire key %s: %w", kid, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("inactive key %s: %w", kid, store.ErrNotFound)
	}
	return nil
}
