package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/store"
)

// Meta keys of the feed epoch (federation/epoch.go): the current one, and
// every epoch this database has had, oldest first.
const (
	feedEpochKey   = "feed_epoch"
	feedEpochsKey  = "feed_epochs"
	maxEpochsKept  = 64
	resyncingTrue  = 1
	resyncingFalse = 0
)

// FeedEpoch returns this cloud's feed epoch; "" when none is made yet.
func (d *DB) FeedEpoch(ctx context.Context) (string, error) {
	v, err := d.GetMeta(ctx, feedEpochKey)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(v), nil
}

// FeedEpochs returns every epoch this database has had, oldest first.
func (d *DB) FeedEpochs(ctx context.Context) ([]string, error) {
	v, err := d.GetMeta(ctx, feedEpochsKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	if err := json.Unmarshal(v, &out); err != nil {
		return nil, fmt.Errorf("meta %s: %w", feedEpochsKey, err)
	}
	return out, nil
}

func (d *DB) addEpochHistory(ctx context.Context, epoch string) error {
	hist, err := d.FeedEpochs(ctx)
	if err != nil {
		return err
	}
	hist = append(hist, epoch)
	if len(hist) > maxEpochsKept {
		hist = hist[len(hist)-maxEpochsKept:]
	}
	raw, _ := json.Marshal(hist)
	return d.PutMeta(ctx, feedEpochsKey, raw)
}

// EnsureFeedEpoch makes fresh the feed epoch unless there is one; it
// returns the epoch in force and whether it was made now.
func (d *DB) EnsureFeedEpoch(ctx context.Context, fresh string) (string, bool, error) {
	var (
		epoch string
		made  bool
	)
	err := d.InTx(ctx, func(ctx context.Context) error {
		v, err := d.PutMetaIfAbsent(ctx, feedEpochKey, []byte(fresh))
		if err != nil {
			return err
		}
		epoch, made = string(v), string(v) == fresh
		if made {
			return d.addEpochHistory(ctx, fresh)
		}
		return nil
	})
	return epoch, made, err
}

// RotateFeedEpoch replaces the feed epoch from with to, unless another
// process replaced from first; it returns the epoch in force afterwards.
func (d *DB) RotateFeedEpoch(ctx context.Context, from, to string) (string, error) {
	now := to
	err := d.InTx(ctx, func(ctx context.Context) error {
		res, err := d.q(ctx).ExecContext(ctx, `UPDATE meta SET value = $2 WHERE key = $1 AND value = $3`, feedEpochKey, []byte(to), []byte(from))
		if err != nil {
			return fmt.Errorf("new feed epoch: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			cur, err := d.FeedEpoch(ctx)
			if err != nil {
				return err
			}
			if cur != "" {
				now = cur // made by another process meanwhile
				return nil
			}
			if err := d.PutMeta(ctx, feedEpochKey, []byte(to)); err != nil {
				return err
			}
		}
		return d.addEpochHistory(ctx, to)
	})
	if err != nil {
		return "", err
	}
	return now, nil
}

// FeedHead returns the highest sequence number the event log has issued:
// the log's counter, which deleted events (a forgotten account's) do not
// lower, and which a restored database brings back with it.
func (d *DB) FeedHead(ctx context.Context) (int64, error) {
	var q string
	if d.dialect == Postgres {
		q = `SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')::regclass), 0)`
	} else {
		q = `SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)`
	}
	var counter int64
	if err := d.q(ctx).QueryRowContext(ctx, q).Scan(&counter); err != nil {
		return 0, fmt.Errorf("feed head: %w", err)
	}
	last, err := d.LastEventSeq(ctx)
	if err != nil {
		return 0, err
	}
	return max(counter, last), nil
}

// PeerEpoch returns what is known of a peer's feed epoch.
func (d *DB) PeerEpoch(ctx context.Context, peer string) (*federation.PeerEpoch, error) {
	pe := &federation.PeerEpoch{Peer: peer}
	var resyncing int
	var at, done int64
	err := d.q(ctx).QueryRowContext(ctx, `SELECT epoch, resyncing, reason, resync_at, done_at, resyncs FROM federation_peer_epochs WHERE peer = $1`, peer).
		Scan(&pe.Epoch, &resyncing, &pe.Reason, &at, &done, &pe.Resyncs)
	if errors.Is(err, sql.ErrNoRows) {
		return pe, nil
	}
	if err != nil {
		return nil, fmt.Errorf("peer epoch %s: %w", peer, err)
	}
	pe.Resyncing = resyncing == resyncingTrue
	if at != 0 {
		pe.ResyncAt = fromMicros(at)
	}
	if done != 0 {
		pe.DoneAt = fromMicros(done)
	}
	return pe, nil
}

// SetPeerEpoch records the epoch of a peer.
func (d *DB) SetPeerEpoch(ctx context.Context, peer, epoch string) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO federation_peer_epochs (peer, epoch) VALUES ($1, $2)
		ON CONFLICT (peer) DO UPDATE SET epoch = EXCLUDED.epoch`, peer, epoch)
	if err != nil {
		return fmt.Errorf("peer epoch %s: %w", peer, err)
	}
	return nil
}

// StartResync sends a peer's cursor back to 0 and forgets what was applied
// and quarantined from it, recording the epoch and why.
func (d *DB) StartResync(ctx context.Context, peer, epoch, reason string, at time.Time) error {
	if len(reason) > 500 {
		reason = reason[:500]
	}
	return d.InTx(ctx, func(ctx context.Context) error {
		res, err := d.q(ctx).ExecContext(ctx, `UPDATE peers SET cursor = 0, last_event_at = 0 WHERE issuer = $1`, peer)
		if err != nil {
			return fmt.Errorf("start resync: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("peer %s: %w", peer, store.ErrNotFound)
		}
		for _, q := range []string{
			`DELETE FROM federation_applied WHERE peer = $1`,
			`DELETE FROM federation_quarantine WHERE peer = $1`,
			`DELETE FROM federation_resync_seen WHERE peer = $1`,
		} {
			if _, err := d.q(ctx).ExecContext(ctx, q, peer); err != nil {
				return fmt.Errorf("start resync: %w", err)
			}
		}
		_, err = d.q(ctx).ExecContext(ctx, `INSERT INTO federation_peer_epochs (peer, epoch, resyncing, reason, resync_at, resyncs)
			VALUES ($1, $2, $3, $4, $5, 1)
			ON CONFLICT (peer) DO UPDATE SET epoch = EXCLUDED.epoch, resyncing = EXCLUDED.resyncing, reason = EXCLUDED.reason,
			resync_at = EXCLUDED.resync_at, resyncs = federation_peer_epochs.resyncs + 1`,
			peer, epoch, resyncingTrue, reason, toMicros(at))
		if err != nil {
			return fmt.Errorf("start resync: %w", err)
		}
		return nil
	})
}

// MarkResyncSeen records what a replay mentioned.
func (d *DB) MarkResyncSeen(ctx context.Context, peer, kind, id, clientID string) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO federation_resync_seen (peer, kind, id, client_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (peer, kind, id, client_id) DO NOTHING`, peer, kind, id, clientID)
	if err != nil {
		return fmt.Errorf("mark resync: %w", err)
	}
	return nil
}

// FinishResync sweeps the peer's replicas, services and replicated
// consents that the replay did not mention.
func (d *DB) FinishResync(ctx context.Context, peer string, at time.Time) (federation.Swept, error) {
	var sw federation.Swept
	err := d.InTx(ctx, func(ctx context.Context) error {
		sw = federation.Swept{}
		rows, err := d.q(ctx).QueryContext(ctx, `SELECT did FROM accounts WHERE home_issuer = $1 AND did NOT IN
			(SELECT id FROM federation_resync_seen WHERE peer = $1 AND kind = $2)`, peer, federation.SeenAccount)
		if err != nil {
			return fmt.Errorf("sweep replicas: %w", err)
		}
		var dids []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return err
			}
			dids = append(dids, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, s := range dids {
			if err := d.DropReplica(ctx, s); err != nil {
				return err
			}
		}
		sw.Accounts = len(dids)
		res, err := d.q(ctx).ExecContext(ctx, `DELETE FROM federation_services WHERE issuer = $1 AND client_id NOT IN
			(SELECT id FROM federation_resync_seen WHERE peer = $1 AND kind = $2)`, peer, federation.SeenService)
		if err != nil {
			return fmt.Errorf("sweep services: %w", err)
		}
		n, _ := res.RowsAffected()
		sw.Services = int(n)
		res, err = d.q(ctx).ExecContext(ctx, `DELETE FROM consents WHERE account_did IN (SELECT did FROM accounts WHERE home_issuer = $1)
			AND substr(client_id, 1, length(CAST($2 AS TEXT))) = CAST($2 AS TEXT)
			AND NOT EXISTS (SELECT 1 FROM federation_resync_seen s WHERE s.peer = $1 AND s.kind = $3
				AND s.id = consents.account_did AND s.client_id = consents.client_id)`, peer, peer+"#", federation.SeenConsent)
		if err != nil {
			return fmt.Errorf("sweep consents: %w", err)
		}
		n, _ = res.RowsAffected()
		sw.Consents = int(n)
		if _, err := d.q(ctx).ExecContext(ctx, `DELETE FROM federation_resync_seen WHERE peer = $1`, peer); err != nil {
			return fmt.Errorf("finish resync: %w", err)
		}
		if _, err := d.q(ctx).ExecContext(ctx, `UPDATE federation_peer_epochs SET resyncing = $2, done_at = $3 WHERE peer = $1`,
			peer, resyncingFalse, toMicros(at)); err != nil {
			return fmt.Errorf("finish resync: %w", err)
		}
		if sw.Accounts+sw.Consents > 0 {
			d.replicaChanged(ctx)
		}
		return nil
	})
	return sw, err
}
