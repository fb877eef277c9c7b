package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/metrics"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// ErrRejected reports a peer event that was refused (and logged).
var ErrRejected = errors.New("event rejected")

// Run follows every peer's feed until ctx ends: it pages from the persisted
// cursor, then stays on the live stream, and pages again after any gap or
// error. Peers added or removed while it runs (by the CLI, say) are picked
// up within a second.
func (f *Federation) Run(ctx context.Context) {
	running := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, c := range running {
			c()
		}
		wg.Wait()
	}()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		peers, err := f.Store.ListPeers(ctx)
		if err != nil && ctx.Err() == nil {
			f.log().Warn("list peers", "err", err)
		}
		seen := map[string]bool{}
		for _, p := range peers {
			seen[p.Issuer] = true
			if running[p.Issuer] != nil {
				continue
			}
			pctx, cancel := context.WithCancel(ctx)
			running[p.Issuer] = cancel
			wg.Add(1)
			go func(issuer string) {
				defer wg.Done()
				f.follow(pctx, issuer)
			}(p.Issuer)
		}
		for issuer, cancel := range running {
			if !seen[issuer] {
				cancel()
				delete(running, issuer)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// follow replicates one peer until ctx ends.
func (f *Federation) follow(ctx context.Context, issuer string) {
	const first = 250 * time.Millisecond
	backoff := first
	for ctx.Err() == nil {
		start := time.Now()
		err := f.syncPeer(ctx, issuer)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, store.ErrNotFound) {
			err = nil // removed: Run stops this follower within a second
		}
		if err != nil && time.Since(start) > time.Minute {
			backoff = first // a stream that lived ends; it is no failing peer
		}
		switch {
		case errors.Is(err, ErrTooLarge):
			// The connection is dropped; a peer that sends more than the
			// limits is not retried at once: the wait grows as for any
			// failure.
			f.streams.oversize.Add(1)
			f.log().Warn("dropped a peer's feed over the size limits", "peer", issuer, "err", err, "retry_in", backoff.String())
		case err != nil:
			f.log().Warn("following peer", "peer", issuer, "err", err, "retry_in", backoff.String())
		}
		if err != nil {
			f.Store.SetPeerError(context.WithoutCancel(ctx), issuer, err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if err != nil {
			backoff = min(backoff*2, 5*time.Second)
		} else {
			backoff = 250 * time.Millisecond
		}
	}
}

// syncPeer catches up by paging, then reads the live stream until it ends.
func (f *Federation) syncPeer(ctx context.Context, issuer string) error {
	p, err := f.Store.GetPeer(ctx, issuer)
	if err != nil {
		return err
	}
	if err := f.CatchUp(ctx, p); err != nil {
		return err
	}
	// Quarantined events get a few attempts of their own at each
	// reconnect: a path that tampered may have healed, a key may be known
	// now.
	if _, err := f.retry(ctx, p, 0, AutoRetryAttempts); err != nil {
		return err
	}
	if p.LastError != "" {
		f.Store.SetPeerError(ctx, issuer, "")
		p.LastError = ""
	}
	return f.stream(ctx, p)
}

// CatchUp pages through the peer's feed from its cursor to the end. A
// page in another epoch, or whose head is below the cursor, starts a
// resync: the feed is replayed from 0, and what the replay did not
// mention is swept at its end (epoch.go).
func (f *Federation) CatchUp(ctx context.Context, p *Peer) error {
	for {
		page, err := f.fetchPage(ctx, p, p.Cursor, 500)
		if err != nil {
			return err
		}
		if restart, err := f.checkEpoch(ctx, p, page); err != nil {
			return err
		} else if restart {
			continue
		}
		if err := f.ApplyBatch(ctx, p, page.Events); err != nil && !errors.Is(err, ErrQuarantined) {
			return err
		}
		if !page.More {
			return f.finishResync(ctx, p)
		}
	}
}

func (f *Federation) peerRequest(ctx context.Context, p *Peer, path string, q url.Values) (*http.Response, error) {
	tok, err := f.PeerToken(ctx, p.Issuer)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base()+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := f.client().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		resp.Body.Close()
		return nil, fmt.Errorf("%s%s: %s: %s", p.base(), path, resp.Status, strings.TrimSpace(string(body)))
	}
	return resp, nil
}

func (f *Federation) fetchPage(ctx context.Context, p *Peer, after int64, limit int) (*pageResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := f.peerRequest(ctx, p, "/federation/v1/events", url.Values{"after": {strconv.FormatInt(after, 10)}, "limit": {strconv.Itoa(limit)}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	maxBytes := f.Limits.maxPage()
	if resp.ContentLength > int64(maxBytes) {
		return nil, fmt.Errorf("feed page of %s: %w: %d bytes announced, at most %d read", p.Issuer, ErrTooLarge, resp.ContentLength, maxBytes)
	}
	raw, err := readLimited(resp.Body, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("feed page of %s: %w", p.Issuer, err)
	}
	var page pageResponse
	if err := json.Unmarshal(raw, &page); err != nil {
		return nil, fmt.Errorf("feed page of %s: %w", p.Issuer, err)
	}
	if len(page.Events) > limit {
		return nil, fmt.Errorf("feed page of %s: %w: %d events, %d asked for", p.Issuer, ErrTooLarge, len(page.Events), limit)
	}
	return &page, nil
}

// stream reads the peer's live stream, applying events in order, in
// batches of what has arrived. It returns on an error or the end; the
// caller then pages from the cursor.
func (f *Federation) stream(ctx context.Context, p *Peer) error {
	pe, err := f.Store.PeerEpoch(ctx, p.Issuer)
	if err != nil {
		return err
	}
	resp, err := f.peerRequest(ctx, p, "/federation/v1/stream", url.Values{"after": {strconv.FormatInt(p.Cursor, 10)}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	metrics.FederationStream(p.Issuer, true)
	defer metrics.FederationStream(p.Issuer, false)
	// What has been read but not applied is bounded in count and bytes.
	items := make(chan Item, 1024)
	room := newInflight(8<<20, f.Limits.maxEvent())
	errc := make(chan error, 1)
	done := make(chan struct{})
	defer close(done) // before the body closes: the reader stops either way
	go func() {
		errc <- readStream(resp.Body, f.Limits.maxEvent(), items, room, done)
		close(items)
	}()
	// A stream silent for longer than two heartbeats is dead.
	idle := time.NewTimer(40 * time.Second)
	defer idle.Stop()
	for {
		var first Item
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle.C:
			return fmt.Errorf("stream of %s: silent for 40 s", p.Issuer)
		case it, ok := <-items:
			if !ok {
				if err := <-errc; err != nil {
					return fmt.Errorf("stream of %s: %w", p.Issuer, err)
				}
				return fmt.Errorf("stream of %s ended", p.Issuer)
			}
			first = it
		}
		idle.Reset(40 * time.Second)
		batch := []Item{first}
	drain:
		for len(batch) < 500 {
			select {
			case it, ok := <-items:
				if !ok {
					break drain
				}
				batch = append(batch, it)
			default:
				break drain
			}
		}
		for _, it := range batch {
			if it.Seq == 0 && it.Epoch != "" && it.Epoch != pe.Epoch {
				// The stream is in another epoch than the cursor: paging
				// resyncs (epoch.go).
				f.log().Info("a peer's stream is in a new feed epoch", "peer", p.Issuer, "epoch", it.Epoch)
				return nil
			}
		}
		if err := f.ApplyBatch(ctx, p, batch); err != nil && !errors.Is(err, ErrQuarantined) {
			return err
		}
		for _, it := range batch {
			room.release(it)
		}
	}
}

// readStream parses server-sent events into items, each taking room
// until it is applied; heartbeats count as items with Seq 0. It fails with
// ErrTooLarge on a line or event longer than maxEvent.
func readStream(body io.Reader, maxEvent int, out chan<- Item, room inflight, done <-chan struct{}) error {
	sr := newStreamReader(body, maxEvent)
	for {
		it, err := sr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if !room.acquire(it, done) {
			return nil
		}
		select {
		case out <- it:
		case <-done:
			return nil
		}
	}
}

// Apply verifies one event of peer p and applies it; see ApplyBatch.
func (f *Federation) Apply(ctx context.Context, p *Peer, it Item) error {
	return f.ApplyBatch(ctx, p, []Item{it})
}

// ApplyBatch verifies events of peer p and applies them, in order, exactly
// once, in one transaction that also moves the peer's cursor. An event
// whose signature, issuer or sequence does not check out, or whose content
// cannot be applied, is recorded as rejected and quarantined
// (quarantine.go), with the later events of its account; the others are
// applied and the cursor moves to the last event that verified, so that
// the feed goes on. The error is then ErrQuarantined. Any other failure
// (the store, the context) applies nothing of the batch and is returned:
// the follower fetches it again.
func (f *Federation) ApplyBatch(ctx context.Context, p *Peer, items []Item) error {
	type verified struct {
		it Item
		pl *Payload
	}
	type refused struct {
		it           Item
		typ, account string
		reason       string
		heldBy       int64
	}
	var (
		batch []verified
		bad   []refused
	)
	pe, err := f.Store.PeerEpoch(ctx, p.Issuer)
	if err != nil {
		return fmt.Errorf("epoch of %s: %w", p.Issuer, err)
	}
	// Accounts with an event in quarantine: their later events wait.
	held := holdSet{}
	inQuarantine := map[int64]string{} // seq → the account it holds
	qs, err := f.Store.ListQuarantined(ctx, p.Issuer, f.maxQuarantine()+1)
	if err != nil {
		return fmt.Errorf("quarantine of %s: %w", p.Issuer, err)
	}
	for _, q := range qs {
		inQuarantine[q.Seq] = ""
		if holdsAccount(q.Type, q.AccountDID) {
			inQuarantine[q.Seq] = q.AccountDID
			held.add(q.AccountDID, q.Seq)
		}
	}
	last := p.Cursor
	// The did:webvh logs this page carries, by account: an account's
	// events after its did.log in the same page are checked against that
	// log (it is applied only after the whole page is verified).
	ctx = context.WithValue(ctx, pageLogsKey{}, pageLogs{})
	for _, it := range items {
		if it.Seq == 0 || it.Seq <= last {
			continue // a heartbeat, or already applied
		}
		pl, err := f.verify(ctx, p, it)
		if err == nil && pl.Type == DIDLogEvent {
			f.notePageLog(ctx, pl)
		}
		if err == nil && pe.Epoch != "" && pl.Epoch != pe.Epoch {
			// A copy of another epoch's event (epoch.go).
			pl, err = nil, fmt.Errorf("signed for feed epoch %q; the peer's feed is in epoch %q", pl.Epoch, pe.Epoch)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The sequence of an event that does not verify is not the
			// peer's word: it does not move the cursor.
			typ, account := claimed(it)
			bad = append(bad, refused{it: it, typ: typ, account: account, reason: err.Error()})
			if holdsAccount(typ, account) {
				held.add(account, it.Seq)
			}
			continue
		}
		last = pl.Seq
		batch = append(batch, verified{it, pl})
	}
	var skipped []refused
	if len(batch) > 0 {
		applied := 0 // fresh events marked applied, for the metrics
		err := f.Store.InTx(ctx, func(ctx context.Context) error {
			skipped = skipped[:0]
			applied = 0
			seen := map[string]string{} // account → state last written in this batch
			hold := held.clone()
			for _, v := range batch {
				if b := hold.blocker(v.pl.Account, v.pl.Seq); b != 0 && holdsAccount(v.pl.Type, v.pl.Account) {
					skipped = append(skipped, refused{it: v.it, typ: v.pl.Type, account: v.pl.Account, heldBy: b,
						reason: fmt.Sprintf("held behind quarantined event %d of the same account", b)})
					continue
				}
				fresh, err := f.Store.MarkApplied(ctx, &Applied{Peer: p.Issuer, Seq: v.pl.Seq, Type: v.pl.Type, AccountDID: v.pl.Account,
					EventAt: time.UnixMicro(v.pl.At).UTC(), AppliedAt: f.now()})
				if err != nil {
					return err
				}
				if !fresh {
					continue
				}
				applied++
				if pe.Resyncing {
					if err := f.markSeen(ctx, p, v.pl); err != nil {
						return err
					}
				}
				if acct, ok := inQuarantine[v.pl.Seq]; ok {
					// The genuine event arrived after a copy that failed: the
					// copy leaves the quarantine.
					if err := f.Store.DeleteQuarantined(ctx, p.Issuer, v.pl.Seq); err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
					hold.remove(acct, v.pl.Seq)
				}
				if v.pl.Type == "account.updated" || v.pl.Type == "account.created" {
					// The feed carries the account's current state: the same
					// state again changes nothing.
					key := v.pl.Account + "\x00" + string(v.pl.Data)
					if seen[v.pl.Account] == key {
						continue
					}
					seen[v.pl.Account] = key
				} else {
					delete(seen, v.pl.Account)
				}
				if err := f.applyPayload(ctx, p, v.pl, v.it.PersonJWS != ""); err != nil {
					if errors.Is(err, ErrRejected) {
						if holdsAccount(v.pl.Type, v.pl.Account) {
							hold.add(v.pl.Account, v.pl.Seq)
						}
						skipped = append(skipped, refused{it: v.it, typ: v.pl.Type, account: v.pl.Account,
							reason: "content: " + v.pl.Type + " could not be applied: " + err.Error()})
						continue
					}
					return fmt.Errorf("apply %s event %d (%s): %w", p.Issuer, v.pl.Seq, v.pl.Type, err)
				}
			}
			end := batch[len(batch)-1].pl
			return f.Store.SetPeerCursor(ctx, p.Issuer, end.Seq, time.UnixMicro(end.At).UTC())
		})
		if err != nil {
			return err
		}
		p.Cursor = last
		metrics.FederationApplied(p.Issuer, applied, time.UnixMicro(batch[len(batch)-1].pl.At))
	}
	if len(bad)+len(skipped) == 0 {
		return nil
	}
	// What was refused or held is quarantined in sequence order.
	bad = append(bad, skipped...)
	sort.Slice(bad, func(i, j int) bool { return bad[i].it.Seq < bad[j].it.Seq })
	for _, r := range bad {
		if r.heldBy == 0 {
			f.reject(ctx, p, r.it, r.reason)
		}
		if err := f.quarantine(context.WithoutCancel(ctx), p, r.it, r.typ, r.account, r.reason, r.heldBy); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: %d events of %s, the first %d: %s", ErrQuarantined, len(bad), p.Issuer, bad[0].it.Seq, bad[0].reason)
}

func (f *Federation) reject(ctx context.Context, p *Peer, it Item, reason string) {
	// The same event refused again on a retry is recorded once.
	key := fmt.Sprintf("%d\x00%s", it.Seq, reason)
	f.rejMu.Lock()
	if f.lastRejected == nil {
		f.lastRejected = map[string]string{}
	}
	again := f.lastRejected[p.Issuer] == key
	f.lastRejected[p.Issuer] = key
	f.rejMu.Unlock()
	if again {
		return
	}
	f.log().Warn("rejected a peer event", "peer", p.Issuer, "seq", it.Seq, "reason", reason)
	metrics.FederationRejected(p.Issuer)
	raw, _ := json.Marshal(it)
	if err := f.Store.RecordRejected(context.WithoutCancel(ctx), &Rejected{Peer: p.Issuer, Seq: it.Seq, Reason: reason, At: f.now(), Event: string(raw)}); err != nil {
		f.log().Error("record rejected event", "err", err)
	}
}

// verify checks the cloud signature (and the person's, where due) and the
// payload's issuer and sequence.
func (f *Federation) verify(ctx context.Context, p *Peer, it Item) (*Payload, error) {
	obj, err := jose.ParseSignedCompact(it.JWS, signingAlgs)
	if err != nil || len(obj.Signatures) != 1 {
		return nil, fmt.Errorf("malformed JWS")
	}
	h := obj.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != EventType {
		return nil, fmt.Errorf("typ %q is not %s", typ, EventType)
	}
	key, err := f.peerKey(ctx, p, h.KeyID)
	if err != nil {
		return nil, err
	}
	raw, err := obj.Verify(key.Key)
	if err != nil {
		return nil, fmt.Errorf("cloud signature does not verify")
	}
	var pl Payload
	if err := json.Unmarshal(raw, &pl); err != nil {
		return nil, fmt.Errorf("payload is not JSON")
	}
	if pl.Issuer != p.Issuer {
		return nil, fmt.Errorf("signed by %s for issuer %q", p.Issuer, pl.Issuer)
	}
	if pl.Seq != it.Seq {
		return nil, fmt.Errorf("sequence %d does not match the signed %d", it.Seq, pl.Seq)
	}
	if pl.Shared && personTypes[pl.Type] && len(pl.Data) > 0 {
		if it.PersonJWS == "" {
			return nil, fmt.Errorf("%s lacks the account's signature", pl.Type)
		}
	}
	if it.PersonJWS != "" {
		held, herr := f.heldLog(ctx, pl.Account)
		if notHomeOf(held, p.Issuer) {
			return &pl, nil
		}
		doc, err := f.accountDocumentHeld(ctx, pl.Account, held, herr)
		if err != nil {
			return nil, fmt.Errorf("account signature: %v", err)
		}
		v, err := did.VerifyWithDocument(doc, it.PersonJWS)
		if err != nil {
			return nil, fmt.Errorf("account signature: %v", err)
		}
		// An account with a did:webvh log signs under its current DID
		// (accountDocument returned that document); others under their DID.
		if (v.DID != pl.Account && v.DID != doc.ID) || string(v.Payload) != string(raw) {
			return nil, fmt.Errorf("account signature is not by %s over this event", pl.Account)
		}
	}
	return &pl, nil
}

// applyPayload changes the replica. Only the account's home may change it:
// for an account with a did:webvh log the home the log names; for a
// did:key account the home held, except that a new home proves itself with
// the account's own signature.
func (f *Federation) applyPayload(ctx context.Context, p *Peer, pl *Payload, personSigned bool) error {
	switch pl.Type {
	case "token.revoked":
		var d struct {
			Tokens []struct {
				Hash string `json:"hash"`
				Exp  int64  `json:"exp"`
			} `json:"tokens"`
		}
		if err := json.Unmarshal(pl.Data, &d); err != nil {
			return fmt.Errorf("%w: token.revoked data: %v", ErrRejected, err)
		}
		ts := make([]RevokedToken, 0, len(d.Tokens))
		for _, t := range d.Tokens {
			ts = append(ts, RevokedToken{Hash: t.Hash, ExpiresAt: time.Unix(t.Exp, 0).UTC()})
		}
		return f.Store.PutRevokedTokens(ctx, p.Issuer, ts)
	case "service.registered", "service.forked", "service.deleted":
		var md map[string]any
		if err := json.Unmarshal(pl.Data, &md); err != nil && len(pl.Data) > 0 {
			return fmt.Errorf("%w: service data: %v", ErrRejected, err)
		}
		id, _ := md["client_id"].(string)
		if id == "" {
			return nil
		}
		if !pl.Shared || pl.Type == "service.deleted" {
			return f.Store.DeleteRemoteService(ctx, p.Issuer, id)
		}
		data, err := f.checkService(ctx, p, id, pl.Data)
		if err != nil {
			return err
		}
		return f.Store.PutRemoteService(ctx, p.Issuer, id, data, time.UnixMicro(pl.At).UTC())
	case DIDLogEvent:
		return f.applyDIDLog(ctx, p, pl)
	}
	if !strings.HasPrefix(pl.Account, "did:") {
		return fmt.Errorf("%w: %s without an account DID", ErrRejected, pl.Type)
	}
	cur, err := f.Store.GetAccount(ctx, pl.Account)
	if errors.Is(err, store.ErrNotFound) {
		cur, err = nil, nil
	}
	if err != nil {
		return err
	}
	if cur != nil && cur.HomeIssuer == f.Issuer && cur.Status != identity.StatusMoved {
		// This cloud is the home: peers do not write it.
		f.log().Warn("ignored a peer event about an account homed here", "peer", p.Issuer, "seq", pl.Seq, "type", pl.Type, "did", pl.Account)
		return nil
	}
	fromHome := cur == nil || cur.HomeIssuer == p.Issuer
	// An account with a did:webvh log has the home its log names: only
	// that cloud's account events are taken, so a former home's stale
	// events change nothing (didlogs.go).
	home, byLog, err := f.logHome(ctx, pl.Account)
	if err != nil {
		return err
	}
	if byLog {
		if home != p.Issuer {
			f.log().Info("ignored an account event from a cloud that is not the home the account's DID log names",
				"peer", p.Issuer, "seq", pl.Seq, "type", pl.Type, "did", pl.Account, "home", home)
			return nil
		}
		fromHome = true
		if pl.Type == "account.moved" {
			return nil // the log says where the home is
		}
	}
	switch pl.Type {
	case "account.created", "account.updated":
		if !pl.Shared {
			// A replica the person no longer shares is dropped; the row an
			// old home keeps of an account that moved away (personal data
			// already gone) stays: it answers with the moved page and keeps
			// the log served at its old location.
			if fromHome && cur != nil && cur.HomeIssuer != f.Issuer && cur.Status != identity.StatusMoved {
				return f.Store.DropReplica(ctx, pl.Account)
			}
			return nil
		}
		var ad AccountData
		if err := json.Unmarshal(pl.Data, &ad); err != nil {
			return fmt.Errorf("%w: account data: %v", ErrRejected, err)
		}
		if ad.Home != p.Issuer {
			return fmt.Errorf("%w: %s names home %q", ErrRejected, p.Issuer, ad.Home)
		}
		if !fromHome {
			// A new home takes over with the person's signature, on an
			// account at least as recent as what is held (an account
			// without a DID log: one with a log follows the log).
			if !personSigned || ad.UpdatedAt < cur.UpdatedAt.UnixMicro() {
				f.log().Warn("ignored a peer event about an account homed elsewhere", "peer", p.Issuer, "seq", pl.Seq, "did", pl.Account, "home", cur.HomeIssuer)
				return nil
			}
		}
		return f.putReplica(ctx, p, pl.Account, &ad, cur)
	case "privacy.updated":
		if !fromHome {
			return nil
		}
		if !pl.Shared {
			if cur != nil && cur.Status != identity.StatusMoved {
				return f.Store.DropReplica(ctx, pl.Account)
			}
			return nil
		}
		var ad AccountData
		if err := json.Unmarshal(pl.Data, &ad); err != nil || ad.Settings == nil {
			return fmt.Errorf("%w: privacy data", ErrRejected)
		}
		if ad.Home != p.Issuer {
			return fmt.Errorf("%w: %s names home %q", ErrRejected, p.Issuer, ad.Home)
		}
		if err := f.putReplica(ctx, p, pl.Account, &ad, cur); err != nil {
			return err
		}
		// The consents held from this home are replaced by the list (none
		// unless the person shares "all").
		if err := f.Store.DeleteReplicaConsents(ctx, pl.Account, p.Issuer+"#"); err != nil {
			return err
		}
		for _, cd := range ad.Consents {
			if err := f.Store.PutReplicaConsent(ctx, replicaConsent(p.Issuer, pl.Account, cd)); err != nil {
				return err
			}
		}
		return nil
	case "consent.granted", "consent.revoked":
		if !fromHome || cur == nil || !pl.Shared {
			return nil
		}
		var cd ConsentData
		if err := json.Unmarshal(pl.Data, &cd); err != nil || cd.ClientID == "" {
			return fmt.Errorf("%w: consent data", ErrRejected)
		}
		if pl.Type == "consent.revoked" {
			return f.Store.DeleteReplicaConsents(ctx, pl.Account, p.Issuer+"#"+cd.ClientID)
		}
		return f.Store.PutReplicaConsent(ctx, replicaConsent(p.Issuer, pl.Account, cd))
	case "account.deleted":
		if fromHome && cur != nil {
			return f.Store.DropReplica(ctx, pl.Account)
		}
		return nil
	case "account.moved":
		if !fromHome || cur == nil {
			return nil
		}
		var d struct {
			To string `json:"to"`
		}
		json.Unmarshal(pl.Data, &d)
		to, err := NormalizeIssuer(d.To)
		if err != nil {
			return fmt.Errorf("%w: account.moved: %v", ErrRejected, err)
		}
		if to == f.Issuer {
			return nil // the account arrives here by import
		}
		a := *cur
		a.HomeIssuer, a.Handle = to, replicaHandle(bareHandle(cur.Handle), to)
		return f.putReplicaAccount(ctx, &a)
	}
	return nil // an event type this version does not know: skipped
}

// replicaConsent is a consent held for a peer's service: its client_id is
// "issuer#client_id".
func replicaConsent(issuer, account string, cd ConsentData) *privacy.Consent {
	c := &privacy.Consent{AccountDID: account, ClientID: issuer + "#" + cd.ClientID, Scopes: cd.Scopes, Claims: cd.Claims,
		SubjectSector: cd.SubjectSector, GrantedAt: time.UnixMicro(cd.GrantedAt).UTC(), UpdatedAt: time.UnixMicro(cd.UpdatedAt).UTC()}
	if cd.ExpiresAt != 0 {
		t := time.UnixMicro(cd.ExpiresAt).UTC()
		c.ExpiresAt = &t
	}
	return c
}

func (f *Federation) putReplica(ctx context.Context, p *Peer, d string, ad *AccountData, cur *identity.Account) error {
	if ad.Status != identity.StatusActive && ad.Status != identity.StatusDisabled {
		return fmt.Errorf("%w: status %q", ErrRejected, ad.Status)
	}
	// What a peer sends is held to the rules of local accounts.
	if h, err := identity.NormalizeHandle(ad.Handle); err != nil || h != ad.Handle {
		return fmt.Errorf("%w: handle %.64q is not a valid handle", ErrRejected, ad.Handle)
	}
	name, err := identity.ValidateName(ad.Name)
	if err != nil || name != ad.Name {
		return fmt.Errorf("%w: name: not valid text of at most %d characters", ErrRejected, identity.NameMax)
	}
	if e, err := identity.ValidateEmail(ad.Email); err != nil || e != ad.Email {
		return fmt.Errorf("%w: email %.64q is not an email address", ErrRejected, ad.Email)
	}
	// The replica holds no DID key: it cannot sign for the person; nor
	// the pairwise secret (a pairwise_secret an older home still sends is
	// ignored): its subs come from the home (subjects.go).
	a := &identity.Account{DID: d, Handle: replicaHandle(ad.Handle, p.Issuer), Email: ad.Email, EmailVerified: ad.EmailVerified,
		Name: ad.Name, Status: ad.Status, HomeIssuer: p.Issuer,
		CreatedAt: time.UnixMicro(ad.CreatedAt).UTC(), UpdatedAt: time.UnixMicro(ad.UpdatedAt).UTC()}
	if cur != nil {
		a.CreatedAt = cur.CreatedAt
	}
	if err := f.putReplicaAccount(ctx, a); err != nil {
		return err
	}
	if ad.Settings != nil {
		if err := ad.Settings.Validate(); err != nil {
			return fmt.Errorf("%w: settings: %v", ErrRejected, err)
		}
		if err := f.Store.PutReplicaSettings(ctx, d, ad.Settings, a.UpdatedAt); err != nil {
			return err
		}
	}
	return f.putReplicaAccess(ctx, d, ad.Access) // access.go
}

// putReplicaAccount writes a replica, refusing (ErrRejected) one whose
// handle another account holds: on PostgreSQL a unique violation would
// abort the whole batch's transaction, and the follower would retry the
// same batch for ever.
func (f *Federation) putReplicaAccount(ctx context.Context, a *identity.Account) error {
	other, err := f.Store.GetAccountByHandle(ctx, a.Handle)
	switch {
	case err == nil && other.DID != a.DID:
		return fmt.Errorf("%w: handle %s is held here by another account", ErrRejected, a.Handle)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	return f.Store.PutReplica(ctx, a)
}

// replicaHandle is how a replicated account's handle is kept: qualified
// with its home's host, so it never collides with a local handle.
func replicaHandle(handle, home string) string {
	u, err := url.Parse(home)
	if err != nil {
		return handle + "@" + home
	}
	return handle + "@" + u.Host
}

// bareHandle strips the home host of a replica handle.
func bareHandle(h string) string {
	if i := strings.LastIndexByte(h, '@'); i > 0 {
		return h[:i]
	}
	return h
}

// heldLog is the did:webvh log this cloud holds for account, looked up once
// per event: store.ErrNotFound when there is none (or no store).
func (f *Federation) heldLog(ctx context.Context, account string) (*identity.DIDLog, error) {
	if f.Store == nil {
		return nil, store.ErrNotFound
	}
	return f.Store.GetDIDLog(ctx, account)
}

// notHomeOf reports that the held did:webvh log (nil when none) names
// another home than peer: the peer's account events are ignored
// (applyPayload), so its signature (by a key the account may no longer
// have) is not checked, and a stale event from an old home is not
// quarantined.
func notHomeOf(held *identity.DIDLog, peer string) bool {
	return held != nil && held.HomeIssuer != "" && held.HomeIssuer != peer
}

type pageLogsKey struct{}

// pageLogs holds the documents of the did:webvh logs a page carries.
type pageLogs map[string]*did.Document

// notePageLog keeps the current document of the witnessed log a did.log
// event carries, when the log is the account's own (its SCID is the one
// of the account's DID).
func (f *Federation) notePageLog(ctx context.Context, pl *Payload) {
	m, _ := ctx.Value(pageLogsKey{}).(pageLogs)
	if m == nil || !pl.Shared || len(pl.Data) == 0 || len(pl.Data) > 4*webvh.DefaultLimits.MaxLogBytes {
		return
	}
	id, err := webvh.ParseDID(pl.Account)
	if err != nil {
		return // an upgraded did:key account resolves offline
	}
	var d DIDLogData
	if json.Unmarshal(pl.Data, &d) != nil {
		return
	}
	res, err := webvh.Verify([]byte(d.Log), webvh.Options{Now: f.now, Witness: func() ([]byte, error) { return d.Witness, nil }})
	if err != nil || !res.Metadata.Witnessed || res.Metadata.SCID != id.SCID {
		return
	}
	if doc, err := did.WebVHDocument(res); err == nil {
		m[pl.Account] = doc
	}
}

// accountDocument resolves an account's DID, caching did:key and did:jwk
// documents (they are derived from the DID itself).
func (f *Federation) accountDocument(ctx context.Context, id string) (*did.Document, error) {
	held, err := f.heldLog(ctx, id)
	return f.accountDocumentHeld(ctx, id, held, err)
}

// accountDocumentHeld is accountDocument with the held log (and the error of
// its lookup) already at hand.
func (f *Federation) accountDocumentHeld(ctx context.Context, id string, l *identity.DIDLog, lerr error) (*did.Document, error) {
	if m, _ := ctx.Value(pageLogsKey{}).(pageLogs); m != nil {
		if doc, ok := m[id]; ok {
			return doc, nil
		}
	}
	// An account whose did:webvh log this cloud holds signs with the key of
	// that log's accepted head (a move or a key rotation changes it): the
	// document is the held log's, with no fetch and no stale cache. The
	// log's home appends did.log before the events signed with a new key.
	if lerr == nil && l != nil {
		key := id + "@" + strconv.Itoa(l.Version) + "-" + l.CurrentDID
		f.docMu.Lock()
		doc, ok := f.docs[key]
		f.docMu.Unlock()
		if ok {
			return doc, nil
		}
		res, err := webvh.Verify(l.Log, webvh.Options{Witness: func() ([]byte, error) { return l.Witness, nil }, Now: f.now})
		if err != nil {
			return nil, fmt.Errorf("the DID log held for %s: %w", id, err)
		}
		if doc, err = did.WebVHDocument(res); err != nil {
			return nil, err
		}
		f.docMu.Lock()
		if f.docs == nil || len(f.docs) > 10000 {
			f.docs = map[string]*did.Document{}
		}
		f.docs[key] = doc
		f.docMu.Unlock()
		return doc, nil
	} else if lerr != nil && !errors.Is(lerr, store.ErrNotFound) {
		return nil, lerr
	}
	f.docMu.Lock()
	doc, ok := f.docs[id]
	f.docMu.Unlock()
	if ok {
		return doc, nil
	}
	doc, err := f.resolver().Resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(id, "did:key:") || strings.HasPrefix(id, "did:jwk:") {
		f.docMu.Lock()
		if f.docs == nil || len(f.docs) > 10000 {
			f.docs = map[string]*did.Document{}
		}
		f.docs[id] = doc
		f.docMu.Unlock()
	}
	return doc, nil
}
