package sqlstore

import (
	"context"
	"fmt"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/store"
)

var _ federation.QuarantineStore = (*DB)(nil)

const quarantineCols = `peer, seq, type, account_did, event, reason, held_by, first_seen, last_seen, attempts`

// PutQuarantined records a quarantined peer event, or a new attempt at one
// already there (the event kept is the first received), then drops the
// oldest events of the peer past max, counting them.
func (d *DB) PutQuarantined(ctx context.Context, q *federation.Quarantined, max int) error {
	return d.InTx(ctx, func(ctx context.Context) error {
		_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO federation_quarantine (`+quarantineCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1)
			ON CONFLICT (peer, seq) DO UPDATE SET reason = EXCLUDED.reason, held_by = EXCLUDED.held_by,
			last_seen = EXCLUDED.last_seen, attempts = federation_quarantine.attempts + 1`,
			q.Peer, q.Seq, q.Type, q.AccountDID, q.Event, q.Reason, q.HeldBy, toMicros(q.FirstSeen), toMicros(q.LastSeen))
		if err != nil {
			return fmt.Errorf("quarantine event: %w", err)
		}
		var n int
		if err := d.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM federation_quarantine WHERE peer = $1`, q.Peer).Scan(&n); err != nil {
			return err
		}
		if max <= 0 || n <= max {
			return nil
		}
		over := n - max
		if _, err := d.q(ctx).ExecContext(ctx, `DELETE FROM federation_quarantine WHERE peer = $1 AND seq IN
			(SELECT seq FROM federation_quarantine WHERE peer = $1 ORDER BY seq LIMIT $2)`, q.Peer, over); err != nil {
			return fmt.Errorf("bound quarantine: %w", err)
		}
		_, err = d.q(ctx).ExecContext(ctx, `INSERT INTO federation_quarantine_dropped (peer, dropped) VALUES ($1, $2)
			ON CONFLICT (peer) DO UPDATE SET dropped = federation_quarantine_dropped.dropped + EXCLUDED.dropped`, q.Peer, over)
		return err
	})
}

// ListQuarantined returns quarantined events of a peer ("" for all), by
// peer and sequence.
func (d *DB) ListQuarantined(ctx context.Context, peer string, limit int) ([]*federation.Quarantined, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT `+quarantineCols+` FROM federation_quarantine
		WHERE peer = $1 OR $1 = '' ORDER BY peer, seq LIMIT $2`, peer, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*federation.Quarantined
	for rows.Next() {
		var (
			q           federation.Quarantined
			first, last int64
		)
		if err := rows.Scan(&q.Peer, &q.Seq, &q.Type, &q.AccountDID, &q.Event, &q.Reason, &q.HeldBy, &first, &last, &q.Attempts); err != nil {
			return nil, err
		}
		q.FirstSeen, q.LastSeen = fromMicros(first), fromMicros(last)
		out = append(out, &q)
	}
	return out, rows.Err()
}

// DeleteQuarantined removes one quarantined event.
func (d *DB) DeleteQuarantined(ctx context.Context, peer string, seq int64) error {
	res, err := d.q(ctx).ExecContext(ctx, `DELETE FROM federation_quarantine WHERE peer = $1 AND seq = $2`, peer, seq)
	if err != nil {
		return fmt.Errorf("delete quarantined event: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("quarantined event %d of %s: %w", seq, peer, store.ErrNotFound)
	}
	return nil
}

// QuarantineCount returns how many events of a peer are quarantined and
// how many were dropped over the bound.
func (d *DB) QuarantineCount(ctx context.Context, peer string) (int, int64, error) {
	var (
		n       int
		dropped int64
	)
	if err := d.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM federation_quarantine WHERE peer = $1`, peer).Scan(&n); err != nil {
		return 0, 0, err
	}
	err := d.q(ctx).QueryRowContext(ctx, `SELECT dropped FROM federation_quarantine_dropped WHERE peer = $1`, peer).Scan(&dropped)
	if err != nil && mapErr(err) != store.ErrNotFound {
		return 0, 0, err
	}
	return n, dropped, nil
}
