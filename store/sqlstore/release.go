package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
)

// ReleaseContext loads, in one query, what deciding a release needs: the
// account, its consent to a service (nil when none) and its privacy
// settings (nil when it never changed them).
func (d *DB) ReleaseContext(ctx context.Context, did, clientID string) (*identity.Account, *privacy.Consent, *privacy.Settings, error) {
	var (
		a                       identity.Account
		created, updated        int64
		deleted                 sql.NullInt64
		didKey, pairSecret      []byte
		cScopes, cClaims, cSect sql.NullString
		cTerms                  sql.NullString
		cGranted, cUpdated      sql.NullInt64
		cExpires, cUsed         sql.NullInt64
		settings                sql.NullString
	)
	err := d.q(ctx).QueryRowContext(ctx, `SELECT a.did, a.handle, a.email, a.email_verified, a.name, a.password_hash, a.status, a.home_issuer,
		a.did_key_sealed, a.pairwise_secret_sealed, a.created_at, a.updated_at, a.deleted_at,
		c.scopes, c.claims, c.subject_sector, c.granted_at, c.updated_at, c.expires_at, c.last_used_at, c.terms_hash, p.settings
		FROM accounts a
		LEFT JOIN consents c ON c.account_did = a.did AND c.client_id = $2
		LEFT JOIN privacy_settings p ON p.account_did = a.did
		WHERE a.did = $1`, did, clientID).Scan(
		&a.DID, &a.Handle, &a.Email, &a.EmailVerified, &a.Name, &a.PasswordHash, &a.Status, &a.HomeIssuer,
		&didKey, &pairSecret, &created, &updated, &deleted,
		&cScopes, &cClaims, &cSect, &cGranted, &cUpdated, &cExpires, &cUsed, &cTerms, &settings)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("release context of %s: %w", did, mapErr(err))
	}
	a.DIDKeySealed, a.PairwiseSecretSealed = didKey, pairSecret
	a.CreatedAt, a.UpdatedAt, a.DeletedAt = fromMicros(created), fromMicros(updated), fromMicrosPtr(deleted)
	var c *privacy.Consent
	if cGranted.Valid {
		c = &privacy.Consent{AccountDID: a.DID, ClientID: clientID, Scopes: splitWords(cScopes.String), Claims: splitWords(cClaims.String),
			SubjectSector: cSect.String, GrantedAt: fromMicros(cGranted.Int64), UpdatedAt: fromMicros(cUpdated.Int64),
			ExpiresAt: fromMicrosPtr(cExpires), LastUsedAt: fromMicrosPtr(cUsed), TermsHash: cTerms.String}
	}
	var st *privacy.Settings
	if settings.Valid {
		st = &privacy.Settings{}
		if err := json.Unmarshal([]byte(settings.String), st); err != nil {
			return nil, nil, nil, fmt.Errorf("privacy settings of %s: %w", did, err)
		}
	}
	return &a, c, st, nil
}
