package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/onecommons/commonsid/internal/limits"
)

var _ limits.FailureStore = (*DB)(nil)

// delayCase is the SQL of p.Delay(col), in microseconds.
func delayCase(p limits.Policy, col string) string {
	ds := p.Delays()
	var b strings.Builder
	fmt.Fprintf(&b, "(CASE WHEN %s < %d THEN 0", col, p.Free)
	for c := p.Free; c < len(ds)-1; c++ {
		fmt.Fprintf(&b, " WHEN %s = %d THEN %d", col, c, ds[c].Microseconds())
	}
	fmt.Fprintf(&b, " ELSE %d END)", ds[len(ds)-1].Microseconds())
	return b.String()
}

// TakeAttempt counts an attempt in one statement: concurrent attempts, from
// this process or another on the same database, each see the count the one
// before left, so none slips past the delay.
func (d *DB) TakeAttempt(ctx context.Context, keyHash string, p limits.Policy, now time.Time) (int, time.Duration, error) {
	delay := delayCase(p, "auth_failures.count")
	q := `INSERT INTO auth_failures (key_hash, window_start, count, last_at) VALUES ($1, $2, 1, $2)
		ON CONFLICT (key_hash) DO UPDATE SET
			count = CASE WHEN $2 >= auth_failures.last_at + ` + delay + ` + $3 THEN 1 ELSE auth_failures.count + 1 END,
			window_start = CASE WHEN $2 >= auth_failures.last_at + ` + delay + ` + $3 THEN $2 ELSE auth_failures.window_start END,
			last_at = $2
		WHERE $2 >= auth_failures.last_at + ` + delay + `
		RETURNING count`
	at := toMicros(now)
	var n int
	err := d.q(ctx).QueryRowContext(ctx, q, keyHash, at, p.Window.Microseconds()).Scan(&n)
	if err == nil {
		return n, 0, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, 0, fmt.Errorf("count attempt: %w", err)
	}
	// The key must wait: how long.
	var count int
	var last int64
	err = d.q(ctx).QueryRowContext(ctx, `SELECT count, last_at FROM auth_failures WHERE key_hash = $1`, keyHash).Scan(&count, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return d.TakeAttempt(ctx, keyHash, p, now) // purged meanwhile
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read attempts: %w", err)
	}
	wait := fromMicros(last).Add(p.Delay(count)).Sub(now)
	if wait <= 0 {
		wait = time.Second
	}
	return 0, wait, nil
}

// RefundAttempt implements limits.FailureStore.
func (d *DB) RefundAttempt(ctx context.Context, keyHash string) error {
	_, err := d.q(ctx).ExecContext(ctx, `UPDATE auth_failures SET count = count - 1 WHERE key_hash = $1 AND count > 0`, keyHash)
	if err != nil {
		return fmt.Errorf("refund attempt: %w", err)
	}
	return nil
}

// ClearFailures implements limits.FailureStore.
func (d *DB) ClearFailures(ctx context.Context, keyHash string) error {
	if _, err := d.q(ctx).ExecContext(ctx, `DELETE FROM auth_failures WHERE key_hash = $1`, keyHash); err != nil {
		return fmt.Errorf("clear failures: %w", err)
	}
	return nil
}

// PurgeFailures removes, in batches of PurgeBatch, the counters whose last
// attempt is before before.
func (d *DB) PurgeFailures(ctx context.Context, before time.Time) (int64, error) {
	q := `DELETE FROM auth_failures WHERE key_hash IN
		(SELECT key_hash FROM auth_failures WHERE last_at < $1 LIMIT ` + strconv.Itoa(PurgeBatch) + `)`
	var total int64
	for {
		res, err := d.q(ctx).ExecContext(ctx, q, toMicros(before))
		if err != nil {
			return total, fmt.Errorf("purge failures: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < PurgeBatch {
			return total, nil
		}
	}
}
