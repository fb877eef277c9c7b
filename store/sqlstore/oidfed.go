package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/oidfed"
	"github.com/onecommons/commonsid/store"
)

var _ oidfed.Store = (*DB)(nil)

func jwksText(ks jose.JSONWebKeySet) (string, error) {
	b, err := json.Marshal(ks)
	return string(b), err
}

// PutSubordinate adds or updates a subordinate, keeping added_at.
func (d *DB) PutSubordinate(ctx context.Context, s *oidfed.Subordinate) error {
	ks, err := jwksText(s.JWKS)
	if err != nil {
		return err
	}
	meta := ""
	if s.Metadata != nil {
		b, err := json.Marshal(s.Metadata)
		if err != nil {
			return err
		}
		meta = string(b)
	}
	_, err = d.q(ctx).ExecContext(ctx, `INSERT INTO oidfed_subordinates (entity_id, jwks, metadata, added_at, updated_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (entity_id) DO UPDATE SET jwks = EXCLUDED.jwks, metadata = EXCLUDED.metadata, updated_at = EXCLUDED.updated_at`,
		s.EntityID, ks, meta, toMicros(s.AddedAt), toMicros(s.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put subordinate: %w", err)
	}
	return nil
}

const subordinateCols = `entity_id, jwks, metadata, added_at, updated_at`

func scanSubordinate(sc interface{ Scan(...any) error }) (*oidfed.Subordinate, error) {
	var (
		s          oidfed.Subordinate
		ks, meta   string
		added, upd int64
	)
	if err := sc.Scan(&s.EntityID, &ks, &meta, &added, &upd); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(ks), &s.JWKS); err != nil {
		return nil, fmt.Errorf("subordinate %s: jwks: %w", s.EntityID, err)
	}
	if meta != "" {
		if err := json.Unmarshal([]byte(meta), &s.Metadata); err != nil {
			return nil, fmt.Errorf("subordinate %s: metadata: %w", s.EntityID, err)
		}
	}
	s.AddedAt, s.UpdatedAt = fromMicros(added), fromMicros(upd)
	return &s, nil
}

// GetSubordinate returns a subordinate or store.ErrNotFound.
func (d *DB) GetSubordinate(ctx context.Context, entityID string) (*oidfed.Subordinate, error) {
	s, err := scanSubordinate(d.q(ctx).QueryRowContext(ctx, `SELECT `+subordinateCols+` FROM oidfed_subordinates WHERE entity_id = $1`, entityID))
	if err != nil {
		return nil, fmt.Errorf("subordinate %s: %w", entityID, mapErr(err))
	}
	return s, nil
}

// ListSubordinates returns every subordinate by entity ID.
func (d *DB) ListSubordinates(ctx context.Context) ([]*oidfed.Subordinate, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT `+subordinateCols+` FROM oidfed_subordinates ORDER BY entity_id`)
	if err != nil {
		return nil, fmt.Errorf("list subordinates: %w", err)
	}
	defer rows.Close()
	var out []*oidfed.Subordinate
	for rows.Next() {
		s, err := scanSubordinate(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// DeleteSubordinate removes a subordinate or returns store.ErrNotFound.
func (d *DB) DeleteSubordinate(ctx context.Context, entityID string) error {
	return d.deleteOne(ctx, `DELETE FROM oidfed_subordinates WHERE entity_id = $1`, entityID)
}

func (d *DB) deleteOne(ctx context.Context, q, key string) error {
	res, err := d.q(ctx).ExecContext(ctx, q, key)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// PutAnchor adds or updates an anchor (joined_at of an existing one is kept).
func (d *DB) PutAnchor(ctx context.Context, a *oidfed.Anchor) error {
	ks, err := jwksText(a.JWKS)
	if err != nil {
		return err
	}
	_, err = d.q(ctx).ExecContext(ctx, `INSERT INTO oidfed_anchors (entity_id, jwks, trust_mark, joined_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (entity_id) DO UPDATE SET jwks = EXCLUDED.jwks, trust_mark = EXCLUDED.trust_mark`,
		a.EntityID, ks, a.TrustMark, toMicros(a.JoinedAt))
	if err != nil {
		return fmt.Errorf("put anchor: %w", err)
	}
	return nil
}

// ListAnchors returns the anchors this cloud joined.
func (d *DB) ListAnchors(ctx context.Context) ([]*oidfed.Anchor, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT entity_id, jwks, trust_mark, joined_at FROM oidfed_anchors ORDER BY entity_id`)
	if err != nil {
		return nil, fmt.Errorf("list anchors: %w", err)
	}
	defer rows.Close()
	var out []*oidfed.Anchor
	for rows.Next() {
		var (
			a  oidfed.Anchor
			ks string
			at int64
		)
		if err := rows.Scan(&a.EntityID, &ks, &a.TrustMark, &at); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(ks), &a.JWKS); err != nil {
			return nil, fmt.Errorf("anchor %s: jwks: %w", a.EntityID, err)
		}
		a.JoinedAt = fromMicros(at)
		out = append(out, &a)
	}
	return out, rows.Err()
}

// DeleteAnchor removes an anchor or returns store.ErrNotFound.
func (d *DB) DeleteAnchor(ctx context.Context, entityID string) error {
	return d.deleteOne(ctx, `DELETE FROM oidfed_anchors WHERE entity_id = $1`, entityID)
}

// PutMember records or updates a peer trusted through a commons.
func (d *DB) PutMember(ctx context.Context, m *oidfed.Member) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO oidfed_members (issuer, anchor, expires_at, checked_at, last_error) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (issuer) DO UPDATE SET anchor = EXCLUDED.anchor, expires_at = EXCLUDED.expires_at,
			checked_at = EXCLUDED.checked_at, last_error = EXCLUDED.last_error`,
		m.Issuer, m.Anchor, toMicros(m.Expiry), toMicros(m.CheckedAt), m.LastError)
	if err != nil {
		return fmt.Errorf("put member: %w", err)
	}
	return nil
}

// ListMembers returns the peers trusted through a commons.
func (d *DB) ListMembers(ctx context.Context) ([]*oidfed.Member, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT issuer, anchor, expires_at, checked_at, last_error FROM oidfed_members ORDER BY issuer`)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	var out []*oidfed.Member
	for rows.Next() {
		var (
			m        oidfed.Member
			exp, chk int64
		)
		if err := rows.Scan(&m.Issuer, &m.Anchor, &exp, &chk, &m.LastError); err != nil {
			return nil, err
		}
		m.Expiry, m.CheckedAt = fromMicros(exp), fromMicros(chk)
		out = append(out, &m)
	}
	return out, rows.Err()
}

// DeleteMember forgets a member (nothing happens for an unknown one).
func (d *DB) DeleteMember(ctx context.Context, issuer string) error {
	if _, err := d.q(ctx).ExecContext(ctx, `DELETE FROM oidfed_members WHERE issuer = $1`, issuer); err != nil {
		return fmt.Errorf("delete member: %w", err)
	}
	return nil
}
