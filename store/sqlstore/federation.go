package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

var _ federation.Store = (*DB)(nil)

const peerCols = `issuer, did, jwks_uri, endpoint, jwks, metadata, cursor, added_at, keys_at, last_event_at, last_error`

func scanPeer(s scanner) (*federation.Peer, error) {
	var (
		p                          federation.Peer
		jwks, meta                 string
		added, keysAt, lastEventAt int64
	)
	if err := s.Scan(&p.Issuer, &p.DID, &p.JWKSURI, &p.Endpoint, &jwks, &meta, &p.Cursor, &added, &keysAt, &lastEventAt, &p.LastError); err != nil {
		return nil, mapErr(err)
	}
	if err := json.Unmarshal([]byte(jwks), &p.JWKS); err != nil {
		return nil, fmt.Errorf("peer %s keys: %w", p.Issuer, err)
	}
	p.Metadata = []byte(meta)
	p.AddedAt, p.KeysAt = fromMicros(added), fromMicros(keysAt)
	if lastEventAt != 0 {
		p.LastEventAt = fromMicros(lastEventAt)
	}
	return &p, nil
}

// PutPeer records a peer, or updates everything of it but its cursor.
func (d *DB) PutPeer(ctx context.Context, p *federation.Peer) error {
	jwks, err := json.Marshal(p.JWKS)
	if err != nil {
		return err
	}
	_, err = d.q(ctx).ExecContext(ctx, `INSERT INTO peers (`+peerCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, '')
		ON CONFLICT (issuer) DO UPDATE SET did = EXCLUDED.did, jwks_uri = EXCLUDED.jwks_uri, endpoint = EXCLUDED.endpoint,
		jwks = EXCLUDED.jwks, metadata = EXCLUDED.metadata, keys_at = EXCLUDED.keys_at`,
		p.Issuer, p.DID, p.JWKSURI, p.Endpoint, string(jwks), string(p.Metadata), p.Cursor, toMicros(p.AddedAt), toMicros(p.KeysAt))
	if err != nil {
		return fmt.Errorf("put peer: %w", err)
	}
	return nil
}

// GetPeer returns a peer by issuer.
func (d *DB) GetPeer(ctx context.Context, issuer string) (*federation.Peer, error) {
	p, err := scanPeer(d.q(ctx).QueryRowContext(ctx, `SELECT `+peerCols+` FROM peers WHERE issuer = $1`, issuer))
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", issuer, err)
	}
	return p, nil
}

// ListPeers returns every peer, by issuer.
func (d *DB) ListPeers(ctx context.Context) ([]*federation.Peer, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT `+peerCols+` FROM peers ORDER BY issuer`)
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	defer rows.Close()
	var out []*federation.Peer
	for rows.Next() {
		p, err := scanPeer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeletePeer removes a peer and what was replicated from it: its accounts,
// revocations and services. Its applied-events record goes too, so adding
// it again replicates from the start.
func (d *DB) DeletePeer(ctx context.Context, issuer string) error {
	return d.InTx(ctx, func(ctx context.Context) error {
		res, err := d.q(ctx).ExecContext(ctx, `DELETE FROM peers WHERE issuer = $1`, issuer)
		if err != nil {
			return fmt.Errorf("delete peer: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("peer %s: %w", issuer, store.ErrNotFound)
		}
		rows, err := d.q(ctx).QueryContext(ctx, `SELECT did FROM accounts WHERE home_issuer = $1`, issuer)
		if err != nil {
			return err
		}
		var dids []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return err
			}
			dids = append(dids, s)
		}
		rows.Close()
		for _, s := range dids {
			if err := d.DropReplica(ctx, s); err != nil {
				return err
			}
		}
		for _, q := range []string{
			`DELETE FROM federation_revoked_tokens WHERE issuer = $1`,
			`DELETE FROM federation_services WHERE issuer = $1`,
			`DELETE FROM federation_applied WHERE peer = $1`,
		} {
			if _, err := d.q(ctx).ExecContext(ctx, q, issuer); err != nil {
				return fmt.Errorf("delete peer: %w", err)
			}
		}
		return nil
	})
}

// SetPeerKeys replaces a peer's pinned keys.
func (d *DB) SetPeerKeys(ctx context.Context, issuer string, jwks []byte, at time.Time) error {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return err
	}
	_, err := d.q(ctx).ExecContext(ctx, `UPDATE peers SET jwks = $2, keys_at = $3 WHERE issuer = $1`, issuer, string(jwks), toMicros(at))
	return err
}

// SetPeerError records the last replication problem with a peer ("" when
// healthy).
func (d *DB) SetPeerError(ctx context.Context, issuer, msg string) error {
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	_, err := d.q(ctx).ExecContext(ctx, `UPDATE peers SET last_error = $2 WHERE issuer = $1`, issuer, msg)
	return err
}

// MarkApplied records one applied peer event; false when it was recorded
// before.
func (d *DB) MarkApplied(ctx context.Context, a *federation.Applied) (bool, error) {
	res, err := d.q(ctx).ExecContext(ctx, `INSERT INTO federation_applied (peer, seq, type, account_did, event_at, applied_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (peer, seq) DO NOTHING`,
		a.Peer, a.Seq, a.Type, a.AccountDID, toMicros(a.EventAt), toMicros(a.AppliedAt))
	if err != nil {
		return false, fmt.Errorf("mark applied: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// SetPeerCursor moves a peer's cursor forward to seq.
func (d *DB) SetPeerCursor(ctx context.Context, issuer string, seq int64, eventAt time.Time) error {
	_, err := d.q(ctx).ExecContext(ctx, `UPDATE peers SET cursor = $2, last_event_at = $3 WHERE issuer = $1 AND cursor < $2`,
		issuer, seq, toMicros(eventAt))
	return err
}

// RecordRejected logs a refused peer event.
func (d *DB) RecordRejected(ctx context.Context, r *federation.Rejected) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO federation_rejected (peer, seq, reason, at, event) VALUES ($1, $2, $3, $4, $5)`,
		r.Peer, r.Seq, r.Reason, toMicros(r.At), r.Event)
	return err
}

// ListApplied returns applied events of a peer after seq, in order.
func (d *DB) ListApplied(ctx context.Context, peer string, after int64, limit int) ([]*federation.Applied, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT peer, seq, type, account_did, event_at, applied_at FROM federation_applied
		WHERE peer = $1 AND seq > $2 ORDER BY seq LIMIT $3`, peer, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*federation.Applied
	for rows.Next() {
		var (
			a        federation.Applied
			ev, appl int64
		)
		if err := rows.Scan(&a.Peer, &a.Seq, &a.Type, &a.AccountDID, &ev, &appl); err != nil {
			return nil, err
		}
		a.EventAt, a.AppliedAt = fromMicros(ev), fromMicros(appl)
		out = append(out, &a)
	}
	return out, rows.Err()
}

// ListRejected returns the newest refused events of a peer ("" for all).
func (d *DB) ListRejected(ctx context.Context, peer string, limit int) ([]*federation.Rejected, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT peer, seq, reason, at, event FROM federation_rejected
		WHERE peer = $1 OR $1 = '' ORDER BY id DESC LIMIT $2`, peer, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*federation.Rejected
	for rows.Next() {
		var (
			r  federation.Rejected
			at int64
		)
		if err := rows.Scan(&r.Peer, &r.Seq, &r.Reason, &at, &r.Event); err != nil {
			return nil, err
		}
		r.At = fromMicros(at)
		out = append(out, &r)
	}
	return out, rows.Err()
}

// FeedEvents returns logged events after seq, oldest first.
func (d *DB) FeedEvents(ctx context.Context, after int64, limit int) ([]federation.LogEvent, error) {
	return d.ListEvents(ctx, after, limit)
}

// ClientMetadata returns a client's public metadata for peers: registered
// metadata without contacts, with client_id and the computed sectors. A
// peer cloud's own client is not announced (store.ErrNotFound).
func (d *DB) ClientMetadata(ctx context.Context, clientID string) ([]byte, error) {
	c, err := d.GetClient(ctx, clientID)
	if err != nil {
		return nil, err
	}
	var md map[string]any
	if err := json.Unmarshal(c.Metadata, &md); err != nil {
		return nil, err
	}
	if peer, _ := md["x_peer"].(bool); peer {
		return nil, fmt.Errorf("client %s: %w", clientID, store.ErrNotFound)
	}
	delete(md, "contacts")
	md["client_id"] = clientID
	return json.Marshal(md)
}

// PutReplica creates or replaces an account replicated from its home. It
// writes no event: a replica is never announced by this cloud.
func (d *DB) PutReplica(ctx context.Context, a *identity.Account) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO accounts (`+accountCols+`)
		VALUES ($1, $2, $3, $4, $5, '', $6, $7, NULL, $8, $9, $10, NULL)
		ON CONFLICT (did) DO UPDATE SET handle = EXCLUDED.handle, email = EXCLUDED.email, email_verified = EXCLUDED.email_verified,
		name = EXCLUDED.name, password_hash = '', status = EXCLUDED.status, home_issuer = EXCLUDED.home_issuer,
		did_key_sealed = NULL, pairwise_secret_sealed = EXCLUDED.pairwise_secret_sealed, updated_at = EXCLUDED.updated_at, deleted_at = NULL`,
		a.DID, a.Handle, a.Email, a.EmailVerified, a.Name, a.Status, a.HomeIssuer, a.PairwiseSecretSealed,
		toMicros(a.CreatedAt), toMicros(a.UpdatedAt))
	if _, ok := uniqueViolation(err); ok {
		return &store.DuplicateError{Entity: "account", Field: "handle"}
	}
	if err != nil {
		return fmt.Errorf("put replica: %w", err)
	}
	d.replicaChanged(ctx)
	return nil
}

// replicaChanged tells this process's hooks that a replicated account
// changed (a change made here is announced by its own event instead), so
// that what was cached of it is dropped at commit. Other processes drop
// theirs within their caches' lifetime.
func (d *DB) replicaChanged(ctx context.Context) { d.afterCommit(ctx, d.fireEvents) }

// DropReplica removes a replicated account and everything this cloud holds
// for it: sessions, tokens, consents, settings, activity.
func (d *DB) DropReplica(ctx context.Context, did string) error {
	return d.InTx(ctx, func(ctx context.Context) error {
		if err := d.ForgetAccount(ctx, did); err != nil {
			return err
		}
		if _, err := d.q(ctx).ExecContext(ctx, `DELETE FROM passkeys WHERE account_did = $1`, did); err != nil {
			return fmt.Errorf("drop replica: %w", err)
		}
		_, err := d.q(ctx).ExecContext(ctx, `DELETE FROM accounts WHERE did = $1`, did)
		if err != nil {
			return fmt.Errorf("drop replica: %w", err)
		}
		d.replicaChanged(ctx)
		return nil
	})
}

// PutReplicaSettings stores replicated privacy settings.
func (d *DB) PutReplicaSettings(ctx context.Context, did string, s *privacy.Settings, at time.Time) error {
	if err := d.putSettings(ctx, did, s, at); err != nil {
		return err
	}
	d.replicaChanged(ctx)
	return nil
}

// PutReplicaConsent stores a consent replicated from the account's home
// (client_id "issuer#client_id").
func (d *DB) PutReplicaConsent(ctx context.Context, c *privacy.Consent) error {
	return d.putConsent(ctx, c)
}

// DeleteReplicaConsents deletes replicated consents whose client_id starts
// with prefix (one service's "issuer#id", or "issuer#" for all of a peer's).
func (d *DB) DeleteReplicaConsents(ctx context.Context, did, prefix string) error {
	_, err := d.q(ctx).ExecContext(ctx, `DELETE FROM consents WHERE account_did = $1 AND substr(client_id, 1, length(CAST($2 AS TEXT))) = CAST($2 AS TEXT)`, did, prefix)
	return err
}

// PutRevokedTokens records revocations of a peer's access tokens.
func (d *DB) PutRevokedTokens(ctx context.Context, issuer string, ts []federation.RevokedToken) error {
	for _, t := range ts {
		if _, err := d.q(ctx).ExecContext(ctx, `INSERT INTO federation_revoked_tokens (issuer, token_hash, expires_at) VALUES ($1, $2, $3)
			ON CONFLICT (issuer, token_hash) DO NOTHING`, issuer, t.Hash, toMicros(t.ExpiresAt)); err != nil {
			return fmt.Errorf("put revoked token: %w", err)
		}
	}
	return nil
}

// TokenRevoked reports whether a peer's access token was revoked.
func (d *DB) TokenRevoked(ctx context.Context, issuer, hash string) (bool, error) {
	var one int
	err := d.q(ctx).QueryRowContext(ctx, `SELECT 1 FROM federation_revoked_tokens WHERE issuer = $1 AND token_hash = $2`, issuer, hash).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// PutRemoteService records a peer's service.
func (d *DB) PutRemoteService(ctx context.Context, issuer, clientID string, metadata []byte, at time.Time) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO federation_services (issuer, client_id, metadata, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (issuer, client_id) DO UPDATE SET metadata = EXCLUDED.metadata, updated_at = EXCLUDED.updated_at`,
		issuer, clientID, string(metadata), toMicros(at))
	return err
}

// RemoteService returns a peer's service metadata.
func (d *DB) RemoteService(ctx context.Context, issuer, clientID string) ([]byte, error) {
	var md string
	err := d.q(ctx).QueryRowContext(ctx, `SELECT metadata FROM federation_services WHERE issuer = $1 AND client_id = $2`, issuer, clientID).Scan(&md)
	if err != nil {
		return nil, fmt.Errorf("service %s#%s: %w", issuer, clientID, mapErr(err))
	}
	return []byte(md), nil
}

// DeleteRemoteService forgets a peer's service.
func (d *DB) DeleteRemoteService(ctx context.Context, issuer, clientID string) error {
	_, err := d.q(ctx).ExecContext(ctx, `DELETE FROM federation_services WHERE issuer = $1 AND client_id = $2`, issuer, clientID)
	return err
}

// FindReplicas returns the replicated accounts whose handle on their home
// cloud is handle.
func (d *DB) FindReplicas(ctx context.Context, handle string) ([]*identity.Account, error) {
	rows, err := d.q(ctx).QueryContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE substr(handle, 1, length(CAST($1 AS TEXT)) + 1) = CAST($1 AS TEXT) || '@' ORDER BY handle`, handle)
	if err != nil {
		return nil, fmt.Errorf("find replicas: %w", err)
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
