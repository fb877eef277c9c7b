package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/onecommons/commonsid/federation"
)

// eventChannel is the PostgreSQL channel on which committed events are
// announced, so that every replica's live feed streams them.
const eventChannel = "commonsid_events"

// eventLock is the advisory lock that orders event appenders and readers.
const eventLock = "7340115"

// Event is one entry of the cloud's event log.
type Event = federation.LogEvent

// AppendEvent adds an event to the log (in the caller's transaction when
// ctx carries one). The payload must hold no personal data: the feed adds
// the current, shareable state when it serves the event.
//
// A reader never sees seq N+1 while seq N may still commit, so a
// follower's cursor never skips an event: on PostgreSQL appenders hold a
// shared advisory lock from before they draw their sequence number until
// they commit, and the feed reads under the exclusive lock, after every
// appender in flight has finished. Appenders do not wait for each other.
func (d *DB) AppendEvent(ctx context.Context, typ, accountDID string, at time.Time, payload map[string]any) error {
	raw := []byte("{}")
	if payload != nil {
		var err error
		if raw, err = json.Marshal(payload); err != nil {
			return fmt.Errorf("event payload: %w", err)
		}
	}
	return d.InTx(ctx, func(ctx context.Context) error {
		if d.dialect == Postgres {
			if _, err := d.q(ctx).ExecContext(ctx, `SELECT pg_advisory_xact_lock_shared(`+eventLock+`), pg_notify('`+eventChannel+`', '')`); err != nil {
				return fmt.Errorf("append event %s: %w", typ, err)
			}
		}
		if _, err := d.q(ctx).ExecContext(ctx, `INSERT INTO events (type, account_did, at, payload) VALUES ($1, $2, $3, $4)`,
			typ, accountDID, toMicros(at), string(raw)); err != nil {
			return fmt.Errorf("append event %s: %w", typ, err)
		}
		d.afterCommit(ctx, d.fireEvents)
		return nil
	})
}

// OnEvents registers fn, called whenever events may have been appended: at
// commit in this process, and (PostgreSQL, with ListenTokens running) when
// any process commits one.
func (d *DB) OnEvents(fn func()) { d.appended.add(fn) }

func (d *DB) fireEvents() { d.appended.fire() }

// LastEventSeq returns the newest event's sequence number (0 for none).
func (d *DB) LastEventSeq(ctx context.Context) (int64, error) {
	var n *int64
	if err := d.q(ctx).QueryRowContext(ctx, `SELECT MAX(seq) FROM events`).Scan(&n); err != nil {
		return 0, fmt.Errorf("last event: %w", err)
	}
	if n == nil {
		return 0, nil
	}
	return *n, nil
}

// ListEvents returns events after seq, oldest first.
func (d *DB) ListEvents(ctx context.Context, after int64, limit int) (out []Event, err error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	if d.dialect == Postgres {
		if _, ok := txOf(ctx); !ok {
			err = d.InTx(ctx, func(ctx context.Context) error {
				if _, err := d.q(ctx).ExecContext(ctx, `SELECT pg_advisory_xact_lock(`+eventLock+`)`); err != nil {
					return fmt.Errorf("list events: %w", err)
				}
				out, err = d.listEvents(ctx, after, limit)
				return err
			})
			return out, err
		}
	}
	return d.listEvents(ctx, after, limit)
}

func (d *DB) listEvents(ctx context.Context, after int64, limit int) ([]Event, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT seq, type, account_did, at, payload FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			e   Event
			at  int64
			raw string
		)
		if err := rows.Scan(&e.Seq, &e.Type, &e.AccountDID, &at, &raw); err != nil {
			return nil, err
		}
		e.At = fromMicros(at)
		if err := json.Unmarshal([]byte(raw), &e.Payload); err != nil {
			return nil, fmt.Errorf("event %d: %w", e.Seq, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// withEvent runs fn and appends an event in the same transaction.
func (d *DB) withEvent(ctx context.Context, typ, accountDID string, payload map[string]any, fn func(ctx context.Context) error) error {
	return d.InTx(ctx, func(ctx context.Context) error {
		if err := fn(ctx); err != nil {
			return err
		}
		return d.AppendEvent(ctx, typ, accountDID, time.Now().UTC(), payload)
	})
}
