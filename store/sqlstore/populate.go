package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/privacy"
)

// BulkRows are rows of a generated population (`commonsid bench
// --populate`), written together by InsertBulk: the rows the provider
// writes one at a time when people sign up, consent, sign in and get
// tokens, in the same shapes.
type BulkRows struct {
	Accounts []*identity.Account
	Consents []*privacy.Consent
	Sessions []*identity.Session
	Requests []*oidc.OAuthRequest
	Events   []BulkEvent
}

// BulkEvent is an entry of the event log (AppendEvent's arguments).
type BulkEvent struct {
	Type, AccountDID string
	At               time.Time
	Payload          map[string]any
}

// Len is the number of rows.
func (b *BulkRows) Len() int {
	return len(b.Accounts) + len(b.Consents) + len(b.Sessions) + len(b.Requests) + len(b.Events)
}

// InsertBulk writes every row of b in one transaction, all or nothing, in
// foreign-key order (accounts first). On PostgreSQL it streams each table
// with COPY through pgx's native API, holding the event appenders' shared
// lock as AppendEvent does; on SQLite it runs one prepared statement per
// table inside one transaction. Duplicates fail the whole batch.
func (d *DB) InsertBulk(ctx context.Context, b *BulkRows) error {
	tables, err := bulkTables(b)
	if err != nil {
		return err
	}
	if d.dialect == Postgres {
		return d.copyBulk(ctx, tables)
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		for _, t := range tables {
			if len(t.rows) == 0 {
				continue
			}
			marks := make([]string, len(t.cols))
			for i := range marks {
				marks[i] = fmt.Sprintf("$%d", i+1)
			}
			st, err := tx.PrepareContext(ctx, `INSERT INTO `+t.name+` (`+strings.Join(t.cols, ", ")+`) VALUES (`+strings.Join(marks, ", ")+`)`)
			if err != nil {
				return fmt.Errorf("bulk %s: %w", t.name, err)
			}
			for _, r := range t.rows {
				if _, err := st.ExecContext(ctx, r...); err != nil {
					st.Close()
					return fmt.Errorf("bulk %s: %w", t.name, err)
				}
			}
			st.Close()
		}
		return nil
	})
}

type bulkTable struct {
	name string
	cols []string
	rows [][]any
}

func bulkTables(b *BulkRows) ([]bulkTable, error) {
	// Column lists of their own: columns added later keep their defaults.
	accounts := bulkTable{name: "accounts", cols: []string{"did", "handle", "email", "email_verified", "name", "password_hash", "status",
		"home_issuer", "did_key_sealed", "pairwise_secret_sealed", "created_at", "updated_at", "deleted_at"}}
	for _, a := range b.Accounts {
		accounts.rows = append(accounts.rows, []any{a.DID, a.Handle, a.Email, a.EmailVerified, a.Name, a.PasswordHash, a.Status, a.HomeIssuer,
			a.DIDKeySealed, a.PairwiseSecretSealed, toMicros(a.CreatedAt), toMicros(a.UpdatedAt), toMicrosPtr(a.DeletedAt)})
	}
	consents := bulkTable{name: "consents", cols: []string{"account_did", "client_id", "scopes", "claims", "subject_sector", "granted_at",
		"updated_at", "expires_at", "last_used_at"}}
	for _, c := range b.Consents {
		consents.rows = append(consents.rows, []any{c.AccountDID, c.ClientID, strings.Join(c.Scopes, " "), strings.Join(c.Claims, " "), c.SubjectSector,
			toMicros(c.GrantedAt), toMicros(c.UpdatedAt), toMicrosPtr(c.ExpiresAt), toMicrosPtr(c.LastUsedAt)})
	}
	sessions := bulkTable{name: "browser_sessions", cols: []string{"id_hash", "account_did", "auth_time", "amr", "created_at", "last_seen_at",
		"expires_at", "user_agent", "ip"}}
	for _, s := range b.Sessions {
		sessions.rows = append(sessions.rows, []any{s.IDHash, s.AccountDID, toMicros(s.AuthTime), strings.Join(s.AMR, " "), toMicros(s.CreatedAt),
			toMicros(s.LastSeenAt), toMicros(s.ExpiresAt), s.UserAgent, s.IP})
	}
	requests := bulkTable{name: "oauth_requests", cols: []string{"kind", "signature_hash", "request_id", "client_id", "subject", "active",
		"requested_at", "expires_at", "access_signature_hash", "request"}}
	for _, r := range b.Requests {
		requests.rows = append(requests.rows, []any{r.Kind, r.SignatureHash, r.RequestID, r.ClientID, r.Subject, r.Active, toMicros(r.RequestedAt),
			toMicros(r.ExpiresAt), r.AccessSignatureHash, string(r.Request)})
	}
	events := bulkTable{name: "events", cols: []string{"type", "account_did", "at", "payload"}}
	for _, e := range b.Events {
		raw := []byte("{}")
		if e.Payload != nil {
			var err error
			if raw, err = json.Marshal(e.Payload); err != nil {
				return nil, fmt.Errorf("event payload: %w", err)
			}
		}
		events.rows = append(events.rows, []any{e.Type, e.AccountDID, toMicros(e.At), string(raw)})
	}
	return []bulkTable{accounts, consents, sessions, requests, events}, nil
}

// copyBulk writes the tables with COPY in one transaction.
func (d *DB) copyBulk(ctx context.Context, tables []bulkTable) error {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errors.New("bulk insert: not a pgx connection")
		}
		tx, err := sc.Conn().Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.Background())
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared(`+eventLock+`), pg_notify('`+eventChannel+`', '')`); err != nil {
			return fmt.Errorf("bulk insert: %w", err)
		}
		for _, t := range tables {
			if len(t.rows) == 0 {
				continue
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, pgx.CopyFromRows(t.rows)); err != nil {
				return fmt.Errorf("bulk %s: %w", t.name, err)
			}
		}
		return tx.Commit(ctx)
	})
}

// PopulationCount reports how many accounts the database holds and how
// many of those have a handle starting with prefix (the generator's).
func (d *DB) PopulationCount(ctx context.Context, prefix string) (all, generated int64, err error) {
	err = d.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*), COUNT(CASE WHEN handle LIKE $1 THEN 1 END) FROM accounts`, prefix+"%").Scan(&all, &generated)
	if err != nil {
		return 0, 0, fmt.Errorf("count accounts: %w", err)
	}
	return all, generated, nil
}

// TableSize is the space one table takes with its indexes.
type TableSize struct {
	Table string
	Rows  int64
	Bytes int64 // pg_total_relation_size; 0 on SQLite
}

// TableSizes reports the rows and, on PostgreSQL, the total size of the
// tables a population and the load fill.
func (d *DB) TableSizes(ctx context.Context) ([]TableSize, error) {
	var out []TableSize
	for _, t := range []string{"accounts", "consents", "browser_sessions", "oauth_requests", "events", "activity", "auth_challenges"} {
		s := TableSize{Table: t}
		if err := d.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t).Scan(&s.Rows); err != nil {
			return nil, fmt.Errorf("size of %s: %w", t, err)
		}
		if d.dialect == Postgres {
			if err := d.q(ctx).QueryRowContext(ctx, `SELECT pg_total_relation_size($1::regclass)`, t).Scan(&s.Bytes); err != nil {
				return nil, fmt.Errorf("size of %s: %w", t, err)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// Analyze refreshes the planner's statistics after a bulk load.
func (d *DB) Analyze(ctx context.Context) error {
	if _, err := d.db.ExecContext(ctx, `ANALYZE`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}
