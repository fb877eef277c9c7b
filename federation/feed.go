package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// EventType is the JWS "typ" of a feed event.
const EventType = "commonsid-event+jws"

// Item is one event as the feed serves it: the cloud's compact JWS and,
// for events the person authored, the same payload signed by the account's
// DID key.
type Item struct {
	Seq       int64  `json:"seq"`
	JWS       string `json:"jws"`
	PersonJWS string `json:"person_jws,omitempty"`
	// Epoch is set only in the stream's opening "epoch" event (epoch.go).
	Epoch string `json:"epoch,omitempty"`
}

// Payload is what an event's signatures cover.
type Payload struct {
	Issuer  string          `json:"iss"`
	Epoch   string          `json:"epoch,omitempty"` // the feed epoch the sequence number counts in (epoch.go)
	Seq     int64           `json:"seq"`
	Type    string          `json:"type"`
	Account string          `json:"account,omitempty"`
	At      int64           `json:"at"` // microseconds since 1970
	Shared  bool            `json:"shared"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// AccountData is an account as peers receive it, cut to the person's
// federation-sharing setting.
type AccountData struct {
	Handle        string            `json:"handle"`
	Name          string            `json:"name,omitempty"`
	Email         string            `json:"email,omitempty"`
	EmailVerified bool              `json:"email_verified,omitempty"`
	Status        string            `json:"status"`
	Home          string            `json:"home"`
	CreatedAt     int64             `json:"created_at"`
	UpdatedAt     int64             `json:"updated_at"`
	Settings      *privacy.Settings `json:"settings"`
	// Consents, in privacy.updated events with sharing "all": every
	// consent the person holds on their home cloud.
	Consents []ConsentData `json:"consents,omitempty"`
	// Access is the person's contribution grant (access.go).
	Access *AccessData `json:"access,omitempty"`
}

// ConsentData is a consent as peers receive it (sharing "all" only).
type ConsentData struct {
	ClientID      string   `json:"client_id"`
	Scopes        []string `json:"scopes,omitempty"`
	Claims        []string `json:"claims,omitempty"`
	SubjectSector string   `json:"subject_sector,omitempty"`
	GrantedAt     int64    `json:"granted_at,omitempty"`
	UpdatedAt     int64    `json:"updated_at,omitempty"`
	ExpiresAt     int64    `json:"expires_at,omitempty"`
}

// Sharing levels of the federation-sharing setting.
const (
	ShareNone          = "none"
	SharePublicProfile = "public_profile"
	ShareAll           = "all"
)

// personTypes are the events the person authors: when shared with data
// they carry the account DID key's signature too.
var personTypes = map[string]bool{
	"account.created": true, "account.updated": true, "privacy.updated": true,
	"consent.granted": true, "consent.revoked": true,
}

// MaxPage is the most events one page holds.
const MaxPage = 1000

// signedKey names one event as built for one peer in one epoch.
type signedKey struct {
	peer  string
	epoch string
	seq   int64
}

type cachedItem struct {
	item Item
	at   time.Time
}

// pageState caches what one page needs of each account.
type pageState struct {
	accounts map[string]*identity.Account
	settings map[string]*privacy.Settings
	keys     map[string]*did.Key
	grants   map[string]bool // per account: the page's peer may sign the person in (sharing.go)
}

// Page returns up to limit events after seq, signed, oldest first, as
// they are shared with every peer (PageFor with no peer).
func (f *Federation) Page(ctx context.Context, after int64, limit int) ([]Item, error) {
	return f.PageFor(ctx, "", after, limit)
}

// PageFor returns up to limit events after seq, signed, oldest first, cut
// to what is shared with the peer whose issuer is peer (sharing.go).
func (f *Federation) PageFor(ctx context.Context, peer string, after int64, limit int) ([]Item, error) {
	epoch, err := f.Store.FeedEpoch(ctx)
	if err != nil {
		return nil, err
	}
	return f.pageFor(ctx, epoch, peer, after, limit)
}

// pageFor is PageFor in a given epoch.
func (f *Federation) pageFor(ctx context.Context, epoch, peer string, after int64, limit int) ([]Item, error) {
	if limit <= 0 || limit > MaxPage {
		limit = MaxPage
	}
	evs, err := f.Store.FeedEvents(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	ps := &pageState{accounts: map[string]*identity.Account{}, settings: map[string]*privacy.Settings{}, keys: map[string]*did.Key{}}
	out := make([]Item, 0, len(evs))
	now := time.Now()
	for i := range evs {
		f.signMu.Lock()
		c, ok := f.signed[signedKey{peer, epoch, evs[i].Seq}]
		f.signMu.Unlock()
		if ok && now.Sub(c.at) < 2*time.Second {
			out = append(out, c.item)
			continue
		}
		it, err := f.build(ctx, ps, epoch, &evs[i], peer)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", evs[i].Seq, err)
		}
		f.signMu.Lock()
		if f.signed == nil || len(f.signed) > 4096 {
			f.signed = map[signedKey]cachedItem{}
		}
		f.signed[signedKey{peer, epoch, evs[i].Seq}] = cachedItem{it, now}
		f.signMu.Unlock()
		out = append(out, it)
	}
	return out, nil
}

func (ps *pageState) account(ctx context.Context, f *Federation, d string) (*identity.Account, *privacy.Settings, error) {
	if a, ok := ps.accounts[d]; ok {
		return a, ps.settings[d], nil
	}
	a, err := f.Store.GetAccount(ctx, d)
	if errors.Is(err, store.ErrNotFound) {
		a, err = nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var s *privacy.Settings
	if a != nil {
		if s, err = f.Store.GetSettings(ctx, d); errors.Is(err, store.ErrNotFound) {
			s, err = privacy.DefaultSettings(), nil
		}
		if err != nil {
			return nil, nil, err
		}
	}
	ps.accounts[d], ps.settings[d] = a, s
	return a, s, nil
}

// build makes the signed item of one logged event, with the state it
// announces cut to what the person shares with peer.
func (f *Federation) build(ctx context.Context, ps *pageState, epoch string, e *LogEvent, peer string) (Item, error) {
	p := Payload{Issuer: f.Issuer, Epoch: epoch, Seq: e.Seq, Type: e.Type, Account: e.AccountDID, At: e.At.UnixMicro()}
	var (
		data any
		acct *identity.Account
		err  error
	)
	switch e.Type {
	case "token.revoked", "account.deleted", "account.moved":
		p.Shared, data = true, e.Payload
	case "service.registered", "service.forked":
		id, _ := e.Payload["client_id"].(string)
		md, err := f.Store.ClientMetadata(ctx, id)
		switch {
		case err == nil:
			p.Shared, data = true, json.RawMessage(md)
		case errors.Is(err, store.ErrNotFound):
			data = map[string]string{"client_id": id} // gone since: peers forget it
		default:
			return Item{}, err
		}
	case "service.deleted":
		p.Shared, data = true, e.Payload
	case DIDLogEvent:
		// Every peer gets the log, whatever the sharing setting: it holds
		// keys and the home, no profile data (didlogs.go).
		d, err := f.didLogData(ctx, e.AccountDID)
		if err != nil {
			return Item{}, err
		}
		if d != nil {
			p.Shared, data = true, d
		}
	default:
		var st *privacy.Settings
		acct, st, err = ps.account(ctx, f, e.AccountDID)
		if err != nil {
			return Item{}, err
		}
		if acct == nil || acct.HomeIssuer != f.Issuer || (acct.Status != identity.StatusActive && acct.Status != identity.StatusDisabled) {
			break // not shared: peers drop what they hold
		}
		level, err := f.shareLevel(ctx, ps, acct, st, peer)
		if err != nil {
			return Item{}, err
		}
		if level == ShareNone || level == "" {
			break // not shared with this peer: it drops what it holds
		}
		if level != st.FederationSharing {
			cp := *st
			cp.FederationSharing = level
			st = &cp
		}
		switch e.Type {
		case "account.created", "account.updated":
			ad, err := f.accountData(acct, st)
			if err != nil {
				return Item{}, err
			}
			if ad.Access, err = f.accessData(ctx, acct.DID); err != nil {
				return Item{}, err
			}
			p.Shared, data = true, ad
		case "privacy.updated":
			// The whole shareable account: sharing may just have been
			// turned on, and peers hold nothing yet. With "all", the
			// consents too, replacing what peers hold.
			ad, err := f.accountData(acct, st)
			if err != nil {
				return Item{}, err
			}
			if ad.Access, err = f.accessData(ctx, acct.DID); err != nil {
				return Item{}, err
			}
			if st.FederationSharing == ShareAll {
				cs, err := f.Store.ListConsents(ctx, acct.DID)
				if err != nil {
					return Item{}, err
				}
				ad.Consents = []ConsentData{}
				for _, c := range cs {
					if strings.Contains(c.ClientID, "#") {
						continue // a peer's service, replicated here
					}
					ad.Consents = append(ad.Consents, consentData(c))
				}
			}
			p.Shared, data = true, ad
		case "consent.granted", "consent.revoked":
			if st.FederationSharing != ShareAll {
				break
			}
			id, _ := e.Payload["client_id"].(string)
			cd := ConsentData{ClientID: id}
			if e.Type == "consent.granted" {
				c, err := f.Store.GetConsent(ctx, acct.DID, id)
				if errors.Is(err, store.ErrNotFound) {
					break // revoked since: a later event says so
				}
				if err != nil {
					return Item{}, err
				}
				cd = consentData(c)
			}
			p.Shared, data = true, cd
		}
	}
	if data != nil {
		if p.Data, err = json.Marshal(data); err != nil {
			return Item{}, err
		}
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return Item{}, err
	}
	s, err := f.cloudSigner(ctx, EventType)
	if err != nil {
		return Item{}, err
	}
	obj, err := s.Sign(raw)
	if err != nil {
		return Item{}, err
	}
	it := Item{Seq: e.Seq}
	if it.JWS, err = obj.CompactSerialize(); err != nil {
		return Item{}, err
	}
	if p.Shared && personTypes[e.Type] && acct != nil {
		k, ok := ps.keys[acct.DID]
		if !ok {
			if k, err = f.Accounts.SigningKey(ctx, acct); err != nil {
				return Item{}, fmt.Errorf("account key: %w", err)
			}
			ps.keys[acct.DID] = k
		}
		if it.PersonJWS, err = did.Sign(k.Private, k.KeyID, raw, map[string]any{"typ": EventType}); err != nil {
			return Item{}, err
		}
	}
	return it, nil
}

func consentData(c *privacy.Consent) ConsentData {
	cd := ConsentData{ClientID: c.ClientID, Scopes: c.Scopes, Claims: c.Claims, SubjectSector: c.SubjectSector,
		GrantedAt: c.GrantedAt.UnixMicro(), UpdatedAt: c.UpdatedAt.UnixMicro()}
	if c.ExpiresAt != nil {
		cd.ExpiresAt = c.ExpiresAt.UnixMicro()
	}
	return cd
}

// accountData is the shareable view of an account.
func (f *Federation) accountData(a *identity.Account, st *privacy.Settings) (*AccountData, error) {
	// No pairwise secret: peers ask for the subs they need (subjects.go).
	ad := &AccountData{Handle: a.Handle, Name: a.Name, Status: a.Status, Home: a.HomeIssuer,
		CreatedAt: a.CreatedAt.UnixMicro(), UpdatedAt: a.UpdatedAt.UnixMicro(), Settings: st}
	if st.FederationSharing == ShareAll {
		ad.Email, ad.EmailVerified = a.Email, a.EmailVerified
	}
	return ad, nil
}

// pageResponse is the body of GET /federation/v1/events.
type pageResponse struct {
	Issuer string `json:"iss"`
	// Epoch is the feed epoch the sequence numbers count in, and Head the
	// highest one issued (epoch.go); a cloud of an older version sends
	// neither.
	Epoch  string `json:"epoch,omitempty"`
	Head   *int64 `json:"head,omitempty"`
	Events []Item `json:"events"`
	Next   int64  `json:"next"`
	More   bool   `json:"more"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeJSONBody(w http.ResponseWriter, v any) { json.NewEncoder(w).Encode(v) }

func writeError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// cursorParam reads after= (or Last-Event-ID for the stream).
func cursorParam(r *http.Request) (int64, error) {
	q := r.URL.Query()
	if len(q["after"]) > 1 || len(r.Header.Values("Last-Event-ID")) > 1 {
		return 0, fmt.Errorf("after must be given once")
	}
	v := q.Get("after")
	if v == "" {
		v = r.Header.Get("Last-Event-ID")
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if len(v) > maxCursor || err != nil || n < 0 {
		return 0, fmt.Errorf("after must be a non-negative integer")
	}
	return n, nil
}

func (f *Federation) authorize(w http.ResponseWriter, r *http.Request) (*Peer, bool) {
	if len(r.Header.Get("Authorization")) > maxPeerToken || len(r.Header.Values("Authorization")) > 1 {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusUnauthorized, "invalid_token", ErrUnauthorized.Error()+": malformed token")
		return nil, false
	}
	p, err := f.authenticatePeer(r)
	if errors.Is(err, ErrUnauthorized) {
		w.Header().Set("Connection", "close") // nothing is held for a stranger
		writeError(w, http.StatusUnauthorized, "invalid_token", err.Error())
		return nil, false
	}
	if err != nil {
		f.log().ErrorContext(r.Context(), "peer authentication", "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "peer authentication failed")
		return nil, false
	}
	return p, true
}

// serveEvents is GET /federation/v1/events?after=CURSOR&limit=N.
func (f *Federation) serveEvents(w http.ResponseWriter, r *http.Request) {
	peer, ok := f.authorize(w, r)
	if !ok {
		return
	}
	after, err := cursorParam(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	limit := 100
	if vs := r.URL.Query()["limit"]; len(vs) > 0 {
		if len(vs) > 1 || len(vs[0]) > 4 {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("limit must be 1 to %d, given once", MaxPage))
			return
		}
		if limit, err = strconv.Atoi(vs[0]); err != nil || limit < 1 || limit > MaxPage {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("limit must be 1 to %d", MaxPage))
			return
		}
	}
	epoch, err := f.Store.FeedEpoch(r.Context())
	var (
		items []Item
		head  int64
	)
	if err == nil {
		items, err = f.pageFor(r.Context(), epoch, peer.Issuer, after, limit+1)
	}
	if err == nil {
		// Read after the events: the head is at least the last of them.
		head, err = f.Store.FeedHead(r.Context())
	}
	if err != nil {
		f.log().ErrorContext(r.Context(), "feed page", "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "the feed could not be read")
		return
	}
	resp := pageResponse{Issuer: f.Issuer, Epoch: epoch, Head: &head, Events: items, Next: after}
	if len(items) > limit {
		resp.Events, resp.More = items[:limit], true
	}
	// A page stays under pageBudget bytes (followers bound what they
	// read); it holds at least one event, however large.
	size := 0
	for i, it := range resp.Events {
		if size += len(it.JWS) + len(it.PersonJWS) + 64; size > pageBudget && i > 0 {
			resp.Events, resp.More = resp.Events[:i], true
			break
		}
	}
	if n := len(resp.Events); n > 0 {
		resp.Next = resp.Events[n-1].Seq
	}
	writeJSON(w, http.StatusOK, resp)
}

// streamCoalesce is the shortest time between two reads of the log by
// one stream.
const streamCoalesce = 5 * time.Millisecond

// streamPoll is the longest time between two reads of the log by one
// stream. Events committed in this process (and, on PostgreSQL, in any)
// wake the streams at once; this bounds the delay of one written by
// another process on SQLite (the command line), or whose announcement
// was lost.
const streamPoll = time.Second

// serveStream is GET /federation/v1/stream: server-sent events, from the
// cursor (after= or Last-Event-ID) on, then live as events commit. Only a
// peer gets one, within the stream caps of Limits; every write has
// Limits.WriteTimeout to complete, so that a peer that stops reading is
// disconnected and nothing is held for it.
func (f *Federation) serveStream(w http.ResponseWriter, r *http.Request) {
	p, ok := f.authorize(w, r)
	if !ok {
		return
	}
	cursor, err := cursorParam(r)
	if err != nil {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	release, status := f.acquireStream(p.Issuer)
	if status != 0 {
		desc := "this cloud serves as many live streams as it can; page the feed or retry later"
		if status == http.StatusTooManyRequests {
			desc = fmt.Sprintf("a peer holds at most %d live streams at once", f.Limits.streamsPerPeer())
		}
		f.log().DebugContext(r.Context(), "refused a live stream", "peer", p.Issuer, "status", status)
		w.Header().Set("Retry-After", streamRetryAfter)
		w.Header().Set("Connection", "close")
		writeError(w, status, "temporarily_unavailable", desc)
		return
	}
	defer release()
	rc := http.NewResponseController(w)
	timeout := f.Limits.writeTimeout()
	stalled := false
	// write sends one piece of the stream, and flush what was written,
	// each under the write deadline.
	flush := func() bool {
		rc.SetWriteDeadline(time.Now().Add(timeout))
		if err := rc.Flush(); err != nil {
			stalled = errors.Is(err, os.ErrDeadlineExceeded)
			return false
		}
		return true
	}
	write := func(andFlush bool, format string, args ...any) bool {
		rc.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			stalled = errors.Is(err, os.ErrDeadlineExceeded)
			return false
		}
		return !andFlush || flush()
	}
	defer func() {
		if stalled {
			f.streams.stalled.Add(1)
			f.log().InfoContext(r.Context(), "dropped a stalled stream", "peer", p.Issuer, "write_timeout", timeout.String())
		}
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	// The connection ends with the stream: the last write deadline must
	// not outlive it into another request, and the final flush after the
	// handler returns stays under it.
	w.Header().Set("Connection", "close")
	rc.SetWriteDeadline(time.Now().Add(timeout))
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	// The stream opens with its epoch and head (epoch.go), and ends when
	// the epoch changes: the follower then pages the new epoch.
	epoch, err := f.Store.FeedEpoch(ctx)
	if err != nil {
		f.log().ErrorContext(ctx, "feed stream", "err", err)
		return
	}
	head, err := f.Store.FeedHead(ctx)
	if err != nil {
		f.log().ErrorContext(ctx, "feed stream", "err", err)
		return
	}
	opening, _ := json.Marshal(epochEvent{Epoch: epoch, Head: head})
	if !write(true, ": %s\n\nevent: epoch\ndata: %s\n\n", f.Issuer, opening) {
		return
	}
	closing := f.closed()
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	poll := time.NewTicker(streamPoll)
	defer poll.Stop()
	maxAge := time.NewTimer(f.Limits.streamMaxAge())
	defer maxAge.Stop()
	maxEvent := f.Limits.maxEvent()
	var lastRead time.Time
	for {
		// Under a burst of writes, one read per few milliseconds carries
		// many events at once instead of one read per event.
		if d := streamCoalesce - time.Since(lastRead); d > 0 {
			time.Sleep(d)
		}
		lastRead = time.Now()
		wake := f.wake.wait()
		items, err := f.pageFor(ctx, epoch, p.Issuer, cursor, 200)
		if err != nil {
			if ctx.Err() == nil {
				f.log().ErrorContext(ctx, "feed stream", "err", err)
			}
			return
		}
		for _, it := range items {
			raw, _ := json.Marshal(it)
			if len(raw) > maxEvent {
				// Followers refuse longer events on the stream: ending it
				// here sends this peer to the pages, which carry it.
				f.log().WarnContext(ctx, "ended a stream before an event over the stream limit", "peer", p.Issuer, "seq", it.Seq, "bytes", len(raw))
				flush()
				return
			}
			if !write(false, "id: %d\nevent: event\ndata: %s\n\n", it.Seq, raw) {
				return
			}
			cursor = it.Seq
		}
		if len(items) > 0 {
			if !flush() {
				return
			}
			if len(items) == 200 {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-closing:
			return
		case <-maxAge.C:
			return // the peer reconnects from its cursor
		case <-wake:
		case <-poll.C:
			if now, err := f.Store.FeedEpoch(ctx); err != nil || now != epoch {
				return // a new epoch: the follower pages it
			}
		case <-heartbeat.C:
			if !write(true, ": ping\n\n") {
				return
			}
		}
	}
}
