package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

var (
	_ identity.PasskeyStore  = (*DB)(nil)
	_ identity.CeremonyStore = (*DB)(nil)
)

// PutPasskeyUser stores the account's user handle unless it has one.
func (d *DB) PutPasskeyUser(ctx context.Context, did string, handle []byte) ([]byte, error) {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO passkey_users (account_did, user_handle) VALUES ($1, $2)
		ON CONFLICT (account_did) DO NOTHING`, did, handle)
	if _, ok := uniqueViolation(err); ok {
		return nil, &store.DuplicateError{Entity: "passkey user", Field: "user handle"}
	}
	if err != nil {
		return nil, fmt.Errorf("put passkey user: %w", err)
	}
	var h []byte
	if err := d.q(ctx).QueryRowContext(ctx, `SELECT user_handle FROM passkey_users WHERE account_did = $1`, did).Scan(&h); err != nil {
		return nil, fmt.Errorf("passkey user: %w", mapErr(err))
	}
	return h, nil
}

// PasskeyUser returns the account with this user handle.
func (d *DB) PasskeyUser(ctx context.Context, handle []byte) (string, error) {
	var did string
	if err := d.q(ctx).QueryRowContext(ctx, `SELECT account_did FROM passkey_users WHERE user_handle = $1`, handle).Scan(&did); err != nil {
		return "", fmt.Errorf("passkey user: %w", mapErr(err))
	}
	return did, nil
}

const passkeyCols = `credential_id, account_did, name, public_key, attestation_type, attestation_format, aaguid, sign_count,
	transports, attachment, user_verified, backup_eligible, backup_state, created_at, last_used_at`

func scanPasskey(s scanner) (*identity.Passkey, error) {
	var (
		p          identity.Passkey
		count      int64
		transports string
		created    int64
		used       sql.NullInt64
	)
	if err := s.Scan(&p.ID, &p.AccountDID, &p.Name, &p.PublicKey, &p.AttestationType, &p.AttestationFormat, &p.AAGUID, &count,
		&transports, &p.Attachment, &p.UserVerified, &p.BackupEligible, &p.BackupState, &created, &used); err != nil {
		return nil, mapErr(err)
	}
	p.SignCount, p.Transports = uint32(count), splitWords(transports)
	p.CreatedAt, p.LastUsedAt = fromMicros(created), fromMicrosPtr(used)
	return &p, nil
}

// CreatePasskey stores a new passkey.
func (d *DB) CreatePasskey(ctx context.Context, p *identity.Passkey) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO passkeys (`+passkeyCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		p.ID, p.AccountDID, p.Name, p.PublicKey, p.AttestationType, p.AttestationFormat, p.AAGUID, int64(p.SignCount),
		strings.Join(p.Transports, " "), p.Attachment, p.UserVerified, p.BackupEligible, p.BackupState,
		toMicros(p.CreatedAt), toMicrosPtr(p.LastUsedAt))
	if _, ok := uniqueViolation(err); ok {
		return &store.DuplicateError{Entity: "passkey", Field: "credential id"}
	}
	if err != nil {
		return fmt.Errorf("create passkey: %w", err)
	}
	return nil
}

// ListPasskeys returns an account's passkeys, oldest first.
func (d *DB) ListPasskeys(ctx context.Context, did string) ([]*identity.Passkey, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT `+passkeyCols+` FROM passkeys WHERE account_did = $1
		ORDER BY created_at, credential_id`, did)
	if err != nil {
		return nil, fmt.Errorf("list passkeys: %w", err)
	}
	defer rows.Close()
	var out []*identity.Passkey
	for rows.Next() {
		p, err := scanPasskey(rows)
		if err != nil {
			return nil, fmt.Errorf("list passkeys: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// RenamePasskey renames one of the account's passkeys.
func (d *DB) RenamePasskey(ctx context.Context, did string, id []byte, name string) error {
	res, err := d.q(ctx).ExecContext(ctx, `UPDATE passkeys SET name = $3 WHERE credential_id = $1 AND account_did = $2`, id, did, name)
	if err != nil {
		return fmt.Errorf("rename passkey: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("passkey: %w", store.ErrNotFound)
	}
	return nil
}

// DeletePasskey removes one of the account's passkeys.
func (d *DB) DeletePasskey(ctx context.Context, did string, id []byte) error {
	res, err := d.q(ctx).ExecContext(ctx, `DELETE FROM passkeys WHERE credential_id = $1 AND account_did = $2`, id, did)
	if err != nil {
		return fmt.Errorf("delete passkey: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("passkey: %w", store.ErrNotFound)
	}
	return nil
}

// RecordPasskeyUse stores the counter and backup state of a sign-in. The
// counter check and the update are one statement, so two sign-ins that
// present the same counter cannot both succeed.
func (d *DB) RecordPasskeyUse(ctx context.Context, id []byte, signCount uint32, backupState bool, at time.Time) error {
	res, err := d.q(ctx).ExecContext(ctx, `UPDATE passkeys SET sign_count = $2, backup_state = $3, last_used_at = $4
		WHERE credential_id = $1 AND (sign_count < $2 OR (sign_count = 0 AND $2 = 0))`,
		id, int64(signCount), backupState, toMicros(at))
	if err != nil {
		return fmt.Errorf("record passkey use: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var exists int
	if err := d.q(ctx).QueryRowContext(ctx, `SELECT 1 FROM passkeys WHERE credential_id = $1`, id).Scan(&exists); err != nil {
		return fmt.Errorf("passkey: %w", mapErr(err))
	}
	return fmt.Errorf("passkey signature counter did not advance: %w", store.ErrConflict)
}

// PutCeremony stores a ceremony in progress.
func (d *DB) PutCeremony(ctx context.Context, c *identity.Ceremony) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO webauthn_ceremonies (id_hash, kind, data, expires_at) VALUES ($1, $2, $3, $4)`,
		c.IDHash, c.Kind, c.Data, toMicros(c.ExpiresAt))
	if _, ok := uniqueViolation(err); ok {
		return &store.DuplicateError{Entity: "ceremony", Field: "id"}
	}
	if err != nil {
		return fmt.Errorf("put ceremony: %w", err)
	}
	return nil
}

// TakeCeremony deletes a live ceremony and returns it; of two concurrent
// takes only one gets it. It also drops expired ceremonies (abandoned ones
// are few and short-lived, so the table stays small without a sweeper).
func (d *DB) TakeCeremony(ctx context.Context, idHash, kind string, now time.Time) (*identity.Ceremony, error) {
	c := &identity.Ceremony{IDHash: idHash, Kind: kind}
	found := false
	err := d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM webauthn_ceremonies WHERE expires_at < $1`, toMicros(now)); err != nil {
			return fmt.Errorf("purge ceremonies: %w", err)
		}
		var exp int64
		err := tx.QueryRowContext(ctx, `DELETE FROM webauthn_ceremonies WHERE id_hash = $1 AND kind = $2
			RETURNING data, expires_at`, idHash, kind).Scan(&c.Data, &exp)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // commit the purge all the same
		}
		c.ExpiresAt, found = fromMicros(exp), err == nil
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("take ceremony: %w", err)
	}
	if !found {
		return nil, fmt.Errorf("ceremony: %w", store.ErrNotFound)
	}
	return c, nil
}

// GetPasskeyUserHandle returns an account's WebAuthn user handle, or
// store.ErrNotFound when it has none.
func (d *DB) GetPasskeyUserHandle(ctx context.Context, did string) ([]byte, error) {
	var h []byte
	if err := d.q(ctx).QueryRowContext(ctx, `SELECT user_handle FROM passkey_users WHERE account_did = $1`, did).Scan(&h); err != nil {
		return nil, fmt.Errorf("passkey user: %w", mapErr(err))
	}
	return h, nil
}
