package sqlstore

import (
	"context"
	"fmt"
	"time"
)

// CountLiveChallenges counts the unexpired authorization challenges, up to
// limit: the scan stops there, so the count costs at most limit rows
// however full the table is.
func (d *DB) CountLiveChallenges(ctx context.Context, now time.Time, limit int) (int, error) {
	var n int
	err := d.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM auth_challenges WHERE expires_at > $1 LIMIT $2) live`,
		toMicros(now), limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count challenges: %w", err)
	}
	return n, nil
}
