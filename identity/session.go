package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/onecommons/commonsid/store"
)

// Session is a browser sign-on session. The cookie carries a random token;
// the store keeps only its hash.
type Session struct {
	IDHash     string
	AccountDID string
	AuthTime   time.Time
	AMR        []string // authentication methods: "pwd", "hwk"…
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
	UserAgent  string
	IP         string
}

// SessionStore persists sessions.
type SessionStore interface {
	CreateSession(ctx context.Context, s *Session) error
	GetSession(ctx context.Context, idHash string) (*Session, error)
	TouchSession(ctx context.Context, idHash string, at time.Time) error
	DeleteSession(ctx context.Context, idHash string) error
	ListSessions(ctx context.Context, accountDID string) ([]*Session, error)
	// ReauthSession records a fresh authentication in a session.
	ReauthSession(ctx context.Context, idHash string, at time.Time) error
	// DeleteSessionsOf deletes every session of an account but keep ("" for all).
	DeleteSessionsOf(ctx context.Context, accountDID, keep string) (int, error)
}

// SessionAccountStore is a SessionStore that also reads a session and its
// account in one query; Sessions uses it when the store has it.
type SessionAccountStore interface {
	GetSessionAccount(ctx context.Context, idHash string) (*Session, *Account, error)
}

// SessionLifetime is how long a sign-on session lasts without use.
const SessionLifetime = 14 * 24 * time.Hour

// ErrNoSession reports a missing, expired or revoked session, or one whose
// account can no longer sign in.
var ErrNoSession = errors.New("no valid session")

// HashToken returns the stored form of a session or challenge token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// NewToken returns 32 random bytes, base64url.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Sessions manages browser sessions.
type Sessions struct {
	Store    SessionStore
	Accounts Store
	Now      func() time.Time
}

// Start creates a session for an authenticated account and returns the
// cookie token.
func (s *Sessions) Start(ctx context.Context, a *Account, amr []string, userAgent, ip string) (string, *Session, error) {
	tok, err := NewToken()
	if err != nil {
		return "", nil, err
	}
	now := s.Now().UTC()
	if len(userAgent) > 300 {
		userAgent = userAgent[:300]
	}
	sess := &Session{IDHash: HashToken(tok), AccountDID: a.DID, AuthTime: now, AMR: amr,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(SessionLifetime), UserAgent: userAgent, IP: ip}
	if err := s.Store.CreateSession(ctx, sess); err != nil {
		return "", nil, fmt.Errorf("start session: %w", err)
	}
	return tok, sess, nil
}

// Resolve returns the live session and active account of a cookie token.
func (s *Sessions) Resolve(ctx context.Context, token string) (*Session, *Account, error) {
	if token == "" {
		return nil, nil, ErrNoSession
	}
	var (
		sess *Session
		a    *Account
		err  error
	)
	if j, ok := s.Store.(SessionAccountStore); ok {
		sess, a, err = j.GetSessionAccount(ctx, HashToken(token))
	} else if sess, err = s.Store.GetSession(ctx, HashToken(token)); err == nil {
		a, err = s.Accounts.GetAccount(ctx, sess.AccountDID)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNoSession
	}
	if err != nil {
		return nil, nil, err
	}
	now := s.Now().UTC()
	if now.After(sess.ExpiresAt) {
		return nil, nil, ErrNoSession
	}
	if a.Status != StatusActive {
		return nil, nil, ErrNoSession
	}
	if now.Sub(sess.LastSeenAt) > time.Minute {
		s.Store.TouchSession(ctx, sess.IDHash, now)
	}
	return sess, a, nil
}

// End deletes the session of a cookie token.
func (s *Sessions) End(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	err := s.Store.DeleteSession(ctx, HashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
