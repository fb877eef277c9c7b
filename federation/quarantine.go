package federation

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/onecommons/commonsid/internal/metrics"
)

// The quarantine holds peer events that were refused for a reason that
// fetching them again as they are will not fix: a signature that does not
// verify, a malformed event, content that cannot be applied. The feed goes
// on past them (the cursor advances to the next event that verifies), so
// that one bad event does not block a peer. Transient failures (the store
// down, a cancelled context) are no reason for quarantine: the batch is
// not applied and the follower retries from its cursor.
//
// Ordering: the feed carries an account's current state, so an older
// event applied after a newer one of the same account would undo the
// newer. While an event of an account is quarantined, the later events of
// that account are held in the quarantine too ("held"), and applied in
// order when it is retried and applied, or dropped. Token revocations are
// never held: applying one late loses nothing. A forged event is held
// under the account it claims, which only delays that account's events.
//
// Retry re-verifies the copy kept, and, failing that, the event as the
// peer serves it now (a tampering path may have healed, the peer may have
// re-signed it). The follower retries by itself at each reconnect, for
// events retried fewer than AutoRetryAttempts times.

// DefaultMaxQuarantine is how many events are kept in quarantine per peer;
// past it the oldest are dropped and counted.
const DefaultMaxQuarantine = 1000

// AutoRetryAttempts is how many attempts an event gets from the follower
// before only an operator retries it.
const AutoRetryAttempts = 5

// autoRetryBatch bounds the events the follower retries at one reconnect.
const autoRetryBatch = 50

// ErrQuarantined reports that events of a batch were quarantined; the
// others were applied and the feed goes on. It is an ErrRejected.
var ErrQuarantined = fmt.Errorf("%w: quarantined", ErrRejected)

// Quarantined is a peer event held here instead of applied.
type Quarantined struct {
	Peer       string
	Seq        int64
	Type       string // as the event claims: unverified when its signature failed
	AccountDID string // likewise
	Event      string // the event as received (JSON of Item)
	Reason     string
	HeldBy     int64 // an earlier quarantined event of the same account; 0: refused itself
	FirstSeen  time.Time
	LastSeen   time.Time
	Attempts   int
}

// QuarantineStore keeps quarantined events.
type QuarantineStore interface {
	// PutQuarantined inserts the event, or updates its reason, last seen
	// time and attempts (+1) when (peer, seq) is there; then keeps at most
	// max events of the peer, dropping the oldest and counting them.
	PutQuarantined(ctx context.Context, q *Quarantined, max int) error
	// ListQuarantined returns a peer's events ("" for all peers), by peer
	// and sequence.
	ListQuarantined(ctx context.Context, peer string, limit int) ([]*Quarantined, error)
	// DeleteQuarantined removes one; store.ErrNotFound when absent.
	DeleteQuarantined(ctx context.Context, peer string, seq int64) error
	// QuarantineCount returns how many events of peer are held and how
	// many were dropped over the bound.
	QuarantineCount(ctx context.Context, peer string) (held int, dropped int64, err error)
}

// QuarantineSummary reports a peer's quarantine for listings.
type QuarantineSummary struct {
	Held    int
	Dropped int64
}

// holdsAccount reports whether events of pl's type are held behind an
// earlier quarantined event of the same account.
func holdsAccount(typ, account string) bool {
	return account != "" && typ != "token.revoked" && !strings.HasPrefix(typ, "service.")
}

// holdSet is, per account, the sequence numbers in quarantine, ascending:
// the first holds the account's later events.
type holdSet map[string][]int64

func (h holdSet) add(account string, seq int64) {
	s := h[account]
	i, found := slices.BinarySearch(s, seq)
	if !found {
		h[account] = slices.Insert(s, i, seq)
	}
}

func (h holdSet) remove(account string, seq int64) {
	s := h[account]
	if i, found := slices.BinarySearch(s, seq); found {
		h[account] = slices.Delete(s, i, i+1)
	}
}

// blocker is the quarantined event before seq that holds it, or 0.
func (h holdSet) blocker(account string, seq int64) int64 {
	if s := h[account]; len(s) > 0 && s[0] < seq {
		return s[0]
	}
	return 0
}

func (h holdSet) clone() holdSet {
	c := make(holdSet, len(h))
	for k, v := range h {
		c[k] = slices.Clone(v)
	}
	return c
}

// claimed reads what an event says of itself without trusting it: its
// type and account, for listing and for holding its account's later
// events.
func claimed(it Item) (typ, account string) {
	parts := strings.Split(it.JWS, ".")
	if len(parts) != 3 {
		return "", ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", ""
	}
	var pl struct {
		Type    string `json:"type"`
		Account string `json:"account"`
	}
	if json.Unmarshal(raw, &pl) != nil {
		return "", ""
	}
	const max = 200 // a claim is only shown
	if len(pl.Type) > max || len(pl.Account) > max*4 {
		return "", ""
	}
	return pl.Type, pl.Account
}

// quarantine records an event refused or held, logs it (the peer and the
// reason, never the account) and counts it.
func (f *Federation) quarantine(ctx context.Context, p *Peer, it Item, typ, account, reason string, heldBy int64) error {
	raw, _ := json.Marshal(it)
	now := f.now()
	q := &Quarantined{Peer: p.Issuer, Seq: it.Seq, Type: typ, AccountDID: account, Event: string(raw), Reason: reason,
		HeldBy: heldBy, FirstSeen: now, LastSeen: now, Attempts: 1}
	if err := f.Store.PutQuarantined(ctx, q, f.maxQuarantine()); err != nil {
		return fmt.Errorf("quarantine %s event %d: %w", p.Issuer, it.Seq, err)
	}
	f.streams.quarantined.Add(1)
	metrics.FederationQuarantined(p.Issuer)
	logReason := reason
	if account != "" {
		logReason = strings.ReplaceAll(logReason, account, "<account>")
	}
	f.log().Warn("quarantined a peer event", "peer", p.Issuer, "seq", it.Seq, "type", typ, "reason", logReason)
	return nil
}

func (f *Federation) maxQuarantine() int {
	if f.Limits.MaxQuarantine > 0 {
		return f.Limits.MaxQuarantine
	}
	return DefaultMaxQuarantine
}

// RetryResult reports what a retry did.
type RetryResult struct {
	Applied []int64 // left the quarantine
	Failed  []int64 // still there, attempts+1
}

// RetryQuarantined re-applies quarantined events of peer p: the one with
// sequence seq and the events of its account held behind it, or all when
// seq is 0. Events are tried in order; an event held behind an earlier
// one of its account that stays applies only after it. A transient
// failure stops the retry with an error, changing nothing more.
func (f *Federation) RetryQuarantined(ctx context.Context, p *Peer, seq int64) (*RetryResult, error) {
	return f.retry(ctx, p, seq, 0)
}

func (f *Federation) retry(ctx context.Context, p *Peer, seq int64, maxAttempts int) (*RetryResult, error) {
	all, err := f.Store.ListQuarantined(ctx, p.Issuer, f.maxQuarantine()+1)
	if err != nil {
		return nil, err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	var todo []*Quarantined
	if seq != 0 {
		var target *Quarantined
		for _, q := range all {
			if q.Seq == seq {
				target = q
			}
		}
		if target == nil {
			return nil, fmt.Errorf("event %d of %s is not quarantined: %w", seq, p.Issuer, ErrNotQuarantined)
		}
		for _, q := range all {
			if q == target || (q.Seq > seq && q.HeldBy != 0 && q.AccountDID == target.AccountDID && holdsAccount(q.Type, q.AccountDID)) {
				todo = append(todo, q)
			}
		}
	} else {
		for _, q := range all {
			if maxAttempts == 0 || q.Attempts < maxAttempts {
				todo = append(todo, q)
			}
			if maxAttempts != 0 && len(todo) == autoRetryBatch {
				break // the rest at the next reconnect
			}
		}
	}
	inTodo := map[int64]bool{}
	for _, q := range todo {
		inTodo[q.Seq] = true
	}
	failed := map[int64]bool{}
	res := &RetryResult{}
	for _, q := range todo {
		// An earlier event of the account that stays holds this one.
		var blocker int64
		if holdsAccount(q.Type, q.AccountDID) {
			for _, r := range all {
				if r.Seq < q.Seq && r.AccountDID == q.AccountDID && holdsAccount(r.Type, r.AccountDID) && (!inTodo[r.Seq] || failed[r.Seq]) {
					blocker = r.Seq
					break
				}
			}
		}
		if blocker != 0 {
			if err := f.requarantine(ctx, p, q, "", blocker); err != nil {
				return res, err
			}
			failed[q.Seq] = true
			res.Failed = append(res.Failed, q.Seq)
			continue
		}
		reason, err := f.retryOne(ctx, p, q)
		if err != nil {
			return res, err
		}
		if reason != "" {
			if err := f.requarantine(ctx, p, q, reason, 0); err != nil {
				return res, err
			}
			failed[q.Seq] = true
			res.Failed = append(res.Failed, q.Seq)
			continue
		}
		res.Applied = append(res.Applied, q.Seq)
	}
	return res, nil
}

// ErrNotQuarantined reports a sequence number that is not in quarantine.
var ErrNotQuarantined = errors.New("not quarantined")

// requarantine records a failed retry: a new reason (or "" to keep it,
// with heldBy set) and attempts+1.
func (f *Federation) requarantine(ctx context.Context, p *Peer, q *Quarantined, reason string, heldBy int64) error {
	u := *q
	u.LastSeen = f.now()
	if reason != "" {
		u.Reason, u.HeldBy = reason, 0
	} else {
		u.HeldBy = heldBy
		u.Reason = fmt.Sprintf("held behind quarantined event %d of the same account", heldBy)
	}
	return f.Store.PutQuarantined(ctx, &u, f.maxQuarantine())
}

// retryOne verifies and applies one quarantined event: the copy kept, else
// the peer's current copy. It returns why it stays ("" when applied) or
// an error for a transient failure.
func (f *Federation) retryOne(ctx context.Context, p *Peer, q *Quarantined) (string, error) {
	var it Item
	if err := json.Unmarshal([]byte(q.Event), &it); err != nil {
		it = Item{Seq: q.Seq}
	}
	it.Seq = q.Seq
	pl, verr := f.verify(ctx, p, it)
	if verr != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		// The peer's copy as it is now.
		if page, err := f.fetchPage(ctx, p, q.Seq-1, 1); err == nil && len(page.Events) == 1 && page.Events[0].Seq == q.Seq {
			it = page.Events[0]
			pl, verr = f.verify(ctx, p, it)
		}
	}
	if verr != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return verr.Error(), nil
	}
	if q.AccountDID != pl.Account && holdsAccount(pl.Type, pl.Account) {
		// Its account was not known when it was quarantined, so later
		// events of that account may have applied: applying this older one
		// now could undo them.
		if later, err := f.laterApplied(ctx, p, pl.Account, q.Seq); err != nil {
			return "", err
		} else if later != 0 {
			return fmt.Sprintf("superseded by applied event %d of the same account; drop it", later), nil
		}
	}
	var reason string
	err := f.Store.InTx(ctx, func(ctx context.Context) error {
		// A quarantined event may have been marked applied when its
		// content failed; it is applied now all the same.
		if _, err := f.Store.MarkApplied(ctx, &Applied{Peer: p.Issuer, Seq: pl.Seq, Type: pl.Type, AccountDID: pl.Account,
			EventAt: time.UnixMicro(pl.At).UTC(), AppliedAt: f.now()}); err != nil {
			return err
		}
		if err := f.applyPayload(ctx, p, pl, it.PersonJWS != ""); err != nil {
			if errors.Is(err, ErrRejected) {
				reason = "content: " + err.Error()
				return errRollback
			}
			return err
		}
		// The cursor does not move: the sequence of a refetched copy is
		// the peer's, but events before it may not have been read yet.
		return f.Store.DeleteQuarantined(ctx, p.Issuer, q.Seq)
	})
	if errors.Is(err, errRollback) {
		return reason, nil
	}
	if err != nil {
		return "", fmt.Errorf("retry %s event %d: %w", p.Issuer, q.Seq, err)
	}
	return "", nil
}

var errRollback = errors.New("rolled back")

// laterApplied returns an applied event of account after seq, or 0.
func (f *Federation) laterApplied(ctx context.Context, p *Peer, account string, seq int64) (int64, error) {
	for after := seq; ; {
		as, err := f.Store.ListApplied(ctx, p.Issuer, after, 1000)
		if err != nil {
			return 0, err
		}
		for _, a := range as {
			if a.AccountDID == account && holdsAccount(a.Type, a.AccountDID) {
				return a.Seq, nil
			}
		}
		if len(as) < 1000 {
			return 0, nil
		}
		after = as[len(as)-1].Seq
	}
}

// DropQuarantined discards one quarantined event of peer p, then retries
// the events of its account that were held behind it only.
func (f *Federation) DropQuarantined(ctx context.Context, p *Peer, seq int64) (*RetryResult, error) {
	all, err := f.Store.ListQuarantined(ctx, p.Issuer, f.maxQuarantine()+1)
	if err != nil {
		return nil, err
	}
	var target *Quarantined
	for _, q := range all {
		if q.Seq == seq {
			target = q
		}
	}
	if target == nil {
		return nil, fmt.Errorf("event %d of %s is not quarantined: %w", seq, p.Issuer, ErrNotQuarantined)
	}
	if err := f.Store.DeleteQuarantined(ctx, p.Issuer, seq); err != nil {
		return nil, err
	}
	f.log().Warn("dropped a quarantined peer event", "peer", p.Issuer, "seq", seq)
	for _, q := range all {
		if q.Seq > seq && q.HeldBy == seq {
			return f.RetryQuarantined(ctx, p, q.Seq)
		}
	}
	return &RetryResult{}, nil
}
