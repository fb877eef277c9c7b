package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/onecommons/commonsid/store"
)

// UseDPoPJTI records a DPoP proof id once (RFC 9449 §11.1). It returns
// store.ErrAlreadyExists when the id is recorded and has not expired. A row
// whose time has passed but that the purge has not removed yet is taken
// over, in the same statement, so that the answer never depends on when the
// purge last ran, and one statement suffices on both dialects.
func (d *DB) UseDPoPJTI(ctx context.Context, jtiHash string, expiresAt, now time.Time) error {
	res, err := d.q(ctx).ExecContext(ctx, `INSERT INTO dpop_jtis (jti_hash, expires_at) VALUES ($1, $2)
		ON CONFLICT (jti_hash) DO UPDATE SET expires_at = excluded.expires_at WHERE dpop_jtis.expires_at < $3`,
		jtiHash, toMicros(expiresAt), toMicros(now))
	if err != nil {
		return fmt.Errorf("record dpop proof: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("record dpop proof: %w", err)
	} else if n == 0 {
		return &store.DuplicateError{Entity: "dpop proof", Field: "jti"}
	}
	return nil
}
