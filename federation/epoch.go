package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Feed epochs: a cloud's feed numbers its events 1, 2, 3… in one epoch, a
// random id the cloud makes at its first start and anew whenever its
// sequence numbers may have restarted (a database restored from a backup).
// Every page carries the epoch and the head (the highest sequence number
// the cloud has issued); the stream opens with an "epoch" event carrying
// both; every event's signed payload names its epoch.
//
// A follower records the epoch its cursor counts in. It resyncs with a
// peer when
//
//   - the page's epoch differs from the recorded one (the home noticed a
//     restore, or its operator ran `commonsid feed new-epoch`), or
//   - the page's head is below the cursor (a restore the home did not
//     notice: its sequence numbers went back).
//
// A resync (states: following → replaying → following) clears the peer's
// cursor, applied set, quarantine and replay marks in one transaction,
// records the new epoch and why, and replays the whole feed from 0. Each
// event is built from the home's current state, so the replay ends with
// the current state. Every replica, service and consent the replay
// mentions is marked; when the replay reaches the head, those of that peer
// it did not mention are dropped (mark and sweep). Revoked tokens are
// never swept: a revocation cannot be taken back by a restore, and those
// the restored home still has are applied again. A follower that stops
// during the replay goes on from its cursor: the marks are kept.
//
// An absent epoch (a cloud of an older version) is tolerated: the head
// rule alone applies, and the first epoch a peer serves is recorded
// without a resync. Once a peer's epoch is recorded, an event signed for
// another epoch (or for none) is refused: after a resync, copies of the
// old epoch's events cannot be passed off as the new epoch's.

// MaxEpoch is the longest epoch a follower accepts.
const MaxEpoch = 64

// PeerEpoch is what this cloud knows of a peer's feed epoch and of its
// resyncs with that peer.
type PeerEpoch struct {
	Peer      string
	Epoch     string    // "" before the peer served one
	Resyncing bool      // replaying the feed from 0; the sweep is due at its end
	Reason    string    // why the last resync started
	ResyncAt  time.Time // when the last resync started; zero: never
	DoneAt    time.Time // when the last resync finished its sweep
	Resyncs   int
}

// Swept counts what a resync's sweep dropped.
type Swept struct {
	Accounts, Services, Consents int
}

// Kinds of what a replay marks as mentioned.
const (
	SeenAccount = "account"
	SeenService = "service"
	SeenConsent = "consent"
)

// EpochStore keeps this cloud's feed epoch and head, and, per peer, the
// epoch followed and the state of a resync.
type EpochStore interface {
	// FeedEpoch returns this cloud's feed epoch; "" when none is made yet.
	FeedEpoch(ctx context.Context) (string, error)
	// FeedHead returns the highest sequence number the log has issued
	// (0 for none), even when that event has been deleted since.
	FeedHead(ctx context.Context) (int64, error)

	// PeerEpoch returns what is known of a peer's epoch: a zero PeerEpoch
	// (with Peer set) when nothing is.
	PeerEpoch(ctx context.Context, peer string) (*PeerEpoch, error)
	// SetPeerEpoch records the epoch of a peer first seen serving one.
	SetPeerEpoch(ctx context.Context, peer, epoch string) error
	// StartResync clears the peer's cursor, applied events, quarantine and
	// replay marks, and records epoch, reason and at, with Resyncing set;
	// store.ErrNotFound when the peer is not there.
	StartResync(ctx context.Context, peer, epoch, reason string, at time.Time) error
	// MarkResyncSeen records that the replay mentioned kind id (for a
	// consent, id is the account and clientID the replica's client_id).
	MarkResyncSeen(ctx context.Context, peer, kind, id, clientID string) error
	// FinishResync drops the peer's replicas, services and replicated
	// consents that were not marked, clears the marks and Resyncing, and
	// records at as DoneAt.
	FinishResync(ctx context.Context, peer string, at time.Time) (Swept, error)
}

// resyncReason says why a follower at cursor that knows pe must replay the
// feed whose page is page; "" when it must not.
func resyncReason(pe *PeerEpoch, cursor int64, page *pageResponse) string {
	if page.Epoch != "" && pe.Epoch != "" && page.Epoch != pe.Epoch {
		return fmt.Sprintf("feed epoch changed from %s to %s", pe.Epoch, page.Epoch)
	}
	if page.Head != nil && *page.Head < cursor {
		return fmt.Sprintf("feed head %d is below the cursor %d (restored without a new epoch)", *page.Head, cursor)
	}
	return ""
}

// checkPage validates what a page says of its epoch.
func checkPage(page *pageResponse) error {
	if len(page.Epoch) > MaxEpoch || strings.ContainsAny(page.Epoch, " \t\r\n") {
		return fmt.Errorf("malformed epoch")
	}
	if page.Head != nil && *page.Head < 0 {
		return fmt.Errorf("negative head")
	}
	return nil
}

// checkEpoch compares a fetched page with what is known of the peer's
// epoch. It records a first epoch, or starts a resync (p's cursor goes
// back to 0) and reports true: the page is then fetched again.
func (f *Federation) checkEpoch(ctx context.Context, p *Peer, page *pageResponse) (bool, error) {
	if err := checkPage(page); err != nil {
		return false, fmt.Errorf("feed page of %s: %w", p.Issuer, err)
	}
	pe, err := f.Store.PeerEpoch(ctx, p.Issuer)
	if err != nil {
		return false, err
	}
	reason := resyncReason(pe, p.Cursor, page)
	if reason != "" {
		// Another process of this cloud (on one PostgreSQL) may have
		// started the resync already: its cursor, not this one's, counts.
		cur, err := f.Store.GetPeer(ctx, p.Issuer)
		if err != nil {
			return false, err
		}
		if cur.Cursor != p.Cursor && resyncReason(pe, cur.Cursor, page) == "" {
			p.Cursor, p.LastEventAt = cur.Cursor, cur.LastEventAt
			return true, nil
		}
	}
	if reason == "" {
		if page.Epoch != "" && pe.Epoch == "" {
			if err := f.Store.SetPeerEpoch(ctx, p.Issuer, page.Epoch); err != nil {
				return false, err
			}
			f.log().Info("recorded a peer's feed epoch", "peer", p.Issuer, "epoch", page.Epoch)
		}
		return false, nil
	}
	epoch := page.Epoch
	if epoch == "" {
		epoch = pe.Epoch
	}
	if err := f.Store.StartResync(ctx, p.Issuer, epoch, reason, f.now()); err != nil {
		return false, fmt.Errorf("resync with %s: %w", p.Issuer, err)
	}
	f.log().Warn("resyncing with a peer: replaying its feed from the start", "peer", p.Issuer, "reason", reason,
		"epoch", epoch, "cursor_was", p.Cursor)
	p.Cursor, p.LastEventAt = 0, time.Time{}
	return true, nil
}

// finishResync sweeps what a completed replay did not mention.
func (f *Federation) finishResync(ctx context.Context, p *Peer) error {
	pe, err := f.Store.PeerEpoch(ctx, p.Issuer)
	if err != nil || !pe.Resyncing {
		return err
	}
	sw, err := f.Store.FinishResync(ctx, p.Issuer, f.now())
	if err != nil {
		return fmt.Errorf("resync with %s: %w", p.Issuer, err)
	}
	f.log().Warn("resynced with a peer: its feed was replayed", "peer", p.Issuer, "epoch", pe.Epoch, "cursor", p.Cursor,
		"reason", pe.Reason, "took", f.now().Sub(pe.ResyncAt).Round(time.Millisecond).String(),
		"dropped_accounts", sw.Accounts, "dropped_services", sw.Services, "dropped_consents", sw.Consents)
	return nil
}

// markSeen records what a replayed event mentions.
func (f *Federation) markSeen(ctx context.Context, p *Peer, pl *Payload) error {
	mark := func(kind, id, client string) error {
		return f.Store.MarkResyncSeen(ctx, p.Issuer, kind, id, client)
	}
	if strings.HasPrefix(pl.Type, "service.") {
		var md struct {
			ClientID string `json:"client_id"`
		}
		if json.Unmarshal(pl.Data, &md) == nil && md.ClientID != "" && pl.Shared && pl.Type != "service.deleted" {
			return mark(SeenService, md.ClientID, "")
		}
		return nil
	}
	if pl.Account == "" || pl.Type == "token.revoked" {
		return nil
	}
	if err := mark(SeenAccount, pl.Account, ""); err != nil {
		return err
	}
	if !pl.Shared {
		return nil
	}
	switch pl.Type {
	case "consent.granted":
		var cd ConsentData
		if json.Unmarshal(pl.Data, &cd) == nil && cd.ClientID != "" {
			return mark(SeenConsent, pl.Account, p.Issuer+"#"+cd.ClientID)
		}
	case "privacy.updated":
		var ad AccountData
		if json.Unmarshal(pl.Data, &ad) == nil {
			for _, cd := range ad.Consents {
				if err := mark(SeenConsent, pl.Account, p.Issuer+"#"+cd.ClientID); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// epochEvent is the data of the stream's opening "epoch" event.
type epochEvent struct {
	Epoch string `json:"epoch"`
	Head  int64  `json:"head"`
}
