package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

var _ identity.DIDLogStore = (*DB)(nil)

// maxDIDLogPage bounds a page of ListDIDLogsHomedAt.
const maxDIDLogPage = 1000

const didLogCols = `scid, account_did, current_did, name, home_issuer, version, log, witness, escrow, updated_at`

// CreateAccountWithDIDLog inserts a new account and its did:webvh log in
// one transaction, with the account.created and did.log events and the
// account's DIDs in account_dids.
func (d *DB) CreateAccountWithDIDLog(ctx context.Context, a *identity.Account, l *identity.DIDLog) error {
	if l.DID != a.DID {
		return fmt.Errorf("DID log of %s given for account %s", l.DID, a.DID)
	}
	return d.InTx(ctx, func(ctx context.Context) error {
		if err := d.createAccount(ctx, a); err != nil {
			return err
		}
		ok, err := d.PutDIDLog(ctx, l, 0)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("DID log %s: %w", l.SCID, &store.DuplicateError{Entity: "DID log", Field: "scid"})
		}
		// did.log first: peers hold the log (from the authenticated feed)
		// before they check the account's signature on its other events.
		now := time.Now().UTC()
		if err := d.AppendEvent(ctx, "did.log", a.DID, now, map[string]any{"scid": l.SCID}); err != nil {
			return err
		}
		return d.AppendEvent(ctx, "account.created", a.DID, now, nil)
	})
}

// PutDIDLog stores l when the stored row of l.SCID is still at prevVersion
// (0: there is no row yet, and l is inserted); false, nil when it is not,
// and nothing is written. l.DID and l.CurrentDID are added to the
// account's DIDs. A missing SCID is taken from l.DID, a missing CurrentDID
// is l.DID.
func (d *DB) PutDIDLog(ctx context.Context, l *identity.DIDLog, prevVersion int) (bool, error) {
	if l.DID == "" {
		return false, errors.New("DID log without an account DID")
	}
	if l.CurrentDID == "" {
		l.CurrentDID = l.DID
	}
	if l.SCID == "" {
		id, err := webvh.ParseDID(l.CurrentDID)
		if err != nil {
			return false, fmt.Errorf("DID log of %s: %w", l.DID, err)
		}
		l.SCID = id.SCID
	}
	if prevVersion < 0 {
		return false, fmt.Errorf("DID log %s: negative previous version %d", l.SCID, prevVersion)
	}
	var stored bool
	err := d.InTx(ctx, func(ctx context.Context) error {
		var (
			res sql.Result
			err error
		)
		args := []any{l.SCID, l.DID, l.CurrentDID, l.Name, l.HomeIssuer, l.Version, string(l.Log),
			string(l.Witness), nonNilBytes(l.Escrow), toMicros(l.UpdatedAt)}
		if prevVersion == 0 {
			res, err = d.q(ctx).ExecContext(ctx, `INSERT INTO did_logs (`+didLogCols+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (scid) DO NOTHING`, args...)
		} else {
			res, err = d.q(ctx).ExecContext(ctx, `UPDATE did_logs SET account_did = $2, current_did = $3, name = $4,
				home_issuer = $5, version = $6, log = $7, witness = $8, escrow = $9, updated_at = $10
				WHERE scid = $1 AND version = $11`, append(args, prevVersion)...)
		}
		if _, ok := uniqueViolation(err); ok {
			return &store.DuplicateError{Entity: "DID log", Field: "account_did"}
		}
		if err != nil {
			return fmt.Errorf("store DID log %s: %w", l.SCID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store DID log %s: %w", l.SCID, err)
		}
		if n == 0 {
			return nil
		}
		stored = true
		at := toMicros(l.UpdatedAt)
		for _, didID := range []string{l.DID, l.CurrentDID} {
			if _, err := d.q(ctx).ExecContext(ctx, `INSERT INTO account_dids (did, account_did, added_at)
				VALUES ($1, $2, $3) ON CONFLICT (did) DO NOTHING`, didID, l.DID, at); err != nil {
				return fmt.Errorf("account DID %s: %w", didID, err)
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return stored, nil
}

// GetDIDLog returns the did:webvh log of the account whose first DID is
// accountDID.
func (d *DB) GetDIDLog(ctx context.Context, accountDID string) (*identity.DIDLog, error) {
	l, err := d.getDIDLog(ctx, `SELECT `+didLogCols+` FROM did_logs WHERE account_did = $1`, accountDID)
	if err != nil {
		return nil, fmt.Errorf("DID log of %s: %w", accountDID, err)
	}
	return l, nil
}

// GetDIDLogBySCID returns the did:webvh log of scid.
func (d *DB) GetDIDLogBySCID(ctx context.Context, scid string) (*identity.DIDLog, error) {
	l, err := d.getDIDLog(ctx, `SELECT `+didLogCols+` FROM did_logs WHERE scid = $1`, scid)
	if err != nil {
		return nil, fmt.Errorf("DID log %s: %w", scid, err)
	}
	return l, nil
}

// GetDIDLogByName returns the did:webvh log served under name. Names are
// random, so two rows share one only by accident or malice: the row whose
// account is here with the log's home is preferred, then any row with an
// account here, then the newest.
func (d *DB) GetDIDLogByName(ctx context.Context, name string) (*identity.DIDLog, error) {
	l, err := d.getDIDLog(ctx, `SELECT `+didLogCols+` FROM did_logs l WHERE name = $1
		ORDER BY
			CASE WHEN EXISTS (SELECT 1 FROM accounts a WHERE a.did = l.account_did AND a.home_issuer = l.home_issuer) THEN 0
			     WHEN EXISTS (SELECT 1 FROM accounts a WHERE a.did = l.account_did) THEN 1
			     ELSE 2 END,
			updated_at DESC, scid
		LIMIT 1`, name)
	if err != nil {
		return nil, fmt.Errorf("DID log %s: %w", name, err)
	}
	return l, nil
}

// AccountForDID returns the account (its first DID) that has or had anyDID.
func (d *DB) AccountForDID(ctx context.Context, anyDID string) (string, error) {
	var acct string
	err := d.q(ctx).QueryRowContext(ctx, `SELECT account_did FROM account_dids WHERE did = $1`, anyDID).Scan(&acct)
	if errors.Is(err, sql.ErrNoRows) {
		err = d.q(ctx).QueryRowContext(ctx, `SELECT did FROM accounts WHERE did = $1`, anyDID).Scan(&acct)
	}
	if err != nil {
		return "", fmt.Errorf("account of %s: %w", anyDID, mapErr(err))
	}
	return acct, nil
}

// AccountDIDs returns every DID the account has had, oldest first (its
// first DID before the others). An account without recorded DIDs has its
// own DID only; an unknown one has none.
func (d *DB) AccountDIDs(ctx context.Context, accountDID string) ([]string, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT did FROM account_dids WHERE account_did = $1
		ORDER BY added_at, CASE WHEN did = account_did THEN 0 ELSE 1 END, did`, accountDID)
	if err != nil {
		return nil, fmt.Errorf("DIDs of %s: %w", accountDID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("DIDs of %s: %w", accountDID, err)
	}
	if len(out) == 0 {
		var s string
		err := d.q(ctx).QueryRowContext(ctx, `SELECT did FROM accounts WHERE did = $1`, accountDID).Scan(&s)
		if err == nil {
			out = []string{s}
		} else if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("DIDs of %s: %w", accountDID, err)
		}
	}
	return out, nil
}

// ListDIDLogsHomedAt returns the logs whose home is issuer, in SCID order
// after afterSCID; limit is bounded (at most 1000).
func (d *DB) ListDIDLogsHomedAt(ctx context.Context, issuer, afterSCID string, limit int) ([]*identity.DIDLog, error) {
	if limit <= 0 || limit > maxDIDLogPage {
		limit = maxDIDLogPage
	}
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT `+didLogCols+` FROM did_logs
		WHERE home_issuer = $1 AND scid > $2 ORDER BY scid LIMIT $3`, issuer, afterSCID, limit)
	if err != nil {
		return nil, fmt.Errorf("DID logs homed at %s: %w", issuer, err)
	}
	defer rows.Close()
	var out []*identity.DIDLog
	for rows.Next() {
		l, err := scanDIDLog(rows)
		if err != nil {
			return nil, fmt.Errorf("DID logs homed at %s: %w", issuer, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("DID logs homed at %s: %w", issuer, err)
	}
	return out, nil
}

func (d *DB) getDIDLog(ctx context.Context, query, arg string) (*identity.DIDLog, error) {
	l, err := scanDIDLog(d.q(ctx).QueryRowContext(ctx, query, arg))
	if err != nil {
		return nil, mapErr(err)
	}
	return l, nil
}

func scanDIDLog(r interface{ Scan(...any) error }) (*identity.DIDLog, error) {
	var (
		l            identity.DIDLog
		log, witness string
		escrow       []byte
		at           int64
	)
	if err := r.Scan(&l.SCID, &l.DID, &l.CurrentDID, &l.Name, &l.HomeIssuer, &l.Version, &log, &witness, &escrow, &at); err != nil {
		return nil, err
	}
	l.Log, l.UpdatedAt = []byte(log), fromMicros(at)
	if witness != "" {
		l.Witness = []byte(witness)
	}
	if len(escrow) > 0 {
		l.Escrow = escrow
	}
	return &l, nil
}

// nonNilBytes stores nil as an empty value: the escrow column is NOT NULL.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ForgetDIDLog removes the log of a deleted account, its DIDs and the head
// witnessed for its SCID, in one transaction.
func (d *DB) ForgetDIDLog(ctx context.Context, accountDID string) error {
	return d.InTx(ctx, func(ctx context.Context) error {
		q := d.q(ctx)
		if _, err := q.ExecContext(ctx, `DELETE FROM witnessed_logs WHERE scid IN (SELECT scid FROM did_logs WHERE account_did = $1)`, accountDID); err != nil {
			return fmt.Errorf("forget witnessed log: %w", err)
		}
		if _, err := q.ExecContext(ctx, `DELETE FROM did_logs WHERE account_did = $1`, accountDID); err != nil {
			return fmt.Errorf("forget DID log: %w", err)
		}
		if _, err := q.ExecContext(ctx, `DELETE FROM account_dids WHERE account_did = $1`, accountDID); err != nil {
			return fmt.Errorf("forget DIDs: %w", err)
		}
		return nil
	})
}
