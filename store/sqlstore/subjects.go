package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
)

var _ federation.SubjectStore = (*DB)(nil)

// ReplicaSubject returns the sub learned from the home of a replicated
// account for a sector, or store.ErrNotFound.
func (d *DB) ReplicaSubject(ctx context.Context, accountDID, sector string) (string, error) {
	var sub string
	err := d.q(ctx).QueryRowContext(ctx, `SELECT subject FROM replica_subjects WHERE account_did = $1 AND sector = $2`,
		accountDID, sector).Scan(&sub)
	if err != nil {
		return "", fmt.Errorf("replica subject: %w", mapErr(err))
	}
	return sub, nil
}

// PutReplicaSubject records the sub of a replicated account for a sector
// (replacing one recorded before). The row goes with the account.
func (d *DB) PutReplicaSubject(ctx context.Context, accountDID, sector, sub string, at time.Time) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO replica_subjects (account_did, sector, subject, learned_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (account_did, sector) DO UPDATE SET subject = EXCLUDED.subject, learned_at = EXCLUDED.learned_at`,
		accountDID, sector, sub, toMicros(at))
	if err != nil {
		return fmt.Errorf("put replica subject: %w", err)
	}
	return nil
}

// ReplicasWithSecret returns, by DID after after, up to limit replicated
// accounts (homed on another cloud than home) that still hold a pairwise
// secret, as replicas made before peers stopped receiving it do.
func (d *DB) ReplicasWithSecret(ctx context.Context, home, after string, limit int) ([]*identity.Account, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT `+accountCols+` FROM accounts
		WHERE home_issuer <> $1 AND home_issuer <> '' AND pairwise_secret_sealed IS NOT NULL AND did > $2 ORDER BY did LIMIT $3`, home, after, limit)
	if err != nil {
		return nil, fmt.Errorf("replicas with a secret: %w", err)
	}
	defer rows.Close()
	var out []*identity.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// DropReplicaSecret removes the pairwise secret of a replicated account
// (homed on another cloud than home); an account homed here keeps its.
func (d *DB) DropReplicaSecret(ctx context.Context, did, home string) error {
	_, err := d.q(ctx).ExecContext(ctx, `UPDATE accounts SET pairwise_secret_sealed = NULL
		WHERE did = $1 AND home_issuer <> $2 AND home_issuer <> ''`, did, home)
	if err != nil {
		return fmt.Errorf("drop replica secret: %w", err)
	}
	d.replicaChanged(ctx)
	return nil
}
