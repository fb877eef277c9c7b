package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// PurgeBatch is how many rows one purge statement deletes at most: each
// batch is a short transaction, so that a table filled by a flood of
// requests is emptied without holding the write lock (SQLite) or a long
// transaction (PostgreSQL) for the whole of it.
const PurgeBatch = 1000

// expiring lists the tables whose rows carry expires_at, with their key:
// codes, tokens and their sessions; sign-in challenges (written by
// anonymous /authorize requests); browser sessions; client assertion ids;
// peers' revoked tokens; passkey ceremonies (written by anonymous
// /login/passkey/begin requests; also dropped when one is taken); pushed
// authorization requests; DPoP proof ids; mailed single-use links.
var expiring = []struct{ table, key string }{
	{"oauth_requests", "kind, signature_hash"},
	{"auth_challenges", "id_hash"},
	{"browser_sessions", "id_hash"},
	{"client_assertion_jtis", "jti_hash"},
	{"federation_revoked_tokens", "issuer, token_hash"},
	{"webauthn_ceremonies", "id_hash"},
	{"pushed_auth_requests", "uri_hash"},
	{"dpop_jtis", "jti_hash"},
	{"account_tokens", "token_hash"},
}

// PurgeExpired deletes what can no longer be used: expired codes, tokens
// and their sessions, sign-in challenges, browser sessions, client
// assertion ids, peers' revoked tokens, passkey ceremonies, pushed
// requests, DPoP proof ids and mailed links, in batches of PurgeBatch rows
// without pausing. It returns the number of rows removed.
func (d *DB) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	for _, t := range expiring {
		n, err := d.purgeTable(ctx, t.table, t.key, "expires_at", now, PurgeBatch, 0, nil)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// SweepOptions says what one Sweep does besides the expiring tables.
type SweepOptions struct {
	// FailuresBefore, when set, also removes the sign-in failure counters
	// whose last attempt is older (auth_failures).
	FailuresBefore time.Time
	// Batch is the most rows one statement deletes (PurgeBatch when 0).
	Batch int
	// Pause is the wait between two batches of one table while rows
	// remain, so that a long backlog leaves room for other writers.
	Pause time.Duration
	// Deleted, when set, is called after every statement that removed
	// rows, with the table and the count.
	Deleted func(table string, n int64)
}

// SweepResult is what one Sweep did.
type SweepResult struct {
	// Skipped is set when another process was sweeping the same
	// PostgreSQL database: nothing was done.
	Skipped bool
	// Rows is the number of rows removed per table.
	Rows map[string]int64
}

// Total is the number of rows a sweep removed.
func (r SweepResult) Total() int64 {
	var n int64
	for _, v := range r.Rows {
		n += v
	}
	return n
}

// purgeLockKey names the advisory lock a PostgreSQL sweep holds.
const purgeLockKey = "commonsid/purge/"

// Sweep removes, table by table, every expired row PurgeExpired removes,
// back-channel deliveries past their expiry and, with FailuresBefore,
// old sign-in failure counters: in statements of at most Batch rows, with
// Pause between them while a table still has rows to remove. On PostgreSQL
// one process sweeps at a time: a sweep that finds the advisory lock held
// by another (a replica of the same cloud) is skipped, since that one
// removes the same rows. Stopped by ctx, it returns what it removed so far.
func (d *DB) Sweep(ctx context.Context, now time.Time, o SweepOptions) (SweepResult, error) {
	res := SweepResult{Rows: map[string]int64{}}
	if o.Batch <= 0 {
		o.Batch = PurgeBatch
	}
	if d.dialect == Postgres && d.pg != nil {
		release, ok, err := d.tryPurgeLock(ctx)
		if err != nil {
			return res, err
		}
		if !ok {
			res.Skipped = true
			return res, nil
		}
		defer release()
	}
	count := func(table string, n int64) {
		res.Rows[table] += n
		if o.Deleted != nil {
			o.Deleted(table, n)
		}
	}
	for _, t := range expiring {
		if _, err := d.purgeTable(ctx, t.table, t.key, "expires_at", now, o.Batch, o.Pause, count); err != nil {
			return res, err
		}
	}
	if _, err := d.purgeTable(ctx, "backchannel_deliveries", "id", "expires_at", now, o.Batch, o.Pause, count); err != nil {
		return res, err
	}
	if !o.FailuresBefore.IsZero() {
		if _, err := d.purgeTable(ctx, "auth_failures", "key_hash", "last_at", o.FailuresBefore, o.Batch, o.Pause, count); err != nil {
			return res, err
		}
	}
	return res, nil
}

// tryPurgeLock takes the sweep's advisory lock on a connection of its own
// (closing it gives the lock back, also when the process dies).
func (d *DB) tryPurgeLock(ctx context.Context) (func(), bool, error) {
	conn, err := pgx.ConnectConfig(ctx, d.pg.Copy())
	if err != nil {
		return nil, false, fmt.Errorf("purge lock %s: %s", d.where, redactPG(rootCause(err).Error()))
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1::text || current_schema()))`, purgeLockKey).Scan(&ok); err != nil {
		conn.Close(context.Background())
		return nil, false, fmt.Errorf("purge lock %s: %w", d.where, err)
	}
	if !ok {
		conn.Close(context.Background())
		return nil, false, nil
	}
	return func() { conn.Close(context.Background()) }, true, nil
}

// purgeTable deletes the rows of table whose column is before cut, batch
// rows per statement, until a statement removes fewer than batch.
func (d *DB) purgeTable(ctx context.Context, table, key, column string, cut time.Time, batch int, pause time.Duration,
	count func(string, int64)) (int64, error) {
	q := `DELETE FROM ` + table + ` WHERE (` + key + `) IN
		(SELECT ` + key + ` FROM ` + table + ` WHERE ` + column + ` < $1 LIMIT ` + strconv.Itoa(batch) + `)`
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("purge %s: %w", table, err)
		}
		res, err := d.q(ctx).ExecContext(ctx, q, toMicros(cut))
		if err != nil {
			return total, fmt.Errorf("purge %s: %w", table, err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n > 0 && count != nil {
			count(table, n)
		}
		if n < int64(batch) {
			return total, nil
		}
		if pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return total, fmt.Errorf("purge %s: %w", table, ctx.Err())
			case <-t.C:
			}
		}
	}
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
