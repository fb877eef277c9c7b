package sqlstore

import (
	"context"
	"fmt"
	"time"
)

// PurgeExpired deletes what can no longer be used: expired codes, tokens
// and their sessions, sign-in challenges, browser sessions and client
// assertion ids. It returns the number of rows removed.
func (d *DB) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	for _, q := range []string{
		`DELETE FROM oauth_requests WHERE expires_at < $1`,
		`DELETE FROM auth_challenges WHERE expires_at < $1`,
		`DELETE FROM browser_sessions WHERE expires_at < $1`,
		`DELETE FROM client_assertion_jtis WHERE expires_at < $1`,
		`DELETE FROM federation_revoked_tokens WHERE expires_at < $1`,
	} {
		res, err := d.q(ctx).ExecContext(ctx, q, toMicros(now))
		if err != nil {
			return total, fmt.Errorf("purge: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// PurgeTombstones removes deleted accounts whose tombstone is older than
// before, freeing their handles.
func (d *DB) PurgeTombstones(ctx context.Context, before time.Time) (int64, error) {
	res, err := d.q(ctx).ExecContext(ctx, `DELETE FROM accounts WHERE status = 'deleted' AND deleted_at < $1`, toMicros(before))
	if err != nil {
		return 0, fmt.Errorf("purge tombstones: %w", err)
	}
	return res.RowsAffected()
}
