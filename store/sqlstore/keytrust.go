package sqlstore

import (
	"context"
	"fmt"

	"github.com/onecommons/commonsid/federation"
)

var _ federation.KeyTrustStore = (*DB)(nil)

// PutPendingKey records a key a peer publishes that is not trusted here, or
// a new sighting of one (its reason and last seen time change, its first
// seen time stays). It reports whether the key is new, then keeps at most
// max keys of the peer, dropping the oldest.
func (d *DB) PutPendingKey(ctx context.Context, k *federation.PendingKey, max int) (bool, error) {
	var fresh bool
	err := d.InTx(ctx, func(ctx context.Context) error {
		var n int
		if err := d.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM federation_pending_keys WHERE peer = $1 AND kid = $2`,
			k.Peer, k.KID).Scan(&n); err != nil {
			return err
		}
		fresh = n == 0
		_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO federation_pending_keys (peer, kid, reason, first_seen, last_seen)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (peer, kid) DO UPDATE SET reason = EXCLUDED.reason, last_seen = EXCLUDED.last_seen`,
			k.Peer, k.KID, k.Reason, toMicros(k.FirstSeen), toMicros(k.LastSeen))
		if err != nil {
			return fmt.Errorf("pending key: %w", err)
		}
		if err := d.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM federation_pending_keys WHERE peer = $1`, k.Peer).Scan(&n); err != nil {
			return err
		}
		if max <= 0 || n <= max {
			return nil
		}
		_, err = d.q(ctx).ExecContext(ctx, `DELETE FROM federation_pending_keys WHERE peer = $1 AND kid IN
			(SELECT kid FROM federation_pending_keys WHERE peer = $1 ORDER BY first_seen, kid LIMIT $2)`, k.Peer, n-max)
		return err
	})
	return fresh, err
}

// ListPendingKeys returns the pending keys of a peer, oldest first.
func (d *DB) ListPendingKeys(ctx context.Context, peer string) ([]*federation.PendingKey, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT peer, kid, reason, first_seen, last_seen FROM federation_pending_keys
		WHERE peer = $1 ORDER BY first_seen, kid`, peer)
	if err != nil {
		return nil, fmt.Errorf("list pending keys: %w", err)
	}
	defer rows.Close()
	var out []*federation.PendingKey
	for rows.Next() {
		var (
			k           federation.PendingKey
			first, last int64
		)
		if err := rows.Scan(&k.Peer, &k.KID, &k.Reason, &first, &last); err != nil {
			return nil, err
		}
		k.FirstSeen, k.LastSeen = fromMicros(first), fromMicros(last)
		out = append(out, &k)
	}
	return out, rows.Err()
}

// ClearPendingKeys forgets every pending key of a peer.
func (d *DB) ClearPendingKeys(ctx context.Context, peer string) error {
	if _, err := d.q(ctx).ExecContext(ctx, `DELETE FROM federation_pending_keys WHERE peer = $1`, peer); err != nil {
		return fmt.Errorf("clear pending keys: %w", err)
	}
	return nil
}
