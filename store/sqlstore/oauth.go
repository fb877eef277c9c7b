package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/store"
)

var _ oidc.Store = (*DB)(nil)

const clientCols = `client_id, secret_hash, registration_token_hash, metadata, created_at, updated_at`

func scanClient(s scanner) (*oidc.StoredClient, error) {
	var (
		c                oidc.StoredClient
		meta             string
		created, updated int64
	)
	if err := s.Scan(&c.ClientID, &c.SecretHash, &c.RegistrationTokenHash, &meta, &created, &updated); err != nil {
		return nil, mapErr(err)
	}
	c.Metadata = []byte(meta)
	c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &c, nil
}

// GetClient returns a client.
func (d *DB) GetClient(ctx context.Context, id string) (*oidc.StoredClient, error) {
	c, err := scanClient(d.q(ctx).QueryRowContext(ctx, `SELECT `+clientCols+` FROM clients WHERE client_id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", id, err)
	}
	return c, nil
}

// CreateClient stores a new client.
func (d *DB) CreateClient(ctx context.Context, c *oidc.StoredClient) error {
	var md struct {
		ForkedFrom string `json:"forked_from"`
		Peer       bool   `json:"x_peer"`
	}
	json.Unmarshal(c.Metadata, &md)
	if md.Peer {
		return d.createClient(ctx, c)
	}
	typ := "service.registered"
	if md.ForkedFrom != "" {
		typ = "service.forked"
	}
	return d.withEvent(ctx, typ, "", map[string]any{"client_id": c.ClientID}, func(ctx context.Context) error {
		return d.createClient(ctx, c)
	})
}

func (d *DB) createClient(ctx context.Context, c *oidc.StoredClient) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO clients (`+clientCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		c.ClientID, c.SecretHash, c.RegistrationTokenHash, string(c.Metadata), toMicros(c.CreatedAt), toMicros(c.UpdatedAt))
	if _, ok := uniqueViolation(err); ok {
		return &store.DuplicateError{Entity: "client", Field: "client_id"}
	}
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	return nil
}

// UpdateClient replaces a client's metadata and hashes.
func (d *DB) UpdateClient(ctx context.Context, c *oidc.StoredClient) error {
	res, err := d.q(ctx).ExecContext(ctx, `UPDATE clients SET secret_hash = $2, registration_token_hash = $3, metadata = $4, updated_at = $5
		WHERE client_id = $1`, c.ClientID, c.SecretHash, c.RegistrationTokenHash, string(c.Metadata), toMicros(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("update client: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("client %s: %w", c.ClientID, store.ErrNotFound)
	}
	return nil
}

// DeleteClient removes a client and every token issued to it.
func (d *DB) DeleteClient(ctx context.Context, id string) error {
	return d.InTx(ctx, func(ctx context.Context) error {
		res, err := d.q(ctx).ExecContext(ctx, `DELETE FROM clients WHERE client_id = $1`, id)
		if err != nil {
			return fmt.Errorf("delete client: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("client %s: %w", id, store.ErrNotFound)
		}
		if _, err := d.removeRequests(ctx, `DELETE FROM oauth_requests WHERE client_id = $1`, id); err != nil {
			return fmt.Errorf("delete tokens of client: %w", err)
		}
		return d.AppendEvent(ctx, "service.deleted", "", time.Now().UTC(), map[string]any{"client_id": id})
	})
}

// ListClients returns every client.
func (d *DB) ListClients(ctx context.Context) ([]*oidc.StoredClient, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT `+clientCols+` FROM clients ORDER BY created_at, client_id`)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	defer rows.Close()
	var out []*oidc.StoredClient
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

const oauthCols = `kind, signature_hash, request_id, client_id, subject, active, requested_at, expires_at, access_signature_hash, request`

// CreateOAuthRequest stores a token, code or session. Outside a
// transaction, rows stored at the same moment by concurrent requests are
// written together (see writeGroup); a batch that fails is written again
// row by row, so that each caller gets its own row's outcome.
func (d *DB) CreateOAuthRequest(ctx context.Context, r *oidc.OAuthRequest) error {
	var err error
	if _, inTx := txOf(ctx); inTx {
		err = d.insertOAuthRequests(ctx, d.q(ctx), []*oidc.OAuthRequest{r})
	} else {
		var alone bool
		err = d.requests.add(r, func(batch []*oidc.OAuthRequest) error {
			alone = len(batch) == 1
			return d.writeBatch(ctx, func(ctx context.Context, q querier) error { return d.insertOAuthRequests(ctx, q, batch) })
		})
		if err != nil && !alone {
			err = d.insertOAuthRequests(ctx, d.q(ctx), []*oidc.OAuthRequest{r})
		}
	}
	if _, ok := uniqueViolation(err); ok {
		return &store.DuplicateError{Entity: r.Kind, Field: "signature"}
	}
	if err != nil {
		return fmt.Errorf("store %s: %w", r.Kind, err)
	}
	return nil
}

// insertOAuthRequests writes rows with one INSERT.
func (d *DB) insertOAuthRequests(ctx context.Context, q querier, batch []*oidc.OAuthRequest) error {
	var b strings.Builder
	b.WriteString(`INSERT INTO oauth_requests (` + oauthCols + `) VALUES `)
	args := make([]any, 0, 10*len(batch))
	for i, r := range batch {
		if i > 0 {
			b.WriteString(", ")
		}
		n := len(args)
		b.WriteString("(")
		for k := 1; k <= 10; k++ {
			if k > 1 {
				b.WriteString(", ")
			}
			b.WriteString("$")
			b.WriteString(strconv.Itoa(n + k))
		}
		b.WriteString(")")
		args = append(args, r.Kind, r.SignatureHash, r.RequestID, r.ClientID, r.Subject, r.Active, toMicros(r.RequestedAt), toMicros(r.ExpiresAt),
			r.AccessSignatureHash, string(r.Request))
	}
	_, err := q.ExecContext(ctx, b.String(), args...)
	return err
}

// GetOAuthRequest returns a stored artefact, active or not.
func (d *DB) GetOAuthRequest(ctx context.Context, kind, sig string) (*oidc.OAuthRequest, error) {
	var (
		r           oidc.OAuthRequest
		req         string
		at, expires int64
	)
	err := d.q(ctx).QueryRowContext(ctx, `SELECT `+oauthCols+` FROM oauth_requests WHERE kind = $1 AND signature_hash = $2`, kind, sig).
		Scan(&r.Kind, &r.SignatureHash, &r.RequestID, &r.ClientID, &r.Subject, &r.Active, &at, &expires, &r.AccessSignatureHash, &req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, mapErr(err))
	}
	r.RequestedAt, r.ExpiresAt, r.Request = fromMicros(at), fromMicros(expires), []byte(req)
	return &r, nil
}

// DeleteOAuthRequest removes one artefact.
func (d *DB) DeleteOAuthRequest(ctx context.Context, kind, sig string) error {
	n, err := d.removeRequests(ctx, `DELETE FROM oauth_requests WHERE kind = $1 AND signature_hash = $2`, kind, sig)
	if err != nil {
		return fmt.Errorf("delete %s: %w", kind, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", kind, store.ErrNotFound)
	}
	return nil
}

// removeRequests runs a DELETE or UPDATE … RETURNING kind, signature_hash,
// subject, expires_at on oauth_requests and, when unexpired access tokens
// were among the rows, announces their revocation: to this process's
// caches, other processes (PostgreSQL) and, as a token.revoked event, to
// peers. It returns the number of rows.
func (d *DB) removeRequests(ctx context.Context, query string, args ...any) (int, error) {
	n := 0
	err := d.InTx(ctx, func(ctx context.Context) error {
		rows, err := d.q(ctx).QueryContext(ctx, query+` RETURNING kind, signature_hash, subject, expires_at`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		now := toMicros(time.Now())
		var (
			revoked []map[string]any
			subject string
			access  bool
		)
		for rows.Next() {
			var (
				kind, hash, sub string
				exp             int64
			)
			if err := rows.Scan(&kind, &hash, &sub, &exp); err != nil {
				return err
			}
			n++
			if kind != oidc.KindAccess {
				continue
			}
			access = true
			if exp > now {
				revoked = append(revoked, map[string]any{"hash": hash, "exp": exp / 1e6})
				subject = sub
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		if !access {
			return nil
		}
		if len(revoked) > 0 {
			if !strings.HasPrefix(subject, "did:") {
				subject = ""
			}
			if err := d.AppendEvent(ctx, "token.revoked", subject, time.Now().UTC(), map[string]any{"tokens": revoked}); err != nil {
				return err
			}
		}
		return d.tokensRevoked(ctx)
	})
	return n, err
}

// DeactivateOAuthRequest marks one active artefact used.
func (d *DB) DeactivateOAuthRequest(ctx context.Context, kind, sig string) error {
	res, err := d.q(ctx).ExecContext(ctx, `UPDATE oauth_requests SET active = $3 WHERE kind = $1 AND signature_hash = $2 AND active = $4`, kind, sig, false, true)
	if err != nil {
		return fmt.Errorf("deactivate %s: %w", kind, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("active %s: %w", kind, store.ErrNotFound)
	}
	return nil
}

// ExchangeOAuthRequests marks an artefact used and stores what was issued
// for it, all or nothing. On PostgreSQL outside a transaction it is one
// statement: the conditional update and the insert that depends on it.
func (d *DB) ExchangeOAuthRequests(ctx context.Context, kind, sig string, create []*oidc.OAuthRequest) error {
	_, inTx := txOf(ctx)
	if d.dialect != Postgres || inTx || kind == "" || len(create) == 0 {
		return d.InTx(ctx, func(ctx context.Context) error {
			if kind != "" {
				if err := d.DeactivateOAuthRequest(ctx, kind, sig); err != nil {
					return err
				}
			}
			if len(create) == 0 {
				return nil
			}
			err := d.insertOAuthRequests(ctx, d.q(ctx), create)
			if _, ok := uniqueViolation(err); ok {
				return &store.DuplicateError{Entity: create[0].Kind, Field: "signature"}
			}
			if err != nil {
				return fmt.Errorf("store %s: %w", create[0].Kind, err)
			}
			return nil
		})
	}
	var b strings.Builder
	b.WriteString(`WITH used AS (UPDATE oauth_requests SET active = FALSE WHERE kind = $1 AND signature_hash = $2 AND active = TRUE RETURNING 1)
		INSERT INTO oauth_requests (` + oauthCols + `) SELECT * FROM (VALUES `)
	args := make([]any, 0, 2+10*len(create))
	args = append(args, kind, sig)
	for i, r := range create {
		if i > 0 {
			b.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d, CAST($%d AS BOOLEAN), CAST($%d AS BIGINT), CAST($%d AS BIGINT), $%d, $%d)",
			n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+9, n+10)
		args = append(args, r.Kind, r.SignatureHash, r.RequestID, r.ClientID, r.Subject, r.Active, toMicros(r.RequestedAt), toMicros(r.ExpiresAt),
			r.AccessSignatureHash, string(r.Request))
	}
	b.WriteString(`) AS issued WHERE EXISTS (SELECT 1 FROM used)`)
	res, err := d.db.ExecContext(ctx, b.String(), args...)
	if _, ok := uniqueViolation(err); ok {
		return &store.DuplicateError{Entity: create[0].Kind, Field: "signature"}
	}
	if err != nil {
		return fmt.Errorf("exchange %s: %w", kind, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("active %s: %w", kind, store.ErrNotFound)
	}
	return nil
}

// DeleteOAuthRequestsByRequestID deletes what one grant issued, of a kind.
func (d *DB) DeleteOAuthRequestsByRequestID(ctx context.Context, kind, requestID string) error {
	if _, err := d.removeRequests(ctx, `DELETE FROM oauth_requests WHERE kind = $1 AND request_id = $2`, kind, requestID); err != nil {
		return fmt.Errorf("delete %s of grant: %w", kind, err)
	}
	return nil
}

// RevokeGrant deletes the access and refresh tokens of one grant in one
// transaction.
func (d *DB) RevokeGrant(ctx context.Context, requestID string) error {
	err := d.InTx(ctx, func(ctx context.Context) error {
		if err := d.lockRefreshTokens(ctx, `request_id = $1`, requestID); err != nil {
			return err
		}
		_, err := d.removeRequests(ctx, `DELETE FROM oauth_requests WHERE request_id = $1 AND kind IN ($2, $3)`, requestID, oidc.KindAccess, oidc.KindRefresh)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke grant: %w", err)
	}
	return nil
}

// lockRefreshTokens locks, on PostgreSQL, the refresh-token rows that a
// revocation is about to delete (where selects them, with $1… as its
// arguments). A concurrent exchange of one of them (ExchangeOAuthRequests)
// holds that row from its conditional update until it commits the tokens
// it issued; the lock waits for it, and the DELETE that follows, a new
// statement with a new snapshot under READ COMMITTED, sees those tokens and
// deletes them too. Without it the DELETE's snapshot would miss them and a
// fresh chain would outlive its revocation. An exchange that starts after
// the lock waits, then finds its refresh token gone. Rows are locked in
// signature order so that revocations overlapping each other cannot
// deadlock. SQLite's write transactions hold the whole database already.
func (d *DB) lockRefreshTokens(ctx context.Context, where string, args ...any) error {
	if d.dialect != Postgres {
		return nil
	}
	n := len(args) + 1
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT 1 FROM oauth_requests WHERE `+where+` AND kind = $`+strconv.Itoa(n)+
		` ORDER BY signature_hash FOR UPDATE`, append(args, oidc.KindRefresh)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}

// DeactivateOAuthRequestsByRequestID deactivates what one grant issued.
func (d *DB) DeactivateOAuthRequestsByRequestID(ctx context.Context, kind, requestID string) error {
	if _, err := d.removeRequests(ctx, `UPDATE oauth_requests SET active = $3 WHERE kind = $1 AND request_id = $2 AND active = $4`, kind, requestID, false, true); err != nil {
		return fmt.Errorf("deactivate %s of grant: %w", kind, err)
	}
	return nil
}

// DeleteGrantsOf deletes every token a service holds for an account.
func (d *DB) DeleteGrantsOf(ctx context.Context, subject, clientID string) (int, error) {
	var n int
	err := d.InTx(ctx, func(ctx context.Context) error {
		if err := d.lockRefreshTokens(ctx, `subject = $1 AND client_id = $2`, subject, clientID); err != nil {
			return err
		}
		var err error
		n, err = d.removeRequests(ctx, `DELETE FROM oauth_requests WHERE subject = $1 AND client_id = $2`, subject, clientID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete grants: %w", err)
	}
	return n, nil
}

// DeleteAllGrantsOf deletes every code and token issued for an account.
func (d *DB) DeleteAllGrantsOf(ctx context.Context, subject string) (int, error) {
	var n int
	err := d.InTx(ctx, func(ctx context.Context) error {
		if err := d.lockRefreshTokens(ctx, `subject = $1`, subject); err != nil {
			return err
		}
		var err error
		n, err = d.removeRequests(ctx, `DELETE FROM oauth_requests WHERE subject = $1`, subject)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete grants: %w", err)
	}
	return n, nil
}

// UseClientAssertionJTI records a client assertion's jti once.
func (d *DB) UseClientAssertionJTI(ctx context.Context, jtiHash string, expiresAt, now time.Time) error {
	return d.InTx(ctx, func(ctx context.Context) error {
		if _, err := d.q(ctx).ExecContext(ctx, `DELETE FROM client_assertion_jtis WHERE expires_at < $1`, toMicros(now)); err != nil {
			return err
		}
		_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO client_assertion_jtis (jti_hash, expires_at) VALUES ($1, $2)`, jtiHash, toMicros(expiresAt))
		if _, ok := uniqueViolation(err); ok {
			return &store.DuplicateError{Entity: "client assertion", Field: "jti"}
		}
		return err
	})
}

// CreateChallenge stores a pending authorization request.
func (d *DB) CreateChallenge(ctx context.Context, c *oidc.Challenge) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO auth_challenges (id_hash, client_id, form, not_before, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, c.IDHash, c.ClientID, c.Form, toMicros(c.NotBefore), toMicros(c.CreatedAt), toMicros(c.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create challenge: %w", err)
	}
	return nil
}

// GetChallenge returns a pending authorization request.
func (d *DB) GetChallenge(ctx context.Context, idHash string) (*oidc.Challenge, error) {
	var (
		c                    oidc.Challenge
		nb, created, expires int64
	)
	err := d.q(ctx).QueryRowContext(ctx, `SELECT id_hash, client_id, form, not_before, created_at, expires_at FROM auth_challenges WHERE id_hash = $1`, idHash).
		Scan(&c.IDHash, &c.ClientID, &c.Form, &nb, &created, &expires)
	if err != nil {
		return nil, fmt.Errorf("challenge: %w", mapErr(err))
	}
	c.NotBefore, c.CreatedAt, c.ExpiresAt = fromMicros(nb), fromMicros(created), fromMicros(expires)
	return &c, nil
}

// DeleteChallenge removes a pending authorization request.
func (d *DB) DeleteChallenge(ctx context.Context, idHash string) error {
	_, err := d.q(ctx).ExecContext(ctx, `DELETE FROM auth_challenges WHERE id_hash = $1`, idHash)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete challenge: %w", err)
	}
	return nil
}
