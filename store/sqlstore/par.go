package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/store"
)

// CreatePushedRequest stores a pushed authorization request.
func (d *DB) CreatePushedRequest(ctx context.Context, p *oidc.PushedRequest) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO pushed_auth_requests (uri_hash, client_id, form, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, p.URIHash, p.ClientID, p.Form, toMicros(p.CreatedAt), toMicros(p.ExpiresAt))
	if _, ok := uniqueViolation(err); ok {
		return &store.DuplicateError{Entity: "pushed authorization request", Field: "request_uri"}
	}
	if err != nil {
		return fmt.Errorf("create pushed request: %w", err)
	}
	return nil
}

// TakePushedRequest deletes a pushed authorization request and returns it,
// in one statement, so that two concurrent uses of one request_uri cannot
// both get it. An expired one is deleted too, and reported not found.
func (d *DB) TakePushedRequest(ctx context.Context, uriHash string, now time.Time) (*oidc.PushedRequest, error) {
	var (
		p                oidc.PushedRequest
		created, expires int64
	)
	err := d.q(ctx).QueryRowContext(ctx, `DELETE FROM pushed_auth_requests WHERE uri_hash = $1
		RETURNING uri_hash, client_id, form, created_at, expires_at`, uriHash).
		Scan(&p.URIHash, &p.ClientID, &p.Form, &created, &expires)
	if err != nil {
		return nil, fmt.Errorf("take pushed request: %w", mapErr(err))
	}
	p.CreatedAt, p.ExpiresAt = fromMicros(created), fromMicros(expires)
	if !now.Before(p.ExpiresAt) {
		return nil, fmt.Errorf("take pushed request: expired: %w", store.ErrNotFound)
	}
	return &p, nil
}
