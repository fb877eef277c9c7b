package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/privacy"
)

// hostilePeer is a programmable federation peer on 127.0.0.1. It speaks
// the protocol of docs/federation.md well enough for a real cloud to add it
// with `peer add` (discovery with the federation entries, a did:web
// document and a JWKS with its own ES256 key) and to follow its feed
// (/federation/v1/events pages and the /federation/v1/stream live stream),
// whose content each test scripts with push. It is also the home of
// accounts of its own (hostileAccount: did:key identities whose keys it
// holds), so it can make genuine person signatures, or wrong ones.
//
// It does not check the request tokens it is shown: it serves its feed to
// anyone, as an attacker would. Event builders (event and its options)
// make valid, forged, re-signed, replayed, mis-sequenced, mis-addressed and
// oversize events; the suite in hostile_suite_test.go uses them.
type hostilePeer struct {
	t      testing.TB
	srv    *httptest.Server
	issuer string
	did    string
	key    *ecdsa.PrivateKey
	kid    string

	mu        sync.Mutex
	jwks      []jose.JSONWebKey // the published JWKS
	docKeys   []jose.JSONWebKey // the verification methods of its did:web document
	items     []federation.Item // the feed, in push order
	seq       int64             // the last sequence number handed out
	changed   chan struct{}     // closed and replaced at every push
	streams   map[int]context.CancelFunc
	streamN   int
	routes    map[string]http.HandlerFunc // scripted extra paths
	callbacks []url.Values                // queries seen at /federation/v1/callback

	streamsServed atomic.Int64
}

// newHostilePeer starts a hostile peer; it stops when the test ends.
func newHostilePeer(t testing.TB) *hostilePeer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostilePeer{t: t, key: key, kid: "hostile-" + randString(6), changed: make(chan struct{}),
		streams: map[int]context.CancelFunc{}, routes: map[string]http.HandlerFunc{}}
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: h.kid, Algorithm: string(jose.ES256), Use: "sig"}
	h.jwks, h.docKeys = []jose.JSONWebKey{pub}, []jose.JSONWebKey{pub}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serveHTTP))
	h.issuer = h.srv.URL
	if h.did, err = did.WebDID(h.issuer); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.cutStreams()
		h.srv.CloseClientConnections()
		h.srv.Close()
	})
	return h
}

// handle scripts an extra path (a did:web document, a redirect).
func (h *hostilePeer) handle(path string, fn http.HandlerFunc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.routes[path] = fn
}

func (h *hostilePeer) writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (h *hostilePeer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		h.writeJSON(w, map[string]any{
			"issuer": h.issuer, "jwks_uri": h.issuer + "/jwks.json",
			"authorization_endpoint": h.issuer + "/authorize", "token_endpoint": h.issuer + "/token",
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"ES256"},
			"federation_events_endpoint":            h.issuer + "/federation/v1/events",
			"federation_stream_endpoint":            h.issuer + "/federation/v1/stream",
			"federation_members_endpoint":           h.issuer + "/federation/v1/members",
		})
	case "/jwks.json":
		h.mu.Lock()
		set := jose.JSONWebKeySet{Keys: slices.Clone(h.jwks)}
		h.mu.Unlock()
		h.writeJSON(w, set)
	case "/.well-known/did.json":
		h.writeJSON(w, h.document())
	case "/federation/v1/events":
		h.servePage(w, r)
	case "/federation/v1/stream":
		h.serveStream(w, r)
	case federation.CallbackPath:
		h.mu.Lock()
		h.callbacks = append(h.callbacks, r.URL.Query())
		h.mu.Unlock()
		fmt.Fprintln(w, "hostile peer callback")
	default:
		h.mu.Lock()
		fn := h.routes[r.URL.Path]
		h.mu.Unlock()
		if fn == nil {
			http.NotFound(w, r)
			return
		}
		fn(w, r)
	}
}

// document is the peer's did:web document: its docKeys as JsonWebKey2020.
func (h *hostilePeer) document() *did.Document {
	h.mu.Lock()
	defer h.mu.Unlock()
	doc := &did.Document{Context: []string{"https://www.w3.org/ns/did/v1", did.ContextJWS2020}, ID: h.did}
	for i := range h.docKeys {
		id := h.did + "#" + h.docKeys[i].KeyID
		doc.VerificationMethod = append(doc.VerificationMethod, did.VerificationMethod{ID: id, Type: "JsonWebKey2020", Controller: h.did, PublicKeyJWK: &h.docKeys[i]})
		doc.AssertionMethod = append(doc.AssertionMethod, id)
	}
	return doc
}

// rotateKey publishes a new ES256 key in the JWKS, and in the did:web
// document when inDocument is set, and returns it with its key id. Events
// signed with it name a kid the follower has not pinned, so the follower
// fetches the keys again.
func (h *hostilePeer) rotateKey(inDocument bool) (*ecdsa.PrivateKey, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		h.t.Fatal(err)
	}
	kid := "rotated-" + randString(6)
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.jwks = append(h.jwks, pub)
	if inDocument {
		h.docKeys = append(h.docKeys, pub)
	}
	return key, kid
}

// keySet is a key-set statement of this peer (GET
// /federation/v1/keys): its published keys, signed by each key given
// (a rotated key vouching for itself, or a pinned key vouching for it).
func (h *hostilePeer) keySet(signers map[string]*ecdsa.PrivateKey) []byte {
	h.mu.Lock()
	raw, _ := json.Marshal(map[string]any{"iss": h.issuer, "keys": h.jwks, "iat": time.Now().Unix()})
	h.mu.Unlock()
	var sks []jose.SigningKey
	for kid, k := range signers {
		sks = append(sks, jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}})
	}
	signer, err := jose.NewMultiSigner(sks, (&jose.SignerOptions{}).WithType(federation.KeySetType))
	if err != nil {
		h.t.Fatal(err)
	}
	obj, err := signer.Sign(raw)
	if err != nil {
		h.t.Fatal(err)
	}
	return []byte(obj.FullSerialize())
}

// withdrawKey takes the key kid out of the JWKS and the did:web document.
func (h *hostilePeer) withdrawKey(kid string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	other := func(k jose.JSONWebKey) bool { return k.KeyID == kid }
	h.jwks, h.docKeys = slices.DeleteFunc(h.jwks, other), slices.DeleteFunc(h.docKeys, other)
}

// lastSeq is the last sequence number handed out.
func (h *hostilePeer) lastSeq() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}

// sorted is the feed ordered by sequence (a page is served in that order).
func (h *hostilePeer) sorted() []federation.Item {
	h.mu.Lock()
	items := slices.Clone(h.items)
	h.mu.Unlock()
	slices.SortStableFunc(items, func(a, b federation.Item) int { return int(min(max(a.Seq-b.Seq, -1), 1)) })
	return items
}

func (h *hostilePeer) servePage(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 {
		limit = 100
	}
	out := []federation.Item{}
	more := false
	for _, it := range h.sorted() {
		if it.Seq <= after {
			continue
		}
		if len(out) == limit {
			more = true
			break
		}
		out = append(out, it)
	}
	next := after
	if len(out) > 0 {
		next = out[len(out)-1].Seq
	}
	h.writeJSON(w, map[string]any{"iss": h.issuer, "events": out, "next": next, "more": more})
}

// serveStream sends the events after the cursor, then every event pushed
// while the stream lasts (in push order, whatever its sequence number),
// with a heartbeat every second of silence.
func (h *hostilePeer) serveStream(w http.ResponseWriter, r *http.Request) {
	h.streamsServed.Add(1)
	fl, _ := w.(http.Flusher)
	q := r.URL.Query().Get("after")
	if q == "" {
		q = r.Header.Get("Last-Event-ID")
	}
	after, _ := strconv.ParseInt(q, 10, 64)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	h.mu.Lock()
	h.streamN++
	n := h.streamN
	h.streams[n] = cancel
	sent := len(h.items)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.streams, n)
		h.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Connection", "close")
	send := func(it federation.Item) bool {
		raw, _ := json.Marshal(it)
		_, err := fmt.Fprintf(w, "id: %d\nevent: event\ndata: %s\n\n", it.Seq, raw)
		return err == nil
	}
	fmt.Fprintf(w, ": %s\n\n", h.issuer)
	for _, it := range h.sorted() {
		if it.Seq > after && !send(it) {
			return
		}
	}
	fl.Flush()
	for {
		h.mu.Lock()
		fresh := slices.Clone(h.items[min(sent, len(h.items)):])
		sent = len(h.items)
		changed := h.changed
		h.mu.Unlock()
		for _, it := range fresh {
			if !send(it) {
				return
			}
		}
		fl.Flush()
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-time.After(time.Second):
			if _, err := io.WriteString(w, ": ping\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// cutStreams ends the live streams being served: the follower reconnects,
// pages from its cursor and retries its quarantined events.
func (h *hostilePeer) cutStreams() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.streams {
		c()
	}
}

// push adds events to the feed and wakes the live streams.
func (h *hostilePeer) push(items ...federation.Item) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.items = append(h.items, items...)
	close(h.changed)
	h.changed = make(chan struct{})
}

// drop removes the events with sequence number seq from the feed.
func (h *hostilePeer) drop(seq int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.items = slices.DeleteFunc(h.items, func(it federation.Item) bool { return it.Seq == seq })
}

// nextSeq hands out the next sequence number of the feed.
func (h *hostilePeer) nextSeq() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	return h.seq
}

// hostileAccount is an account the hostile peer is home to: a did:key (or
// any DID) with its private key.
type hostileAccount struct {
	did     string
	kid     string // DID URL of its verification method
	signer  crypto.Signer
	handle  string
	secret  string // pairwise secret, base64url
	created int64
}

func newHostileAccountKey(t testing.TB, handle string) *hostileAccount {
	k, err := did.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	return &hostileAccount{did: k.DID, kid: k.KeyID, signer: k.Private, handle: handle,
		secret: base64.RawURLEncoding.EncodeToString(secret), created: time.Now().UnixMicro()}
}

// newAccount is a fresh did:key account homed on this peer.
func (h *hostilePeer) newAccount(handle string) *hostileAccount {
	return newHostileAccountKey(h.t, handle)
}

// webAccount is an account whose DID is the did:web id, signing with a key
// of its own that it claims as id#key-1. Verifying its signature means
// resolving id: a did:web the peer chose.
func (h *hostilePeer) webAccount(id, handle string) *hostileAccount {
	a := newHostileAccountKey(h.t, handle)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	a.did, a.kid, a.signer = id, id+"#key-1", priv
	return a
}

// accountData is the account as its home shares it, with sharing "all"
// (with a pairwise_secret, which older homes send and newer followers
// ignore).
func (h *hostilePeer) accountData(a *hostileAccount, name string) map[string]any {
	st := privacy.DefaultSettings()
	st.FederationSharing = federation.ShareAll
	return map[string]any{"handle": a.handle, "name": name, "email": a.handle + "@hostile.example", "status": "active",
		"home": h.issuer, "pairwise_secret": a.secret, "created_at": a.created, "updated_at": time.Now().UnixMicro(), "settings": st}
}

// eventSpec is how one event is built; the options of event change it.
type eventSpec struct {
	itemSeq, payloadSeq int64
	payload             federation.Payload
	cloudKey            crypto.Signer
	cloudKID            string
	typ                 string // JWS typ header
	person              *hostileAccount
	personKey           crypto.Signer // signs as person.kid instead of the person's key
	personBytes         []byte        // what the person signs instead of the payload
	malformed           bool
}

type eventOption func(*eventSpec)

// signedBy signs the event with key under kid (a key of another peer, a
// forged key under this peer's kid, a rotated key).
func signedBy(key crypto.Signer, kid string) eventOption {
	return func(s *eventSpec) { s.cloudKey, s.cloudKID = key, kid }
}

// forgedSignature signs with a fresh key under the peer's own kid.
func forgedSignature() eventOption {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return func(s *eventSpec) { s.cloudKey = key }
}

// resignedBy signs with another peer's key and kid.
func resignedBy(other *hostilePeer) eventOption { return signedBy(other.key, other.kid) }

// withIss puts another issuer in the signed payload.
func withIss(iss string) eventOption { return func(s *eventSpec) { s.payload.Issuer = iss } }

// withItemSeq gives the feed item the sequence number seq, whatever the
// signed payload's.
func withItemSeq(seq int64) eventOption { return func(s *eventSpec) { s.itemSeq = seq } }

// withPayloadSeq signs the payload with the sequence number seq, whatever
// the item's.
func withPayloadSeq(seq int64) eventOption { return func(s *eventSpec) { s.payloadSeq = seq } }

// atSeq uses seq for both the item and the payload (instead of the next
// number of the feed).
func atSeq(seq int64) eventOption { return func(s *eventSpec) { s.itemSeq, s.payloadSeq = seq, seq } }

// withTyp sets the JWS typ header.
func withTyp(typ string) eventOption { return func(s *eventSpec) { s.typ = typ } }

// personBy adds the account a's signature over the payload.
func personBy(a *hostileAccount) eventOption { return func(s *eventSpec) { s.person = a } }

// noPersonSignature leaves the person's signature out.
func noPersonSignature() eventOption { return func(s *eventSpec) { s.person = nil } }

// personKeyOf signs the person's signature with another key while naming
// the person's own key id.
func personKeyOf(key crypto.Signer) eventOption { return func(s *eventSpec) { s.personKey = key } }

// personOver makes the person sign other bytes than the payload.
func personOver(b []byte) eventOption { return func(s *eventSpec) { s.personBytes = b } }

// unshared marks the event not shared, without data.
func unsharedEvent() eventOption {
	return func(s *eventSpec) { s.payload.Shared, s.payload.Data = false, nil }
}

// malformedJWS serves a cloud JWS that is not a JWS.
func malformedJWS() eventOption { return func(s *eventSpec) { s.malformed = true } }

// event builds one feed item of this peer: type typ about account (""
// for service events) with data, shared, signed by the peer's key and, for
// account events, by the account a when personBy is given.
func (h *hostilePeer) event(typ, account string, data any, opts ...eventOption) federation.Item {
	h.t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		h.t.Fatal(err)
	}
	s := &eventSpec{cloudKey: h.key, cloudKID: h.kid, typ: federation.EventType,
		payload: federation.Payload{Issuer: h.issuer, Type: typ, Account: account, At: time.Now().UnixMicro(), Shared: true, Data: raw}}
	for _, o := range opts {
		o(s)
	}
	if s.payloadSeq == 0 {
		s.payloadSeq = h.nextSeq()
	}
	if s.itemSeq == 0 {
		s.itemSeq = s.payloadSeq
	}
	s.payload.Seq = s.payloadSeq
	body, _ := json.Marshal(s.payload)
	it := federation.Item{Seq: s.itemSeq, JWS: hostileSign(h.t, s.cloudKey, s.cloudKID, s.typ, body)}
	if s.malformed {
		it.JWS = "not-a-jws." + base64.RawURLEncoding.EncodeToString(body)
	}
	if s.person != nil {
		key := s.person.signer
		if s.personKey != nil {
			key = s.personKey
		}
		personBody := body
		if s.personBytes != nil {
			personBody = s.personBytes
		}
		it.PersonJWS = hostileSign(h.t, key, s.person.kid, federation.EventType, personBody)
	}
	return it
}

// accountUpdated is a genuine account.updated of a homed here, named name,
// signed by the peer and by the person (options may undo either).
func (h *hostilePeer) accountUpdated(a *hostileAccount, name string, opts ...eventOption) federation.Item {
	return h.event("account.updated", a.did, h.accountData(a, name), append([]eventOption{personBy(a)}, opts...)...)
}

// serviceRegistered announces a service of this peer with its public
// metadata (client_id, redirect_uris, x_sector, …).
func (h *hostilePeer) serviceRegistered(meta map[string]any, opts ...eventOption) federation.Item {
	return h.event("service.registered", "", meta, opts...)
}

// replayed is it served again under another sequence number: its signed
// payload is unchanged.
func replayedAs(it federation.Item, seq int64) federation.Item {
	it.Seq = seq
	return it
}

// oversize is a genuine account.updated whose name is n bytes long.
func (h *hostilePeer) oversize(a *hostileAccount, n int) federation.Item {
	return h.accountUpdated(a, strings.Repeat("x", n))
}

func hostileSign(t testing.TB, key crypto.Signer, kid, typ string, payload []byte) string {
	t.Helper()
	alg := jose.ES256
	if _, ok := key.(ed25519.PrivateKey); ok {
		alg = jose.EdDSA
	}
	opts := (&jose.SignerOptions{}).WithHeader("kid", kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// requestClaims are the claims of a genuine peer request token of this
// peer for the cloud aud.
func (h *hostilePeer) requestClaims(aud string) jwt.Claims {
	now := time.Now()
	return jwt.Claims{Issuer: h.issuer, Subject: h.issuer, Audience: jwt.Audience{aud}, IssuedAt: jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now.Add(-30 * time.Second)), Expiry: jwt.NewNumericDate(now.Add(2 * time.Minute)), ID: randString(12)}
}

// requestToken signs claims as a peer request token with key under kid.
func hostileRequestToken(t testing.TB, key crypto.Signer, kid string, c jwt.Claims) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// clientAssertion is the private_key_jwt assertion with which this peer
// authenticates as an OpenID Connect client of the cloud whose token
// endpoint is aud.
func (h *hostilePeer) clientAssertion(aud string) string {
	c := jwt.Claims{Issuer: h.issuer, Subject: h.issuer, Audience: jwt.Audience{aud}, ID: randString(12),
		IssuedAt: jwt.NewNumericDate(time.Now()), Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}
	return hostileRequestToken(h.t, h.key, h.kid, c)
}

// lastCallback is the query of the latest request to the peer's brokered
// sign-in callback, or nil.
func (h *hostilePeer) lastCallback() url.Values {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.callbacks) == 0 {
		return nil
	}
	return h.callbacks[len(h.callbacks)-1]
}

// pkce returns a verifier and its S256 challenge.
func hostilePKCE() (verifier, challenge string) {
	verifier = randString(32)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// internalCanary stands for a service on the cloud's own network: an
// HTTP server on 127.0.0.1 that counts every connection it accepts (a TLS
// handshake attempt or a plain request alike) and answers nothing useful.
// A guarded fetch must never reach it.
type internalCanary struct {
	srv   *httptest.Server
	port  string
	conns atomic.Int64
}

func newInternalCanary(t testing.TB) *internalCanary {
	c := &internalCanary{}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "internal-service-banner", http.StatusInternalServerError)
	}))
	c.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}
	c.srv.Start()
	t.Cleanup(c.srv.Close)
	_, c.port, _ = net.SplitHostPort(c.srv.Listener.Addr().String())
	return c
}
