package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Event is one entry of the cloud's event log.
type Event struct {
	Seq        int64
	Type       string
	AccountDID string
	At         time.Time
	Payload    map[string]any
}

// AppendEvent adds an event to the log (in the caller's transaction when
// ctx carries one). The payload must hold no personal data beyond what
// peers need.
func (d *DB) AppendEvent(ctx context.Context, typ, accountDID string, at time.Time, payload map[string]any) error {
	raw, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("event payload: %w", err)
	}
	if payload == nil {
		raw = []byte("{}")
	}
	if _, err := d.q(ctx).ExecContext(ctx, `INSERT INTO events (type, account_did, at, payload) VALUES ($1, $2, $3, $4)`,
		typ, accountDID, toMicros(at), string(raw)); err != nil {
		return fmt.Errorf("append event %s: %w", typ, err)
	}
	return nil
}

// ListEvents returns events after seq, oldest first.
func (d *DB) ListEvents(ctx context.Context, after int64, limit int) ([]Event, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
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
