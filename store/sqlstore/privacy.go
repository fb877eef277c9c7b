package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

var _ privacy.Store = (*DB)(nil)

func splitWords(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

const consentCols = `account_did, client_id, scopes, claims, subject_sector, granted_at, updated_at, expires_at, last_used_at, terms_hash`

func scanConsent(s scanner) (*privacy.Consent, error) {
	var (
		c                privacy.Consent
		scopes, claims   string
		granted, updated int64
		expires, used    sql.NullInt64
	)
	if err := s.Scan(&c.AccountDID, &c.ClientID, &scopes, &claims, &c.SubjectSector, &granted, &updated, &expires, &used, &c.TermsHash); err != nil {
		return nil, mapErr(err)
	}
	c.Scopes, c.Claims = splitWords(scopes), splitWords(claims)
	c.GrantedAt, c.UpdatedAt, c.ExpiresAt, c.LastUsedAt = fromMicros(granted), fromMicros(updated), fromMicrosPtr(expires), fromMicrosPtr(used)
	return &c, nil
}

// GetConsent returns a person's consent to a service.
func (d *DB) GetConsent(ctx context.Context, did, clientID string) (*privacy.Consent, error) {
	c, err := scanConsent(d.q(ctx).QueryRowContext(ctx, `SELECT `+consentCols+` FROM consents WHERE account_did = $1 AND client_id = $2`, did, clientID))
	if err != nil {
		return nil, fmt.Errorf("consent: %w", err)
	}
	return c, nil
}

// PutConsent creates or replaces a consent.
func (d *DB) PutConsent(ctx context.Context, c *privacy.Consent) error {
	return d.withEvent(ctx, "consent.granted", c.AccountDID, map[string]any{"client_id": c.ClientID}, func(ctx context.Context) error {
		return d.putConsent(ctx, c)
	})
}

func (d *DB) putConsent(ctx context.Context, c *privacy.Consent) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO consents (`+consentCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (account_did, client_id) DO UPDATE SET scopes = EXCLUDED.scopes, claims = EXCLUDED.claims,
		subject_sector = EXCLUDED.subject_sector, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at,
		terms_hash = EXCLUDED.terms_hash`,
		c.AccountDID, c.ClientID, strings.Join(c.Scopes, " "), strings.Join(c.Claims, " "), c.SubjectSector,
		toMicros(c.GrantedAt), toMicros(c.UpdatedAt), toMicrosPtr(c.ExpiresAt), toMicrosPtr(c.LastUsedAt), c.TermsHash)
	if err != nil {
		return fmt.Errorf("put consent: %w", err)
	}
	return nil
}

// DeleteConsent removes a consent.
func (d *DB) DeleteConsent(ctx context.Context, did, clientID string) error {
	return d.withEvent(ctx, "consent.revoked", did, map[string]any{"client_id": clientID}, func(ctx context.Context) error {
		return d.deleteConsent(ctx, did, clientID)
	})
}

func (d *DB) deleteConsent(ctx context.Context, did, clientID string) error {
	res, err := d.q(ctx).ExecContext(ctx, `DELETE FROM consents WHERE account_did = $1 AND client_id = $2`, did, clientID)
	if err != nil {
		return fmt.Errorf("delete consent: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// TouchConsent records the last use of a consent.
func (d *DB) TouchConsent(ctx context.Context, did, clientID string, at time.Time) error {
	_, err := d.q(ctx).ExecContext(ctx, `UPDATE consents SET last_used_at = $3 WHERE account_did = $1 AND client_id = $2`, did, clientID, toMicros(at))
	return err
}

// ListConsents returns a person's consents.
func (d *DB) ListConsents(ctx context.Context, did string) ([]*privacy.Consent, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT `+consentCols+` FROM consents WHERE account_did = $1 ORDER BY granted_at`, did)
	if err != nil {
		return nil, fmt.Errorf("list consents: %w", err)
	}
	defer rows.Close()
	var out []*privacy.Consent
	for rows.Next() {
		c, err := scanConsent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// AppendActivity adds an entry to the activity log and sets its ID.
//
// Inside a transaction the entry is part of it. Otherwise entries appended
// at the same moment by concurrent requests are written together, in one
// INSERT and one commit (group commit): each call still returns only once
// its own entry is committed, and entries are numbered in the order of the
// calls that wrote them.
func (d *DB) AppendActivity(ctx context.Context, a *privacy.Activity) error {
	detail := []byte("{}")
	if len(a.Detail) > 0 {
		var err error
		if detail, err = json.Marshal(a.Detail); err != nil {
			return fmt.Errorf("activity detail: %w", err)
		}
	}
	p := &pendingActivity{a: a, detail: string(detail)}
	var err error
	if _, inTx := txOf(ctx); inTx {
		err = d.insertActivities(ctx, d.q(ctx), []*pendingActivity{p})
	} else {
		err = d.activity.add(p, func(batch []*pendingActivity) error {
			return d.writeBatch(ctx, func(ctx context.Context, q querier) error { return d.insertActivities(ctx, q, batch) })
		})
	}
	if err != nil {
		return fmt.Errorf("append activity: %w", err)
	}
	return nil
}

// insertActivities writes entries with one INSERT and gives each its ID.
// Both dialects number the rows of one INSERT in increasing order of its
// VALUES list, whatever order RETURNING gives them back in.
func (d *DB) insertActivities(ctx context.Context, q querier, batch []*pendingActivity) error {
	var b strings.Builder
	b.WriteString(`INSERT INTO activity (account_did, at, kind, client_id, detail, ip, user_agent) VALUES `)
	args := make([]any, 0, 7*len(batch))
	for i, p := range batch {
		if i > 0 {
			b.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7)
		a := p.a
		args = append(args, a.AccountDID, toMicros(a.At), a.Kind, a.ClientID, p.detail, a.IP, a.UserAgent)
	}
	b.WriteString(" RETURNING id")
	rows, err := q.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	ids := make([]int64, 0, len(batch))
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(ids) != len(batch) {
		return fmt.Errorf("%d ids returned for %d entries", len(ids), len(batch))
	}
	slices.Sort(ids)
	for i, p := range batch {
		p.a.ID = ids[i]
	}
	return nil
}

// pendingActivity is an entry waiting to be written.
type pendingActivity struct {
	a      *privacy.Activity
	detail string
}

// ListActivity returns entries newest first.
func (d *DB) ListActivity(ctx context.Context, did string, beforeID int64, limit int) ([]*privacy.Activity, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	if beforeID <= 0 {
		beforeID = 1<<63 - 1
	}
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT id, account_did, at, kind, client_id, detail, ip, user_agent FROM activity
		WHERE account_did = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, did, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("list activity: %w", err)
	}
	defer rows.Close()
	var out []*privacy.Activity
	for rows.Next() {
		var (
			a      privacy.Activity
			at     int64
			detail string
		)
		if err := rows.Scan(&a.ID, &a.AccountDID, &at, &a.Kind, &a.ClientID, &detail, &a.IP, &a.UserAgent); err != nil {
			return nil, err
		}
		a.At = fromMicros(at)
		if err := json.Unmarshal([]byte(detail), &a.Detail); err != nil {
			return nil, fmt.Errorf("activity %d detail: %w", a.ID, err)
		}
		out = append(out, &a)
	}
	return out, rows.Err()
}

// GetSettings returns a person's privacy settings.
func (d *DB) GetSettings(ctx context.Context, did string) (*privacy.Settings, error) {
	var raw string
	if err := d.q(ctx).QueryRowContext(ctx, `SELECT settings FROM privacy_settings WHERE account_did = $1`, did).Scan(&raw); err != nil {
		return nil, fmt.Errorf("privacy settings: %w", mapErr(err))
	}
	var s privacy.Settings
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return nil, fmt.Errorf("privacy settings: %w", err)
	}
	return &s, nil
}

// PutSettings stores a person's privacy settings.
func (d *DB) PutSettings(ctx context.Context, did string, s *privacy.Settings, at time.Time) error {
	return d.withEvent(ctx, "privacy.updated", did, nil, func(ctx context.Context) error {
		return d.putSettings(ctx, did, s, at)
	})
}

func (d *DB) putSettings(ctx context.Context, did string, s *privacy.Settings, at time.Time) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = d.q(ctx).ExecContext(ctx, `INSERT INTO privacy_settings (account_did, version, settings, updated_at, activity_retention_days)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (account_did) DO UPDATE SET version = EXCLUDED.version, settings = EXCLUDED.settings,
		updated_at = EXCLUDED.updated_at, activity_retention_days = EXCLUDED.activity_retention_days`,
		did, s.Version, string(raw), toMicros(at), s.ActivityRetentionDays)
	if err != nil {
		return fmt.Errorf("put privacy settings: %w", err)
	}
	return nil
}

const microsPerDay = 24 * 60 * 60 * 1_000_000

// PruneActivity deletes activity older than each person's retention.
func (d *DB) PruneActivity(ctx context.Context, now time.Time) (int64, error) {
	res, err := d.q(ctx).ExecContext(ctx, `DELETE FROM activity WHERE
		COALESCE((SELECT p.activity_retention_days FROM privacy_settings p WHERE p.account_did = activity.account_did), CAST($2 AS INTEGER)) > 0
		AND at < CAST($1 AS BIGINT) - CAST($3 AS BIGINT) * COALESCE((SELECT p.activity_retention_days FROM privacy_settings p WHERE p.account_did = activity.account_did), CAST($2 AS INTEGER))`,
		toMicros(now), privacy.DefaultRetentionDays, int64(microsPerDay))
	if err != nil {
		return 0, fmt.Errorf("prune activity: %w", err)
	}
	return res.RowsAffected()
}

// ForgetAccount deletes everything kept about an account but its row:
// codes and tokens, sessions, consents, activity and settings.
func (d *DB) ForgetAccount(ctx context.Context, did string) error {
	return d.InTx(ctx, func(ctx context.Context) error {
		if _, err := d.DeleteAllGrantsOf(ctx, did); err != nil {
			return err
		}
		if _, err := d.DeleteSessionsOf(ctx, did, ""); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM consents WHERE account_did = $1`,
			`DELETE FROM activity WHERE account_did = $1`,
			`DELETE FROM privacy_settings WHERE account_did = $1`,
			`DELETE FROM account_tokens WHERE account_did = $1`,
			`DELETE FROM account_access WHERE account_did = $1`,
			`DELETE FROM access_notices WHERE account_did = $1`,
			// The event log keeps revocations (peers still need them)
			// without the DID, and nothing else of the account.
			`UPDATE events SET account_did = '' WHERE account_did = $1 AND type = 'token.revoked'`,
			`DELETE FROM events WHERE account_did = $1 AND type NOT IN ('account.deleted', 'account.moved')`,
		} {
			if _, err := d.q(ctx).ExecContext(ctx, q, did); err != nil {
				return fmt.Errorf("forget account: %w", err)
			}
		}
		return nil
	})
}
