package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

var _ identity.MFAStore = (*DB)(nil)

// PutTOTP stores a new enrolment, replacing an unconfirmed one.
func (d *DB) PutTOTP(ctx context.Context, f *identity.TOTPFactor) error {
	res, err := d.q(ctx).ExecContext(ctx, `INSERT INTO mfa_totp (account_did, secret_sealed, created_at, confirmed_at, last_step)
		VALUES ($1, $2, $3, NULL, 0)
		ON CONFLICT (account_did) DO UPDATE SET secret_sealed = excluded.secret_sealed, created_at = excluded.created_at, last_step = 0
		WHERE mfa_totp.confirmed_at IS NULL`, f.AccountDID, f.SecretSealed, toMicros(f.CreatedAt))
	if err != nil {
		return fmt.Errorf("put authenticator: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("put authenticator: %w", err)
	} else if n == 0 {
		return &store.DuplicateError{Entity: "authenticator", Field: "account"}
	}
	return nil
}

// GetTOTP returns the account's authenticator app.
func (d *DB) GetTOTP(ctx context.Context, did string) (*identity.TOTPFactor, error) {
	var (
		f         identity.TOTPFactor
		created   int64
		confirmed sql.NullInt64
	)
	err := d.q(ctx).QueryRowContext(ctx, `SELECT account_did, secret_sealed, created_at, confirmed_at, last_step
		FROM mfa_totp WHERE account_did = $1`, did).Scan(&f.AccountDID, &f.SecretSealed, &created, &confirmed, &f.LastStep)
	if err != nil {
		return nil, fmt.Errorf("get authenticator: %w", mapErr(err))
	}
	f.CreatedAt, f.ConfirmedAt = fromMicros(created), fromMicrosPtr(confirmed)
	return &f, nil
}

// UseTOTPStep records an accepted time step, refusing one not after the
// last (store.ErrConflict): a single conditional update, so that of two
// concurrent uses of one code only one succeeds.
func (d *DB) UseTOTPStep(ctx context.Context, did string, step int64, confirm bool, at time.Time) error {
	var (
		res sql.Result
		err error
	)
	if confirm {
		res, err = d.q(ctx).ExecContext(ctx, `UPDATE mfa_totp SET last_step = $2, confirmed_at = $3
			WHERE account_did = $1 AND confirmed_at IS NULL AND last_step < $2`, did, step, toMicros(at))
	} else {
		res, err = d.q(ctx).ExecContext(ctx, `UPDATE mfa_totp SET last_step = $2
			WHERE account_did = $1 AND confirmed_at IS NOT NULL AND last_step < $2`, did, step)
	}
	if err != nil {
		return fmt.Errorf("use authenticator code: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("use authenticator code: %w", err)
	}
	if n == 1 {
		return nil
	}
	f, err := d.GetTOTP(ctx, did)
	if err != nil {
		return err
	}
	if (f.ConfirmedAt == nil) != confirm {
		return fmt.Errorf("use authenticator code: %w", store.ErrNotFound)
	}
	return fmt.Errorf("authenticator code of step %d already used: %w", step, store.ErrConflict)
}

// DeleteTOTP removes the account's authenticator app.
func (d *DB) DeleteTOTP(ctx context.Context, did string) error {
	res, err := d.q(ctx).ExecContext(ctx, `DELETE FROM mfa_totp WHERE account_did = $1`, did)
	if err != nil {
		return fmt.Errorf("delete authenticator: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete authenticator: %w", err)
	} else if n == 0 {
		return fmt.Errorf("delete authenticator: %w", store.ErrNotFound)
	}
	return nil
}

// ReplaceRecoveryCodes replaces the account's recovery codes, in one
// transaction.
func (d *DB) ReplaceRecoveryCodes(ctx context.Context, did string, hashes []string, at time.Time) error {
	return d.InTx(ctx, func(ctx context.Context) error {
		if _, err := d.q(ctx).ExecContext(ctx, `DELETE FROM mfa_recovery_codes WHERE account_did = $1`, did); err != nil {
			return fmt.Errorf("replace recovery codes: %w", err)
		}
		for _, h := range hashes {
			_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO mfa_recovery_codes (account_did, code_hash, created_at, used_at)
				VALUES ($1, $2, $3, NULL)`, did, h, toMicros(at))
			if _, ok := uniqueViolation(err); ok {
				return &store.DuplicateError{Entity: "recovery code", Field: "code"}
			}
			if err != nil {
				return fmt.Errorf("replace recovery codes: %w", err)
			}
		}
		return nil
	})
}

// UseRecoveryCode spends an unused code (store.ErrNotFound otherwise).
func (d *DB) UseRecoveryCode(ctx context.Context, did, hash string, at time.Time) error {
	res, err := d.q(ctx).ExecContext(ctx, `UPDATE mfa_recovery_codes SET used_at = $3
		WHERE account_did = $1 AND code_hash = $2 AND used_at IS NULL`, did, hash, toMicros(at))
	if err != nil {
		return fmt.Errorf("use recovery code: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("use recovery code: %w", err)
	} else if n == 0 {
		return fmt.Errorf("use recovery code: %w", store.ErrNotFound)
	}
	return nil
}

// CountRecoveryCodes returns the unused and all recovery codes.
func (d *DB) CountRecoveryCodes(ctx context.Context, did string) (unused, total int, err error) {
	err = d.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*), COUNT(*) - COUNT(used_at) FROM mfa_recovery_codes WHERE account_did = $1`,
		did).Scan(&total, &unused)
	if err != nil {
		return 0, 0, fmt.Errorf("count recovery codes: %w", err)
	}
	return unused, total, nil
}

// SetMFARequired records whether the account requires a second factor.
func (d *DB) SetMFARequired(ctx context.Context, did string, required bool, at time.Time) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO mfa_settings (account_did, required, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (account_did) DO UPDATE SET required = excluded.required, updated_at = excluded.updated_at`,
		did, required, toMicros(at))
	if err != nil {
		return fmt.Errorf("set second factor required: %w", mapErr(err))
	}
	return nil
}

// MFARequired reports whether the account requires a second factor.
func (d *DB) MFARequired(ctx context.Context, did string) (bool, error) {
	var req bool
	err := d.q(ctx).QueryRowContext(ctx, `SELECT required FROM mfa_settings WHERE account_did = $1`, did).Scan(&req)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("second factor required: %w", err)
	}
	return req, nil
}

// HasSecondFactor reports whether the account has an active authenticator
// app or a passkey.
func (d *DB) HasSecondFactor(ctx context.Context, did string) (bool, error) {
	var n int
	err := d.q(ctx).QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM mfa_totp WHERE account_did = $1 AND confirmed_at IS NOT NULL) +
		(SELECT COUNT(*) FROM passkeys WHERE account_did = $1)`, did).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("second factors: %w", err)
	}
	return n > 0, nil
}
