package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

var _ identity.SessionStore = (*DB)(nil)

const sessionCols = `id_hash, account_did, auth_time, amr, created_at, last_seen_at, expires_at, user_agent, ip`

// sessionRow is where a row of sessionCols is scanned.
type sessionRow struct {
	x                            identity.Session
	amr                          string
	auth, created, seen, expires int64
}

func (r *sessionRow) dests() []any {
	return []any{&r.x.IDHash, &r.x.AccountDID, &r.auth, &r.amr, &r.created, &r.seen, &r.expires, &r.x.UserAgent, &r.x.IP}
}

func (r *sessionRow) session() *identity.Session {
	x := r.x
	if r.amr != "" {
		x.AMR = strings.Split(r.amr, " ")
	}
	x.AuthTime, x.CreatedAt, x.LastSeenAt, x.ExpiresAt = fromMicros(r.auth), fromMicros(r.created), fromMicros(r.seen), fromMicros(r.expires)
	return &x
}

func scanSession(s scanner) (*identity.Session, error) {
	var r sessionRow
	if err := s.Scan(r.dests()...); err != nil {
		return nil, mapErr(err)
	}
	return r.session(), nil
}

// GetSessionAccount returns a session and its account in one query.
func (d *DB) GetSessionAccount(ctx context.Context, idHash string) (*identity.Session, *identity.Account, error) {
	var (
		sr sessionRow
		ar accountRow
	)
	err := d.q(ctx).QueryRowContext(ctx, `SELECT s.`+strings.ReplaceAll(sessionCols, ", ", ", s.")+`, a.`+strings.ReplaceAll(strings.Join(strings.Fields(accountCols), " "), ", ", ", a.")+`
		FROM browser_sessions s JOIN accounts a ON a.did = s.account_did WHERE s.id_hash = $1`, idHash).Scan(append(sr.dests(), ar.dests()...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("session: %w", mapErr(err))
	}
	return sr.session(), ar.account(), nil
}

// CreateSession stores a new browser session.
func (d *DB) CreateSession(ctx context.Context, s *identity.Session) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO browser_sessions (`+sessionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		s.IDHash, s.AccountDID, toMicros(s.AuthTime), strings.Join(s.AMR, " "), toMicros(s.CreatedAt), toMicros(s.LastSeenAt),
		toMicros(s.ExpiresAt), s.UserAgent, s.IP)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// GetSession returns a session by the hash of its token.
func (d *DB) GetSession(ctx context.Context, idHash string) (*identity.Session, error) {
	s, err := scanSession(d.q(ctx).QueryRowContext(ctx, `SELECT `+sessionCols+` FROM browser_sessions WHERE id_hash = $1`, idHash))
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return s, nil
}

// TouchSession records use of a session.
func (d *DB) TouchSession(ctx context.Context, idHash string, at time.Time) error {
	_, err := d.q(ctx).ExecContext(ctx, `UPDATE browser_sessions SET last_seen_at = $2 WHERE id_hash = $1`, idHash, toMicros(at))
	return err
}

// DeleteSession removes a session.
func (d *DB) DeleteSession(ctx context.Context, idHash string) error {
	res, err := d.q(ctx).ExecContext(ctx, `DELETE FROM browser_sessions WHERE id_hash = $1`, idHash)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// ListSessions returns an account's sessions, newest first.
func (d *DB) ListSessions(ctx context.Context, did string) ([]*identity.Session, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT `+sessionCols+` FROM browser_sessions WHERE account_did = $1 ORDER BY created_at DESC`, did)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	var out []*identity.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ReauthSession records a fresh authentication.
func (d *DB) ReauthSession(ctx context.Context, idHash string, at time.Time) error {
	res, err := d.q(ctx).ExecContext(ctx, `UPDATE browser_sessions SET auth_time = $2, last_seen_at = $2 WHERE id_hash = $1`, idHash, toMicros(at))
	if err != nil {
		return fmt.Errorf("reauth session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// DeleteSessionsOf deletes an account's sessions except keep.
func (d *DB) DeleteSessionsOf(ctx context.Context, did, keep string) (int, error) {
	res, err := d.q(ctx).ExecContext(ctx, `DELETE FROM browser_sessions WHERE account_did = $1 AND id_hash <> $2`, did, keep)
	if err != nil {
		return 0, fmt.Errorf("delete sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
