package federation

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/store"
)

// Key trust: a peer's keys do not change behind the operator's back.
//
// The keys of a peer are pinned at `peer add` (its JWKS, checked against
// its did:web document). Each cloud serves a signed key-set statement at
// GET /federation/v1/keys (KeysPath, discovery entry
// federation_keys_endpoint): a JWS in the JSON serialization over
// {iss, keys, iat} — keys being its published JWK Set's keys — with one
// signature per published signing key, each with typ KeySetType and the
// key's kid.
//
// When a peer's event, request token or brokered ID token names a kid that
// is not pinned, the follower (at most every 10 seconds per peer) fetches
// the peer's JWKS, DID document and statement. The statement's set is
// pinned only when:
//
//   - a signature of it verifies with a key pinned for that peer (the
//     vouching key), with typ KeySetType;
//   - its iss is the peer and its iat is recent (at most keySetMaxAge old,
//     keySetSkew ahead);
//   - every key of it is a public signing key with a kid, and is in the
//     peer's DID document with the same key material;
//   - it is at most maxKeySet bytes, with at most maxKeySetKeys keys and
//     signatures.
//
// Otherwise nothing changes: what the unknown key signed is refused (an
// event is quarantined, a request token or an ID token refused). If the
// peer publishes that key (in its JWKS and DID document), it is recorded
// as a pending key of the peer (kid, first and last seen, why it was not
// accepted; at most MaxPendingKeys per peer), shown by `peer list` and
// logged at warn once; a kid that the peer does not even publish is merely
// refused. `commonsid peer trust URL` (TrustPeer) re-discovers the peer as
// `peer add` does, pins what it publishes now, clears its pending keys,
// and the quarantined events of the peer are retried.

// KeySetType is the typ of a key-set statement.
const KeySetType = "commonsid-keyset+jws"

// KeysPath is where a cloud serves its key-set statement.
const KeysPath = "/federation/v1/keys"

// Bounds of a key-set statement and of what is kept of untrusted keys.
const (
	maxKeySet      = 64 << 10
	maxKeySetKeys  = 16
	keySetMaxAge   = 10 * time.Minute
	keySetSkew     = time.Minute
	keyRefreshWait = 10 * time.Second
	// MaxPendingKeys is how many pending keys are kept per peer; past it
	// the oldest are forgotten.
	MaxPendingKeys = 16
	maxKIDShown    = 100
)

// PendingKey is a key a peer publishes that is not pinned here and that no
// pinned key vouched for.
type PendingKey struct {
	Peer      string
	KID       string
	Reason    string
	FirstSeen time.Time
	LastSeen  time.Time
}

// KeyTrustStore keeps the pending keys of peers.
type KeyTrustStore interface {
	// PutPendingKey inserts the key, or updates its reason and last seen
	// time when (peer, kid) is there; it reports whether it was new, then
	// keeps at most max keys of the peer, dropping the oldest.
	PutPendingKey(ctx context.Context, k *PendingKey, max int) (bool, error)
	// ListPendingKeys returns a peer's pending keys, oldest first.
	ListPendingKeys(ctx context.Context, peer string) ([]*PendingKey, error)
	// ClearPendingKeys forgets every pending key of a peer.
	ClearPendingKeys(ctx context.Context, peer string) error
}

// keySetPayload is what a key-set statement signs: a JWK Set with the
// cloud's issuer and the time it was made.
type keySetPayload struct {
	Issuer   string            `json:"iss"`
	Keys     []jose.JSONWebKey `json:"keys"`
	IssuedAt int64             `json:"iat"`
}

// KeySet makes this cloud's key-set statement: its published keys, signed
// by each of them.
func (f *Federation) KeySet(ctx context.Context) ([]byte, error) {
	if f.Keys == nil {
		return nil, errors.New("no signing keys")
	}
	signers, err := f.Keys.PublishedSigners(ctx)
	if err != nil {
		return nil, err
	}
	pub, err := f.Keys.Published(ctx)
	if err != nil {
		return nil, err
	}
	if len(signers) == 0 || len(pub) == 0 {
		return nil, errors.New("no published signing keys")
	}
	raw, err := json.Marshal(keySetPayload{Issuer: f.Issuer, Keys: pub, IssuedAt: f.now().Unix()})
	if err != nil {
		return nil, err
	}
	sks := make([]jose.SigningKey, 0, len(signers))
	for _, s := range signers {
		sks = append(sks, jose.SigningKey{Algorithm: jose.SignatureAlgorithm(s.Alg),
			Key: jose.JSONWebKey{Key: s.Key, KeyID: s.KID, Algorithm: s.Alg, Use: "sig"}})
	}
	signer, err := jose.NewMultiSigner(sks, (&jose.SignerOptions{}).WithType(KeySetType))
	if err != nil {
		return nil, fmt.Errorf("key-set statement: %w", err)
	}
	obj, err := signer.Sign(raw)
	if err != nil {
		return nil, fmt.Errorf("key-set statement: %w", err)
	}
	return []byte(obj.FullSerialize()), nil
}

// keySetReuse is how long one key-set statement is served.
const keySetReuse = 10 * time.Second

// serveKeys answers GET /federation/v1/keys with the key-set statement.
// Like the JWKS it is public.
// The statement of one published key set is made at most once per
// keySetReuse and served from memory in between: an anonymous flood costs
// no signatures. A change of the published keys makes a new one at once.
func (f *Federation) serveKeys(w http.ResponseWriter, r *http.Request) {
	var (
		raw []byte
		err error
	)
	if f.Keys == nil {
		err = errors.New("no signing keys")
	}
	var pub []jose.JSONWebKey
	if err == nil {
		pub, err = f.Keys.Published(r.Context())
	}
	if err == nil {
		set := strings.Join(kids(&jose.JSONWebKeySet{Keys: pub}), " ")
		f.keySetMu.Lock()
		if f.keySetKids == set && time.Since(f.keySetAt) < keySetReuse {
			raw = f.keySetRaw
		}
		f.keySetMu.Unlock()
		if raw == nil {
			if raw, err = f.KeySet(r.Context()); err == nil {
				f.keySetMu.Lock()
				f.keySetRaw, f.keySetKids, f.keySetAt = raw, set, time.Now()
				f.keySetMu.Unlock()
			}
		}
	}
	if err != nil {
		f.log().ErrorContext(r.Context(), "key-set statement", "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "the key-set statement could not be made")
		return
	}
	w.Header().Set("Content-Type", "application/jose+json")
	w.Header().Set("Cache-Control", "public, max-age=10")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Write(raw)
}

// verifyKeySet checks a peer's key-set statement against the keys pinned
// for it and its DID document (see the rules above). It returns the set
// and the kid of the pinned key that vouched for it.
func verifyKeySet(p *Peer, raw []byte, doc *did.Document, now time.Time) (*jose.JSONWebKeySet, string, error) {
	if len(raw) > maxKeySet {
		return nil, "", fmt.Errorf("its key-set statement is larger than %d bytes", maxKeySet)
	}
	obj, err := jose.ParseSignedJSON(string(raw), signingAlgs)
	if err != nil {
		return nil, "", errors.New("its key-set statement is not a JWS in the JSON serialization")
	}
	if len(obj.Signatures) == 0 || len(obj.Signatures) > maxKeySetKeys {
		return nil, "", fmt.Errorf("its key-set statement has %d signatures (1 to %d expected)", len(obj.Signatures), maxKeySetKeys)
	}
	_, sig, payload, err := obj.VerifyMulti(&p.JWKS)
	if err != nil {
		return nil, "", fmt.Errorf("its key-set statement is not signed by a key pinned here (%s)", strings.Join(kids(&p.JWKS), ", "))
	}
	if typ, _ := sig.Protected.ExtraHeaders[jose.HeaderType].(string); typ != KeySetType {
		return nil, "", fmt.Errorf("its key-set statement has typ %q, not %s", shorten(typ), KeySetType)
	}
	by := sig.Protected.KeyID
	if len(p.JWKS.Key(by)) == 0 {
		return nil, "", errors.New("its key-set statement names no pinned key in its protected header")
	}
	var pl keySetPayload
	if err := json.Unmarshal(payload, &pl); err != nil {
		return nil, "", errors.New("its key-set statement's payload is not a key set")
	}
	if pl.Issuer != p.Issuer {
		return nil, "", fmt.Errorf("its key-set statement is for issuer %q", shorten(pl.Issuer))
	}
	iat := time.Unix(pl.IssuedAt, 0)
	if pl.IssuedAt == 0 || iat.Before(now.Add(-keySetMaxAge)) || iat.After(now.Add(keySetSkew)) {
		return nil, "", errors.New("its key-set statement is not recent (iat)")
	}
	if len(pl.Keys) == 0 || len(pl.Keys) > maxKeySetKeys {
		return nil, "", fmt.Errorf("its key-set statement holds %d keys (1 to %d expected)", len(pl.Keys), maxKeySetKeys)
	}
	set := &jose.JSONWebKeySet{Keys: pl.Keys}
	if err := checkInDocument(p.Issuer, doc, set); err != nil {
		return nil, "", err
	}
	return set, by, nil
}

// checkInDocument checks that every key of set is a valid public key with
// a kid, named once, and a verification method of the peer's did:web
// document with the same key material.
func checkInDocument(issuer string, doc *did.Document, set *jose.JSONWebKeySet) error {
	seen := map[string]bool{}
	for _, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() || k.KeyID == "" || (k.Use != "" && k.Use != "sig") {
			return fmt.Errorf("%s: an invalid or private key in its key set", issuer)
		}
		if seen[k.KeyID] {
			return fmt.Errorf("%s: key %s twice in its key set", issuer, shorten(k.KeyID))
		}
		seen[k.KeyID] = true
		inDoc, err := doc.PublicKey(doc.ID + "#" + k.KeyID)
		if err != nil {
			return fmt.Errorf("%s: key %s is not in its DID document", issuer, shorten(k.KeyID))
		}
		eq, ok := k.Key.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !eq.Equal(inDoc) {
			return fmt.Errorf("%s: key %s differs from the one in its DID document", issuer, shorten(k.KeyID))
		}
	}
	return nil
}

// fetchKeySet fetches a peer's key-set statement and verifies it.
func (f *Federation) fetchKeySet(ctx context.Context, p *Peer, doc *did.Document) (*jose.JSONWebKeySet, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := p.base() + KeysPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "application/jose+json")
	resp, err := f.client().Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("no key-set statement: fetch %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("no key-set statement: fetch %s: %s", u, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySet+1))
	if err != nil {
		return nil, "", fmt.Errorf("no key-set statement: fetch %s: %v", u, err)
	}
	return verifyKeySet(p, raw, doc, f.now())
}

// refreshKeys runs when kid is not pinned for p: it pins the set the peer
// vouched for with a pinned key, or records kid as a pending key when the
// peer publishes it unvouched. It returns why kid stays refused, or nil
// when it is pinned now.
func (f *Federation) refreshKeys(ctx context.Context, p *Peer, kid string) error {
	published, doc, err := f.fetchKeys(ctx, p.Issuer, p.JWKSURI)
	if err != nil {
		return fmt.Errorf("key %q is not a pinned key of %s, and its keys could not be fetched again: %w", shorten(kid), p.Issuer, err)
	}
	vouched, by, verr := f.fetchKeySet(ctx, p, doc)
	if verr == nil && !sameKeys(vouched, &p.JWKS) {
		raw, _ := json.Marshal(vouched)
		now := f.now()
		if err := f.Store.SetPeerKeys(ctx, p.Issuer, raw, now); err != nil {
			return err
		}
		old := kids(&p.JWKS)
		p.JWKS, p.KeysAt = *vouched, now
		if err := f.Store.ClearPendingKeys(ctx, p.Issuer); err != nil {
			return err
		}
		f.log().Info(fmt.Sprintf("peer %s rotated keys, vouched by kid %s", p.Issuer, by),
			"peer", p.Issuer, "kid", by, "keys", strings.Join(kids(vouched), ","), "previous", strings.Join(old, ","))
	}
	if len(p.JWKS.Key(kid)) > 0 {
		return nil
	}
	hint := fmt.Sprintf("if %s rotated its keys, confirm the new key with its operator, then run: commonsid peer trust %s", p.Issuer, p.Issuer)
	if len(published.Key(kid)) == 0 {
		return fmt.Errorf("key %q is not a key of %s (not in its JWKS); %s", shorten(kid), p.Issuer, hint)
	}
	why := "its key-set statement does not hold it"
	if verr != nil {
		why = verr.Error()
	}
	now := f.now()
	fresh, err := f.Store.PutPendingKey(ctx, &PendingKey{Peer: p.Issuer, KID: shorten(kid), Reason: why, FirstSeen: now, LastSeen: now}, MaxPendingKeys)
	if err != nil {
		return err
	}
	if fresh {
		f.log().Warn("a peer publishes a key that no pinned key vouched for; what it signs is refused",
			"peer", p.Issuer, "kid", shorten(kid), "reason", why, "fix", "commonsid peer trust "+p.Issuer)
	}
	return fmt.Errorf("key %q of %s is not trusted here (%s); %s", shorten(kid), p.Issuer, why, hint)
}

// throttleKeys reports whether p's keys may be fetched now (at most every
// keyRefreshWait), and notes the fetch.
func (f *Federation) throttleKeys(issuer string) bool {
	f.keyMu.Lock()
	defer f.keyMu.Unlock()
	if f.keyFetch == nil {
		f.keyFetch = map[string]time.Time{}
	}
	if time.Since(f.keyFetch[issuer]) < keyRefreshWait {
		return false
	}
	f.keyFetch[issuer] = time.Now()
	return true
}

// TrustChange reports what TrustPeer changed.
type TrustChange struct {
	Peer    *Peer
	Old     []string // kids pinned before
	New     []string // kids pinned now
	Pending []*PendingKey
}

// TrustPeer is the operator's confirmation of a peer's current keys: it
// re-discovers the peer as AddPeer does (discovery document, JWKS checked
// against its did:web document), pins the keys it publishes now and
// clears its pending keys. The caller then retries its quarantined events.
func (f *Federation) TrustPeer(ctx context.Context, issuer string) (*TrustChange, error) {
	iss, err := NormalizeIssuer(issuer)
	if err != nil {
		return nil, err
	}
	p, err := f.Store.GetPeer(ctx, iss)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s is %w", iss, ErrNotPeer)
	}
	if err != nil {
		return nil, err
	}
	found, err := f.Discover(ctx, iss)
	if err != nil {
		return nil, err
	}
	pending, err := f.Store.ListPendingKeys(ctx, iss)
	if err != nil {
		return nil, err
	}
	ch := &TrustChange{Old: kids(&p.JWKS), New: kids(&found.JWKS), Pending: pending}
	p.JWKS, p.JWKSURI, p.Metadata, p.KeysAt = found.JWKS, found.JWKSURI, found.Metadata, f.now()
	err = f.Store.InTx(ctx, func(ctx context.Context) error {
		if err := f.Store.PutPeer(ctx, p); err != nil {
			return err
		}
		return f.Store.ClearPendingKeys(ctx, iss)
	})
	if err != nil {
		return nil, err
	}
	f.log().Info("peer keys trusted by the operator", "peer", iss, "keys", strings.Join(ch.New, ","), "previous", strings.Join(ch.Old, ","))
	ch.Peer = p
	return ch, nil
}

// didDocument fetches the did:web document of a peer's issuer.
func (f *Federation) didDocument(ctx context.Context, issuer string) (*did.Document, error) {
	cloudDID, err := did.WebDID(issuer)
	if err != nil {
		return nil, err
	}
	path, err := did.WebDocumentPath(issuer)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(issuer)
	var doc did.Document
	if err := f.getJSON(ctx, u.Scheme+"://"+u.Host+path, &doc); err != nil {
		return nil, err
	}
	if doc.ID != cloudDID {
		return nil, fmt.Errorf("%s: its DID document is for %q, want %q", issuer, shorten(doc.ID), cloudDID)
	}
	return &doc, nil
}

func kids(set *jose.JSONWebKeySet) []string {
	out := make([]string, 0, len(set.Keys))
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

// sameKeys reports whether two sets name the same kids.
func sameKeys(a, b *jose.JSONWebKeySet) bool {
	x, y := kids(a), kids(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// shorten bounds a string from outside for messages and records.
func shorten(s string) string {
	if len(s) > maxKIDShown {
		return strings.ToValidUTF8(s[:maxKIDShown], "") + "…"
	}
	return s
}
