// Package federation joins independent clouds into one commons: peers, the
// signed event feed each cloud publishes about the accounts it is home to,
// replication of peers' feeds, the trust list of member issuers, tokens of
// every member honored here, brokered sign-in with a home cloud and forks of
// peers' services. The protocol is described in docs/federation.md.
package federation

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/access"
	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/privacy"
)

// Peer is another cloud this cloud federates with.
type Peer struct {
	Issuer   string
	DID      string // did:web of the issuer's host
	JWKSURI  string
	JWKS     jose.JSONWebKeySet // pinned keys, refreshed from JWKSURI and the did:web document
	Endpoint string             // base URL the feed is fetched from; "" for the issuer
	Metadata []byte             // the peer's discovery document
	Cursor   int64              // last sequence number of its feed applied here
	AddedAt  time.Time
	KeysAt   time.Time
	// LastEventAt is when the newest applied event happened on the peer.
	LastEventAt time.Time
	LastError   string
}

// base is where the peer's federation endpoints are reached.
func (p *Peer) base() string {
	if p.Endpoint != "" {
		return p.Endpoint
	}
	return p.Issuer
}

// LogEvent is one entry of this cloud's event log, as stored.
type LogEvent struct {
	Seq        int64
	Type       string
	AccountDID string
	At         time.Time
	Payload    map[string]any
}

// Applied records one peer event applied here.
type Applied struct {
	Peer       string
	Seq        int64
	Type       string
	AccountDID string
	EventAt    time.Time
	AppliedAt  time.Time
}

// Rejected records a peer event refused here.
type Rejected struct {
	Peer   string
	Seq    int64
	Reason string
	At     time.Time
	Event  string
}

// RevokedToken is an access token of a peer revoked on its home cloud.
type RevokedToken struct {
	Hash      string // hex SHA-256 of the JWT's signature segment
	ExpiresAt time.Time
}

// Store is what federation keeps. Replica writes never add to this cloud's
// own event log.
type Store interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error

	PutPeer(ctx context.Context, p *Peer) error // insert, or update everything but the cursor
	GetPeer(ctx context.Context, issuer string) (*Peer, error)
	ListPeers(ctx context.Context) ([]*Peer, error)
	DeletePeer(ctx context.Context, issuer string) error
	SetPeerKeys(ctx context.Context, issuer string, jwks []byte, at time.Time) error
	SetPeerError(ctx context.Context, issuer, msg string) error

	// MarkApplied records (peer, seq); false when it was applied before.
	MarkApplied(ctx context.Context, a *Applied) (bool, error)
	SetPeerCursor(ctx context.Context, issuer string, seq int64, eventAt time.Time) error
	RecordRejected(ctx context.Context, r *Rejected) error
	ListApplied(ctx context.Context, peer string, after int64, limit int) ([]*Applied, error)
	ListRejected(ctx context.Context, peer string, limit int) ([]*Rejected, error)

	FeedEvents(ctx context.Context, after int64, limit int) ([]LogEvent, error)
	LastEventSeq(ctx context.Context) (int64, error)
	OnEvents(fn func())

	GetAccount(ctx context.Context, did string) (*identity.Account, error)
	GetAccountByHandle(ctx context.Context, handle string) (*identity.Account, error)
	GetSettings(ctx context.Context, did string) (*privacy.Settings, error)
	GetConsent(ctx context.Context, did, clientID string) (*privacy.Consent, error)
	ListConsents(ctx context.Context, did string) ([]*privacy.Consent, error)
	ClientMetadata(ctx context.Context, clientID string) ([]byte, error)

	PutReplica(ctx context.Context, a *identity.Account) error
	DropReplica(ctx context.Context, did string) error
	PutReplicaSettings(ctx context.Context, did string, s *privacy.Settings, at time.Time) error
	PutReplicaConsent(ctx context.Context, c *privacy.Consent) error
	DeleteReplicaConsents(ctx context.Context, did, clientIDPrefix string) error
	PutRevokedTokens(ctx context.Context, issuer string, ts []RevokedToken) error
	TokenRevoked(ctx context.Context, issuer, hash string) (bool, error)
	PutRemoteService(ctx context.Context, issuer, clientID string, metadata []byte, at time.Time) error
	RemoteService(ctx context.Context, issuer, clientID string) ([]byte, error)
	DeleteRemoteService(ctx context.Context, issuer, clientID string) error

	QuarantineStore    // quarantine.go
	EpochStore         // epoch.go
	ServiceSectorStore // services.go
	KeyTrustStore      // keytrust.go
	SubjectStore       // subjects.go
	WitnessStore       // witness.go
	// The did:webvh logs of accounts (didlogs.go).
	identity.DIDLogStore
}

// Federation is this cloud's side of the commons.
type Federation struct {
	Issuer   string
	DID      string // this cloud's did:web
	Store    Store
	Keys     *keys.Manager
	Accounts *identity.Service
	HTTP     *http.Client
	Log      *slog.Logger
	Now      func() time.Time
	// StartSession starts this cloud's sign-on session after a brokered
	// sign-in; ErrorPage renders a readable error page.
	StartSession func(w http.ResponseWriter, r *http.Request, a *identity.Account, amr []string, detail map[string]any) error
	ErrorPage    func(w http.ResponseWriter, r *http.Request, status int, title, msg string)
	// ServiceOf names the service (its client_id here) that a brokered
	// sign-in returning to returnTo signs the person in to; nil or "": none
	// (broker.go).
	ServiceOf func(ctx context.Context, returnTo string) string
	// ActiveKey returns the key to sign with: the one the published JWKS
	// names as active (nil: the newest active key in the store).
	ActiveKey func(ctx context.Context, alg string) (*keys.Signer, error)
	// Limits bounds the live streams served and the peer feeds read.
	Limits Limits
	// Resolver resolves the account DIDs that peers' events name, through
	// the cloud's guarded outbound client; nil: a resolver on the default
	// guarded client of this cloud's issuer (outbound.go). A zero
	// did.Resolver would let an event naming a did:web on a loopback host
	// reach that host.
	Resolver *did.Resolver
	// OnMovedAway is called, inside the transaction that stores it, when a
	// peer's did:webvh log moves an account homed here to newHome
	// (didlogs.go); nil: the account is left as it is.
	OnMovedAway func(ctx context.Context, accountDID, newHome string) error
	// Access keeps contribution grants (access.go); nil: account events
	// carry none and replicas keep none.
	Access access.Store

	streams      streamState
	wake         wakeup
	closing      chan struct{}
	closeMu      sync.Mutex
	keyMu        sync.Mutex
	keyFetch     map[string]time.Time // last JWKS refresh per peer
	signMu       sync.Mutex
	signed       map[signedKey]cachedItem // recently served events, per peer
	rejMu        sync.Mutex
	lastRejected map[string]string // per peer: the last event refused, and why
	keySetMu     sync.Mutex
	keySetRaw    []byte    // the key-set statement served (keytrust.go)
	keySetKids   string    // of the published keys it covers
	keySetAt     time.Time // when it was made
	docMu        sync.Mutex
	docs         map[string]*did.Document // resolved did:key documents
	sectors      sectorCache              // services.go
	subjects     subjectState             // subjects.go
	witnessLimit subjectState             // witness.go: per-peer budget of witness requests
}

// ErrNotPeer reports a cloud that is not (or no longer) a peer.
var ErrNotPeer = errors.New("not a peer of this cloud")

func (f *Federation) now() time.Time {
	if f.Now != nil {
		return f.Now().UTC()
	}
	return time.Now().UTC()
}

// client carries requests to peers: HTTP, else a guarded client (see
// outbound.go).
func (f *Federation) client() *http.Client {
	if f.HTTP != nil {
		return f.HTTP
	}
	return defaultClient(f.Issuer)
}

func (f *Federation) log() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.Default()
}

// wakeup lets any number of waiters learn that something happened.
type wakeup struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next notify.
func (w *wakeup) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

func (w *wakeup) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// EventsAppended wakes the live streams; wire it to the store's
// notifications of committed events.
func (f *Federation) EventsAppended() { f.wake.notify() }

// Shutdown ends the live streams being served, so that the HTTP server's
// graceful shutdown does not wait on them.
func (f *Federation) Shutdown() {
	f.closeMu.Lock()
	defer f.closeMu.Unlock()
	if f.closing == nil {
		f.closing = make(chan struct{})
	}
	select {
	case <-f.closing:
	default:
		close(f.closing)
	}
}

func (f *Federation) closed() <-chan struct{} {
	f.closeMu.Lock()
	defer f.closeMu.Unlock()
	if f.closing == nil {
		f.closing = make(chan struct{})
	}
	return f.closing
}
