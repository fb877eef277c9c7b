package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/store"
)

var _ oidc.BackchannelStore = (*DB)(nil)

const backchannelCols = `id, client_id, uri, subject, sid, status, attempts, next_at, last_error, created_at, expires_at`

// QueueBackchannel stores logout deliveries, in the transaction ctx
// carries if any. It refuses them all (store.ErrConflict) when max pending
// deliveries are already waiting: the outbox stays bounded however many
// sign-outs a flood of requests causes.
func (d *DB) QueueBackchannel(ctx context.Context, ds []*oidc.BackchannelDelivery, max int) error {
	if len(ds) == 0 {
		return nil
	}
	var n int
	if err := d.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM backchannel_deliveries WHERE status = 'pending' LIMIT $1) p`,
		max).Scan(&n); err != nil {
		return fmt.Errorf("count logout deliveries: %w", err)
	}
	if n+len(ds) > max {
		return fmt.Errorf("logout outbox holds %d pending deliveries: %w", n, store.ErrConflict)
	}
	for _, x := range ds {
		_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO backchannel_deliveries (`+backchannelCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			x.ID, x.ClientID, x.URI, x.Subject, x.SID, x.Status, x.Attempts, toMicros(x.NextAt), x.LastError,
			toMicros(x.CreatedAt), toMicros(x.ExpiresAt))
		if err != nil {
			if _, ok := uniqueViolation(err); ok {
				return fmt.Errorf("logout delivery %s: %w", x.ID, store.ErrAlreadyExists)
			}
			return fmt.Errorf("queue logout delivery: %w", err)
		}
	}
	return nil
}

// ClaimBackchannel takes up to limit pending deliveries due at now and
// holds each until until: a row is taken by moving its next_at only if it
// has not moved since it was read, so that two workers (replicas) never
// send the same delivery at once.
func (d *DB) ClaimBackchannel(ctx context.Context, now, until time.Time, limit int) ([]*oidc.BackchannelDelivery, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT `+backchannelCols+` FROM backchannel_deliveries
		WHERE status = 'pending' AND next_at <= $1 ORDER BY next_at LIMIT `+strconv.Itoa(limit), toMicros(now))
	if err != nil {
		return nil, fmt.Errorf("list logout deliveries: %w", err)
	}
	var due []*oidc.BackchannelDelivery
	for rows.Next() {
		x, err := scanBackchannel(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		due = append(due, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list logout deliveries: %w", err)
	}
	var out []*oidc.BackchannelDelivery
	for _, x := range due {
		res, err := d.q(ctx).ExecContext(ctx, `UPDATE backchannel_deliveries SET next_at = $1
			WHERE id = $2 AND status = 'pending' AND next_at = $3`, toMicros(until), x.ID, toMicros(x.NextAt))
		if err != nil {
			return out, fmt.Errorf("claim logout delivery: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			x.NextAt = until
			out = append(out, x)
		}
	}
	return out, nil
}

// UpdateBackchannel records an attempt: status, attempts, next_at,
// last_error and expires_at.
func (d *DB) UpdateBackchannel(ctx context.Context, x *oidc.BackchannelDelivery) error {
	res, err := d.q(ctx).ExecContext(ctx, `UPDATE backchannel_deliveries SET status = $1, attempts = $2, next_at = $3,
		last_error = $4, expires_at = $5 WHERE id = $6`,
		x.Status, x.Attempts, toMicros(x.NextAt), x.LastError, toMicros(x.ExpiresAt), x.ID)
	if err != nil {
		return fmt.Errorf("update logout delivery: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("logout delivery %s: %w", x.ID, store.ErrNotFound)
	}
	return nil
}

// GetBackchannel returns one delivery.
func (d *DB) GetBackchannel(ctx context.Context, id string) (*oidc.BackchannelDelivery, error) {
	x, err := scanBackchannel(d.q(ctx).QueryRowContext(ctx, `SELECT `+backchannelCols+` FROM backchannel_deliveries WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("logout delivery %s: %w", id, store.ErrNotFound)
	}
	return x, err
}

// PurgeBackchannel deletes deliveries past their expires_at (done and
// failed ones a day after they ended, pending ones a day after they were
// queued), in batches of PurgeBatch.
func (d *DB) PurgeBackchannel(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	for {
		res, err := d.q(ctx).ExecContext(ctx, `DELETE FROM backchannel_deliveries WHERE id IN
			(SELECT id FROM backchannel_deliveries WHERE expires_at < $1 LIMIT `+strconv.Itoa(PurgeBatch)+`)`, toMicros(now))
		if err != nil {
			return total, fmt.Errorf("purge logout deliveries: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < PurgeBatch {
			return total, nil
		}
	}
}

func scanBackchannel(r scanner) (*oidc.BackchannelDelivery, error) {
	var x oidc.BackchannelDelivery
	var next, created, expires int64
	if err := r.Scan(&x.ID, &x.ClientID, &x.URI, &x.Subject, &x.SID, &x.Status, &x.Attempts, &next, &x.LastError,
		&created, &expires); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		return nil, fmt.Errorf("read logout delivery: %w", err)
	}
	x.NextAt, x.CreatedAt, x.ExpiresAt = fromMicros(next), fromMicros(created), fromMicros(expires)
	return &x, nil
}
