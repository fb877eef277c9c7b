package sqlstore

import (
	"context"
	"fmt"

	"github.com/onecommons/commonsid/access"
	"github.com/onecommons/commonsid/store"
)

var _ access.Store = (*DB)(nil)

// GetAccess returns an account's contribution grant.
func (d *DB) GetAccess(ctx context.Context, did string) (*access.Grant, error) {
	var (
		g            access.Grant
		exp, written int64
	)
	err := d.q(ctx).QueryRowContext(ctx, `SELECT account_did, level, expires_at, source, set_at, notice_id
		FROM account_access WHERE account_did = $1`, did).Scan(&g.AccountDID, &g.Level, &exp, &g.Source, &written, &g.NoticeID)
	if err != nil {
		return nil, fmt.Errorf("get access: %w", mapErr(err))
	}
	if exp != 0 {
		g.ExpiresAt = fromMicros(exp)
	}
	g.SetAt = fromMicros(written)
	return &g, nil
}

// SetAccess stores the grant of an account homed here and announces the
// account as updated, recording the notice that set it, if any, in the same
// transaction (a notice id recorded before is store.ErrAlreadyExists).
func (d *DB) SetAccess(ctx context.Context, g *access.Grant) error {
	return d.InTx(ctx, func(ctx context.Context) error {
		if g.NoticeID != "" {
			_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO access_notices (source, notice_id, account_did, received_at)
				VALUES ($1, $2, $3, $4)`, g.Source, g.NoticeID, g.AccountDID, toMicros(g.SetAt))
			if _, dup := uniqueViolation(err); dup {
				return &store.DuplicateError{Entity: "notice", Field: "notice_id"}
			}
			if err != nil {
				return fmt.Errorf("record notice: %w", err)
			}
		}
		if err := d.putAccess(ctx, g); err != nil {
			return err
		}
		return d.AppendEvent(ctx, "account.updated", g.AccountDID, g.SetAt, nil)
	})
}

// PutReplicaAccess stores (nil: removes) the grant a replica's home sent.
func (d *DB) PutReplicaAccess(ctx context.Context, did string, g *access.Grant) error {
	if g == nil {
		_, err := d.q(ctx).ExecContext(ctx, `DELETE FROM account_access WHERE account_did = $1`, did)
		if err != nil {
			return fmt.Errorf("drop replica access: %w", err)
		}
		return nil
	}
	cp := *g
	cp.AccountDID = did
	return d.putAccess(ctx, &cp)
}

func (d *DB) putAccess(ctx context.Context, g *access.Grant) error {
	var exp int64
	if !g.ExpiresAt.IsZero() {
		exp = toMicros(g.ExpiresAt)
	}
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO account_access (account_did, level, expires_at, source, set_at, notice_id)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (account_did) DO UPDATE SET level = excluded.level, expires_at = excluded.expires_at,
			source = excluded.source, set_at = excluded.set_at, notice_id = excluded.notice_id`,
		g.AccountDID, g.Level, exp, g.Source, toMicros(g.SetAt), g.NoticeID)
	if err != nil {
		return fmt.Errorf("put access: %w", err)
	}
	return nil
}
