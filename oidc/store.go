package oidc

import (
	"context"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
)

// Kinds of stored OAuth artefacts.
const (
	KindCode    = "code"
	KindAccess  = "access"
	KindRefresh = "refresh"
	KindPKCE    = "pkce"
	KindOIDC    = "oidc"
)

// StoredClient is a client row: hashes and the RFC 7591 metadata document.
type StoredClient struct {
	ClientID              string
	SecretHash            string // hex SHA-256 of the secret; "" for public clients
	RegistrationTokenHash string
	Metadata              []byte // JSON of Metadata
	CreatedAt             time.Time
	UpdatedAt             time.Time
}

// OAuthRequest is one stored artefact: an authorization code, access token,
// refresh token, or PKCE/OIDC session, keyed by the hash of its signature.
type OAuthRequest struct {
	Kind                string
	SignatureHash       string
	RequestID           string
	ClientID            string
	Subject             string // account DID, "" for client credentials
	Active              bool
	RequestedAt         time.Time
	ExpiresAt           time.Time
	AccessSignatureHash string // refresh tokens: the access token issued with it
	Request             []byte // serialized fosite request
}

// Challenge is an authorization request waiting for login or consent.
type Challenge struct {
	IDHash    string
	ClientID  string
	Form      string    // the authorization request's parameters, URL-encoded
	NotBefore time.Time // the sign-on must be at least this recent (prompt=login, max_age)
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Store is what the provider needs from storage.
type Store interface {
	// ReleaseContext loads the account, its consent to clientID (nil when
	// none) and its privacy settings (nil when never changed) at once.
	ReleaseContext(ctx context.Context, accountDID, clientID string) (*identity.Account, *privacy.Consent, *privacy.Settings, error)

	GetClient(ctx context.Context, clientID string) (*StoredClient, error)
	CreateClient(ctx context.Context, c *StoredClient) error
	UpdateClient(ctx context.Context, c *StoredClient) error
	DeleteClient(ctx context.Context, clientID string) error
	ListClients(ctx context.Context) ([]*StoredClient, error)

	CreateOAuthRequest(ctx context.Context, r *OAuthRequest) error
	GetOAuthRequest(ctx context.Context, kind, signatureHash string) (*OAuthRequest, error)
	DeleteOAuthRequest(ctx context.Context, kind, signatureHash string) error
	// DeactivateOAuthRequest marks one artefact used (codes, rotated
	// refresh tokens); it returns store.ErrNotFound when none is active.
	DeactivateOAuthRequest(ctx context.Context, kind, signatureHash string) error
	// ExchangeOAuthRequests marks the artefact (kind, signatureHash) used,
	// as DeactivateOAuthRequest does, and stores create, all or nothing: a
	// code exchanged or a refresh token rotated, and the tokens issued for
	// it. It returns store.ErrNotFound, having written nothing, when the
	// artefact is not active. With kind "" it only stores create.
	ExchangeOAuthRequests(ctx context.Context, kind, signatureHash string, create []*OAuthRequest) error
	// DeleteOAuthRequestsByRequestID deletes every artefact of a kind that
	// a grant issued.
	DeleteOAuthRequestsByRequestID(ctx context.Context, kind, requestID string) error
	// RevokeGrant deletes every access and refresh token a grant issued,
	// in one transaction, including any a concurrent exchange of one of
	// the grant's refresh tokens is committing at the same moment.
	RevokeGrant(ctx context.Context, requestID string) error
	// DeactivateOAuthRequestsByRequestID marks every artefact of a kind
	// that a grant issued inactive.
	DeactivateOAuthRequestsByRequestID(ctx context.Context, kind, requestID string) error
	// DeleteGrantsOf deletes every access and refresh token a service holds
	// for an account (consent revocation).
	DeleteGrantsOf(ctx context.Context, subject, clientID string) (int, error)

	// UseClientAssertionJTI records a private_key_jwt jti; it returns
	// store.ErrAlreadyExists when the jti was seen and has not expired.
	UseClientAssertionJTI(ctx context.Context, jtiHash string, expiresAt, now time.Time) error

	CreateChallenge(ctx context.Context, c *Challenge) error
	GetChallenge(ctx context.Context, idHash string) (*Challenge, error)
	DeleteChallenge(ctx context.Context, idHash string) error

	// InTx runs fn in one transaction; the ctx it gets carries it.
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	BeginTx(ctx context.Context) (context.Context, error)
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}
