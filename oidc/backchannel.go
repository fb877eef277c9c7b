package oidc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite/token/jwt"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// OpenID Connect Back-Channel Logout 1.0. When a person's sign-in at a
// service ends — they sign out here, revoke the service's access in the
// dashboard, or their account is disabled or deleted — every service
// concerned that registered a backchannel_logout_uri is sent a signed
// logout token. The deliveries are written to an outbox
// (backchannel_deliveries) in the same transaction as the change, so that
// a restart loses none; a worker in each serving process (RunBackchannel)
// sends them through the guarded outbound client, each attempt with a
// fresh token, up to BackchannelAttempts times with growing waits, and
// records each delivery as done or failed with its last error.
//
// Which services: those the person has a consent to (for a revocation, the
// one revoked). A sign-out carries the session's sid (an opaque value per
// session and service, never the cookie) and the service's sub; a
// revocation, disabling or deletion carries the sub, plus one token per
// live session with its sid for a service that registered
// backchannel_logout_session_required.

// Delivery states.
const (
	BackchannelPending = "pending"
	BackchannelDone    = "done"
	BackchannelFailed  = "failed"
)

const (
	// BackchannelAttempts is how many times a delivery is tried.
	BackchannelAttempts = 3
	// BackchannelMaxPending bounds the outbox: past it new deliveries are
	// dropped (and logged), so that a flood of sign-outs cannot fill the
	// database.
	BackchannelMaxPending = 10_000
	// backchannelKeep is how long done and failed deliveries stay
	// recorded, and the longest a pending one waits.
	backchannelKeep = 24 * time.Hour
	// logoutTokenTTL is the lifetime of a logout token.
	logoutTokenTTL = 2 * time.Minute
	// backchannelTimeout bounds one attempt; it is also how long a worker
	// holds a delivery it took.
	backchannelTimeout = 5 * time.Second
	// backchannelBatch is how many deliveries a worker takes at once, and
	// how many it sends at the same time.
	backchannelBatch = 8
	// DefaultBackchannelRetry is the wait after a first failed attempt;
	// the wait after the second is four times as long (10 s, then 40 s).
	DefaultBackchannelRetry = 10 * time.Second
	// backchannelEvent is the event a logout token carries.
	backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"
)

// BackchannelDelivery is one logout token owed to a service.
type BackchannelDelivery struct {
	ID        string // also the logout token's jti
	ClientID  string
	URI       string
	Subject   string // the sub the service knows the person by ("" when only sid)
	SID       string
	Status    string
	Attempts  int
	NextAt    time.Time // when a pending delivery is next tried
	LastError string
	CreatedAt time.Time
	ExpiresAt time.Time // when the record is purged
}

// BackchannelStore is the outbox of logout deliveries.
type BackchannelStore interface {
	// QueueBackchannel stores deliveries (in the transaction ctx carries)
	// unless that would make more than max pending: then it stores none
	// and returns store.ErrConflict.
	QueueBackchannel(ctx context.Context, ds []*BackchannelDelivery, max int) error
	// ClaimBackchannel takes up to limit pending deliveries due at now,
	// holding each until until.
	ClaimBackchannel(ctx context.Context, now, until time.Time, limit int) ([]*BackchannelDelivery, error)
	// UpdateBackchannel records an attempt.
	UpdateBackchannel(ctx context.Context, d *BackchannelDelivery) error
	GetBackchannel(ctx context.Context, id string) (*BackchannelDelivery, error)
	// PurgeBackchannel deletes deliveries past their ExpiresAt.
	PurgeBackchannel(ctx context.Context, now time.Time) (int64, error)
}

// Backchannel finds the services to tell when sign-ins end and queues
// their logout deliveries. The provider has one (Provider.Backchannel);
// the command line builds its own for disabling and deleting accounts.
type Backchannel struct {
	Clients interface {
		GetClient(ctx context.Context, clientID string) (*StoredClient, error)
	}
	Privacy  privacy.Store
	Accounts *identity.Service
	Sessions interface {
		ListSessions(ctx context.Context, accountDID string) ([]*identity.Session, error)
	}
	Outbox BackchannelStore
	// ReplicaSubjects gives the subs of replicated accounts (nil: their
	// sign-ins end without notices to services; so do those of services
	// whose sub the home cannot give now).
	ReplicaSubjects ReplicaSubjectFunc
	// GlobalSecret keys the sid values (the provider's GlobalSecret).
	GlobalSecret []byte
	Now          func() time.Time
	Log          *slog.Logger
	// Queued is told when deliveries were queued (the provider wakes its
	// worker); nil: nobody.
	Queued func()
}

// Prepare returns the deliveries due when the sign-in of account did at
// clientID ends ("" every service it consented to). With sessionHash (the
// identity.Session IDHash of a sign-out) they carry that session's sid.
// Call it before the change: the consent, the sessions and the account's
// pairwise secret may be gone after.
func (b *Backchannel) Prepare(ctx context.Context, did, clientID, sessionHash string) ([]*BackchannelDelivery, error) {
	if b == nil || b.Outbox == nil {
		return nil, nil
	}
	var consents []*privacy.Consent
	if clientID != "" {
		c, err := b.Privacy.GetConsent(ctx, did, clientID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("logout notices: consent: %w", err)
		}
		consents = []*privacy.Consent{c}
	} else {
		cs, err := b.Privacy.ListConsents(ctx, did)
		if err != nil {
			return nil, fmt.Errorf("logout notices: consents: %w", err)
		}
		consents = cs
	}
	var acct *identity.Account
	var settings *privacy.Settings
	var sessions []*identity.Session
	sessionsRead := false
	now := b.Now().UTC()
	var out []*BackchannelDelivery
	for _, cons := range consents {
		sc, err := b.Clients.GetClient(ctx, cons.ClientID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("logout notices: client: %w", err)
		}
		c, err := clientFromStored(sc)
		if err != nil {
			return nil, err
		}
		if c.BackchannelLogoutURI == "" || c.Peer {
			continue
		}
		if acct == nil {
			if acct, err = b.Accounts.Lookup(ctx, did); err != nil {
				return nil, fmt.Errorf("logout notices: account: %w", err)
			}
			if settings, err = b.Privacy.GetSettings(ctx, did); err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("logout notices: settings: %w", err)
			}
		}
		sub, err := subjectFor(ctx, b.Accounts, b.ReplicaSubjects, acct, c, cons, settings)
		if replicaSubjectMissing(err) {
			continue // a replica's sub that was never learned here: the service never saw it
		}
		if err != nil {
			return nil, fmt.Errorf("logout notices: subject: %w", err)
		}
		sids := []string{""}
		switch {
		case sessionHash != "":
			sids = []string{sessionID(b.GlobalSecret, sessionHash, c.ClientID)}
		case c.BackchannelLogoutSessionRequired && b.Sessions != nil:
			if !sessionsRead {
				if sessions, err = b.Sessions.ListSessions(ctx, did); err != nil {
					return nil, fmt.Errorf("logout notices: sessions: %w", err)
				}
				sessionsRead = true
			}
			sids = sids[:0]
			for _, s := range sessions {
				sids = append(sids, sessionID(b.GlobalSecret, s.IDHash, c.ClientID))
			}
		}
		for _, sid := range sids {
			id, err := randomString(18)
			if err != nil {
				return nil, err
			}
			out = append(out, &BackchannelDelivery{ID: id, ClientID: c.ClientID, URI: c.BackchannelLogoutURI, Subject: sub, SID: sid,
				Status: BackchannelPending, NextAt: now, CreatedAt: now, ExpiresAt: now.Add(backchannelKeep)})
		}
	}
	return out, nil
}

// Queue stores deliveries, in the transaction ctx carries if any. A full
// outbox drops them with a warning rather than failing the change that
// caused them: a sign-out or a revocation must never be refused because a
// service cannot be told.
func (b *Backchannel) Queue(ctx context.Context, ds []*BackchannelDelivery) error {
	if b == nil || b.Outbox == nil || len(ds) == 0 {
		return nil
	}
	err := b.Outbox.QueueBackchannel(ctx, ds, BackchannelMaxPending)
	if errors.Is(err, store.ErrConflict) {
		b.log().WarnContext(ctx, "back-channel logout: the outbox is full; logout tokens dropped", "count", len(ds))
		return nil
	}
	if err != nil {
		return err
	}
	if b.Queued != nil {
		b.Queued()
	}
	return nil
}

// Ending prepares the deliveries due when the sign-in of account did at
// clientID ("" every service) ends, and returns what queues them: call it
// before the change and the result inside the change's transaction. A
// failure to prepare is logged and tells nobody: it must not block a
// revocation or a deletion.
func (b *Backchannel) Ending(ctx context.Context, did, clientID string) func(ctx context.Context) error {
	ds, err := b.Prepare(ctx, did, clientID, "")
	if err != nil {
		b.log().ErrorContext(ctx, "back-channel logout: could not prepare logout tokens", "err", err)
	}
	return func(ctx context.Context) error { return b.Queue(ctx, ds) }
}

// Notify prepares and queues at once, logging a failure: for callers that
// have nothing to undo when it fails (the change already happened).
func (b *Backchannel) Notify(ctx context.Context, did, clientID, sessionHash string) {
	ds, err := b.Prepare(ctx, did, clientID, sessionHash)
	if err == nil {
		err = b.Queue(ctx, ds)
	}
	if err != nil {
		b.log().ErrorContext(ctx, "back-channel logout: could not queue logout tokens", "err", err)
	}
}

func (b *Backchannel) log() *slog.Logger {
	if b.Log == nil {
		return slog.Default()
	}
	return b.Log
}

// sessionID is the sid of a sign-on session at a service: an HMAC of the
// session's stored id hash (never the cookie) and the client_id, so that
// two services cannot correlate a person by it.
func sessionID(secret []byte, sessionHash, clientID string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("sid\x00" + sessionHash + "\x00" + clientID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:24])
}

// SessionID is the sid the ID tokens of a sign-on session carry at a
// service.
func (p *Provider) SessionID(sessionHash, clientID string) string {
	return sessionID(p.GlobalSecret, sessionHash, clientID)
}

// backchannel is the provider's planner (nil when the store has no outbox).
func (p *Provider) backchannel() *Backchannel {
	p.bc.once.Do(func() {
		out, ok := p.Store.(BackchannelStore)
		if !ok {
			return
		}
		var sessions interface {
			ListSessions(ctx context.Context, accountDID string) ([]*identity.Session, error)
		}
		if p.Sessions != nil {
			sessions = p.Sessions.Store
		}
		p.bc.planner = &Backchannel{Clients: p.Store, Privacy: p.Privacy, Accounts: p.Accounts, Sessions: sessions, ReplicaSubjects: p.ReplicaSubjects,
			Outbox: out, GlobalSecret: p.GlobalSecret, Now: p.Now, Log: p.Log, Queued: p.wakeBackchannel}
	})
	return p.bc.planner
}

// Backchannel returns the provider's planner of logout deliveries, for the
// dashboard's revocations and deletions (nil without an outbox).
func (p *Provider) Backchannel() *Backchannel { return p.backchannel() }

// backchannelState is the provider's worker state.
type backchannelState struct {
	once    sync.Once
	planner *Backchannel
	wakeMu  sync.Mutex
	wake    chan struct{}
}

func (p *Provider) wakeBackchannel() {
	p.bc.wakeMu.Lock()
	defer p.bc.wakeMu.Unlock()
	if p.bc.wake == nil {
		p.bc.wake = make(chan struct{}, 1)
	}
	select {
	case p.bc.wake <- struct{}{}:
	default:
	}
}

func (p *Provider) wakeChan() chan struct{} {
	p.bc.wakeMu.Lock()
	defer p.bc.wakeMu.Unlock()
	if p.bc.wake == nil {
		p.bc.wake = make(chan struct{}, 1)
	}
	return p.bc.wake
}

// signedOut queues the logout tokens of a sign-out (logout.go): the
// session is about to end.
func (p *Provider) signedOut(ctx context.Context, did, sessionHash string) {
	if bc := p.backchannel(); bc != nil {
		bc.Notify(detached(ctx), did, "", sessionHash)
	}
}

// RunBackchannel sends the queued logout tokens until ctx ends: it polls
// the outbox every second (at once when this process queued some), sends
// what is due, and purges old records every ten minutes. retry is the wait
// after a first failure (0: DefaultBackchannelRetry); the second wait is
// four times as long. Several replicas may run it: a delivery is held by
// the worker that took it.
func (p *Provider) RunBackchannel(ctx context.Context, retry time.Duration) {
	bc := p.backchannel()
	if bc == nil {
		return
	}
	if retry <= 0 {
		retry = DefaultBackchannelRetry
	}
	wake := p.wakeChan()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	purge := time.NewTicker(10 * time.Minute)
	defer purge.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-purge.C:
			if _, err := bc.Outbox.PurgeBackchannel(ctx, p.now()); err != nil {
				p.Log.WarnContext(ctx, "back-channel logout: purge", "err", err)
			}
			continue
		case <-tick.C:
		case <-wake:
		}
		for ctx.Err() == nil {
			now := p.now()
			ds, err := bc.Outbox.ClaimBackchannel(ctx, now, now.Add(2*backchannelTimeout), backchannelBatch)
			if err != nil {
				p.Log.WarnContext(ctx, "back-channel logout: read the outbox", "err", err)
				break
			}
			var wg sync.WaitGroup
			for _, d := range ds {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p.attemptBackchannel(ctx, bc, d, retry)
				}()
			}
			wg.Wait()
			if len(ds) < backchannelBatch {
				break
			}
		}
	}
}

// attemptBackchannel sends one delivery and records the outcome.
func (p *Provider) attemptBackchannel(ctx context.Context, bc *Backchannel, d *BackchannelDelivery, retry time.Duration) {
	err := p.sendLogoutToken(ctx, d)
	if ctx.Err() != nil {
		return // shutting down: the delivery is taken again after the hold
	}
	now := p.now()
	d.Attempts++
	switch {
	case err == nil:
		d.Status, d.LastError, d.ExpiresAt = BackchannelDone, "", now.Add(backchannelKeep)
	case d.Attempts >= BackchannelAttempts || errors.Is(err, errPermanent):
		d.Status, d.LastError, d.ExpiresAt = BackchannelFailed, truncate(err.Error(), 300), now.Add(backchannelKeep)
		p.Log.WarnContext(ctx, "back-channel logout: delivery failed", "client_id", d.ClientID, "attempts", d.Attempts, "err", err)
	default:
		wait := retry
		for i := 1; i < d.Attempts; i++ {
			wait *= 4
		}
		d.NextAt, d.LastError = now.Add(wait), truncate(err.Error(), 300)
	}
	if err := bc.Outbox.UpdateBackchannel(detached(ctx), d); err != nil {
		p.Log.WarnContext(ctx, "back-channel logout: record the delivery", "err", err)
	}
}

var errPermanent = errors.New("will not succeed")

// sendLogoutToken signs a logout token for d and POSTs it.
func (p *Provider) sendLogoutToken(ctx context.Context, d *BackchannelDelivery) error {
	c, err := LookupClient(ctx, p.Store, d.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: the service is no longer registered", errPermanent)
	}
	if err != nil {
		return err
	}
	uri := d.URI
	if c.BackchannelLogoutURI != "" {
		uri = c.BackchannelLogoutURI // changed since: the service's current endpoint
	}
	tok, err := p.logoutToken(ctx, c, d)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, backchannelTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(url.Values{"logout_token": {tok}}.Encode()))
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.Outbound.HTTPClient().Do(req)
	if err != nil {
		return fmt.Errorf("POST: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the backchannel_logout_uri answered %d", resp.StatusCode)
	}
	return nil
}

// logoutToken signs a logout token (Back-Channel Logout §2.4): typ
// logout+jwt, the events claim, sub and/or sid, never a nonce; signed
// with the service's ID token algorithm.
func (p *Provider) logoutToken(ctx context.Context, c *Client, d *BackchannelDelivery) (string, error) {
	now := p.now()
	claims := jwt.MapClaims{
		"iss":    p.Issuer,
		"aud":    c.ClientID,
		"iat":    now.Unix(),
		"exp":    now.Add(logoutTokenTTL).Unix(),
		"jti":    d.ID,
		"events": map[string]any{backchannelEvent: map[string]any{}},
	}
	if d.Subject != "" {
		claims["sub"] = d.Subject
	}
	if d.SID != "" {
		claims["sid"] = d.SID
	}
	tok, _, err := p.signer.Generate(ctx, claims, &jwt.Headers{Extra: map[string]any{"typ": "logout+jwt", algHeader: c.SigningAlg()}})
	if err != nil {
		return "", fmt.Errorf("sign logout token: %w", err)
	}
	return tok, nil
}
