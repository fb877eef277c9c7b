package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
)

// The witness worker keeps the did:webvh logs of the accounts homed here
// witnessed by the members of the commons: each log's witness parameter is
// identity.WitnessConfig of this cloud's witness and every peer's, and its
// last entry carries a threshold of their proofs. Where the parameter
// differs, an entry setting it is appended, signed by the account's
// custodial key; where proofs are missing they are collected
// (Federation.CollectWitness). The new log is stored with a did.log event
// in one transaction, so that every peer learns it.
//
// It runs shortly after serve starts, whenever the member set changes,
// on each did.log event committed here (a new account), and every
// COMMONSID_DID_WITNESS_INTERVAL (default one minute). Sign-up never waits
// for it: a new account's genesis entry needs no witness.

// DefaultDIDWitnessInterval is how often every log homed here is checked.
const DefaultDIDWitnessInterval = time.Minute

// didWitnessBatch is how many logs one step of a pass reads.
const didWitnessBatch = 100

// didWitness is the worker's state.
type didWitness struct {
	cl  *cloud
	fed *federation.Federation
}

// runDIDWitness runs the witness worker until ctx ends.
func runDIDWitness(ctx context.Context, cl *cloud, fed *federation.Federation, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultDIDWitnessInterval
	}
	w := &didWitness{cl: cl, fed: fed}
	wake := make(chan struct{}, 1)
	cl.db.OnEvents(func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	cursor, err := cl.db.LastEventSeq(ctx)
	if err != nil && ctx.Err() == nil {
		cl.log.Warn("DID witness worker: read the event log", "err", err)
	}
	start := time.NewTimer(500 * time.Millisecond)
	defer start.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	members := time.NewTicker(2 * time.Second)
	defer members.Stop()
	var lastSet string
	for {
		full := false
		select {
		case <-ctx.Done():
			return
		case <-start.C:
			full = true
		case <-tick.C:
			full = true
		case <-members.C:
			ids, err := fed.MemberWitnesses(ctx)
			if err != nil {
				continue
			}
			slices.Sort(ids)
			set := fmt.Sprint(ids)
			full = lastSet != "" && set != lastSet
			lastSet = set
		case <-wake:
			cursor = w.recent(ctx, cursor)
			continue
		}
		if full {
			w.pass(ctx)
		}
	}
}

// recent brings the accounts of the did.log events after cursor up to
// date, and returns the new cursor.
func (w *didWitness) recent(ctx context.Context, cursor int64) int64 {
	var evs []federation.LogEvent
	for range 4 {
		page, err := w.cl.db.FeedEvents(ctx, cursor, 500)
		if err != nil {
			if ctx.Err() == nil {
				w.cl.log.Warn("DID witness worker: read the event log", "err", err)
			}
			break
		}
		evs = append(evs, page...)
		if len(page) < 500 {
			break
		}
		cursor = page[len(page)-1].Seq
	}
	if len(evs) == 0 {
		// A log restored from a backup numbers from lower again.
		if head, err := w.cl.db.LastEventSeq(ctx); err == nil && head < cursor {
			cursor = head
		}
		return cursor
	}
	seen := map[string]bool{}
	var members *webvh.Witness
	for _, e := range evs {
		cursor = e.Seq
		if e.Type != federation.DIDLogEvent || e.AccountDID == "" || seen[e.AccountDID] {
			continue
		}
		seen[e.AccountDID] = true
		l, err := w.cl.db.GetDIDLog(ctx, e.AccountDID)
		if err != nil || l.HomeIssuer != w.cl.cfg.Issuer {
			continue
		}
		if members == nil {
			if members, err = w.members(ctx); err != nil {
				w.cl.log.Warn("DID witness worker: the member witnesses", "err", err)
				return cursor
			}
		}
		if err := w.update(ctx, members, l); err != nil {
			w.cl.log.Info("a DID log homed here awaits its witnesses", "did", l.DID, "err", err)
		}
	}
	return cursor
}

// members is the witness configuration of the commons as it is now.
func (w *didWitness) members(ctx context.Context) (*webvh.Witness, error) {
	ids, err := w.fed.MemberWitnesses(ctx)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, errors.New("no witness: this cloud has no witness key")
	}
	return identity.WitnessConfig(ids), nil
}

// pass brings every log homed here up to date, in batches.
func (w *didWitness) pass(ctx context.Context) {
	members, err := w.members(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.cl.log.Warn("DID witness worker: the member witnesses", "err", err)
		}
		return
	}
	var (
		after        string
		failed, done int
		firstErr     error
	)
	for ctx.Err() == nil {
		ls, err := w.cl.db.ListDIDLogsHomedAt(ctx, w.cl.cfg.Issuer, after, didWitnessBatch)
		if err != nil {
			if ctx.Err() == nil {
				w.cl.log.Warn("DID witness worker: list the logs homed here", "err", err)
			}
			return
		}
		for _, l := range ls {
			if err := w.update(ctx, members, l); err != nil {
				failed++
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", l.DID, err)
				}
			} else {
				done++
			}
		}
		if len(ls) < didWitnessBatch {
			break
		}
		after = ls[len(ls)-1].SCID
	}
	if failed > 0 && ctx.Err() == nil {
		w.cl.log.Warn("DID logs homed here await their witnesses; retried at the next pass", "logs", failed, "first_error", firstErr.Error())
	}
}

// update brings one log homed here to the witness configuration members
// and its threshold of proofs; nothing is written when it is there.
func (w *didWitness) update(ctx context.Context, members *webvh.Witness, l *identity.DIDLog) error {
	lg, err := webvh.Open(l.Log, webvh.Options{})
	if err != nil {
		return fmt.Errorf("the stored log does not verify: %w", err)
	}
	md := lg.Result().Metadata
	if md.Deactivated {
		return nil
	}
	appended := false
	if !sameWitness(md.Witness, members) {
		a, err := w.cl.db.GetAccount(ctx, l.DID)
		if isNotFound(err) {
			return nil // a log without an account here (an import under way)
		}
		if err != nil {
			return err
		}
		if a.HomeIssuer != w.cl.cfg.Issuer || (a.Status != identity.StatusActive && a.Status != identity.StatusDisabled) {
			return nil // moved away, or deleted: the log is no longer this cloud's to extend
		}
		key, err := w.cl.accounts.SigningKey(ctx, a)
		if err != nil {
			return err
		}
		pub := key.Private.Public().(ed25519.PublicKey)
		if len(md.UpdateKeys) == 0 || md.UpdateKeys[0] != webvh.Multikey(pub) {
			return fmt.Errorf("the log's custodial update key is not the account's key here")
		}
		at := time.Now().UTC()
		if !at.Truncate(time.Second).After(md.VersionTime) {
			at = md.VersionTime.Add(time.Second) // versionTime is to the second and must grow
		}
		if lg, err = identity.AppendWitnesses(lg, members, key.Private, at); err != nil {
			return fmt.Errorf("append the witness configuration: %w", err)
		}
		appended = true
	}
	raw := lg.Bytes()
	witness := l.Witness
	if appended || !witnessed(raw, witness) {
		file, err := w.fed.CollectWitness(ctx, raw, witness)
		if err != nil {
			if appended && errors.Is(err, federation.ErrWitnessThreshold) {
				// Too few witnesses reached: the entry is kept without its
				// proofs, as those that signed it hold it as the head and a
				// different entry would be a fork. No did.log event: peers
				// take it once it is witnessed.
				if serr := w.store(ctx, l, lg, witness, false); serr != nil {
					return serr
				}
			}
			return err
		}
		witness = file
	}
	if !appended && bytes.Equal(witness, l.Witness) {
		return nil
	}
	return w.store(ctx, l, lg, witness, true)
}

// store writes the new log of l (a compare-and-swap on its version) and,
// with announce, the did.log event, in one transaction.
func (w *didWitness) store(ctx context.Context, l *identity.DIDLog, lg *webvh.Log, witness []byte, announce bool) error {
	res := lg.Result()
	_, name, err := identity.IssuerOfWebVH(res.DID)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	nl := &identity.DIDLog{DID: l.DID, SCID: l.SCID, CurrentDID: res.DID, Name: name, HomeIssuer: l.HomeIssuer,
		Log: lg.Bytes(), Witness: witness, Escrow: l.Escrow, Version: res.Metadata.VersionNumber, UpdatedAt: now}
	return w.cl.db.InTx(ctx, func(ctx context.Context) error {
		ok, err := w.cl.db.PutDIDLog(ctx, nl, l.Version)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the log changed meanwhile (version %d is no longer the stored one)", l.Version)
		}
		if !announce {
			return nil
		}
		return w.cl.db.AppendEvent(ctx, federation.DIDLogEvent, l.DID, now, map[string]any{"scid": l.SCID})
	})
}

// sameWitness reports two witness configurations equal (nil: none).
func sameWitness(a, b *webvh.Witness) bool {
	if !a.Active() || !b.Active() {
		return a.Active() == b.Active()
	}
	if a.Threshold != b.Threshold || len(a.Witnesses) != len(b.Witnesses) {
		return false
	}
	ids := func(w *webvh.Witness) []string {
		out := make([]string, 0, len(w.Witnesses))
		for _, m := range w.Witnesses {
			out = append(out, m.ID)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(ids(a), ids(b))
}

// witnessed reports that the log meets its witness thresholds with the
// witness file.
func witnessed(log, witness []byte) bool {
	opts := webvh.Options{}
	if len(witness) > 0 {
		opts.Witness = func() ([]byte, error) { return witness, nil }
	}
	_, err := webvh.Verify(log, opts)
	return err == nil
}

// movedAway is Federation.OnMovedAway: the account's DID log now names
// another home. As `user moved` does, its sessions end (with back-channel
// logouts), its tokens are revoked (announced to peers) and what this
// cloud held of it is forgotten; it becomes a moved account pointing to
// the new home, and its log stays served here with the move entry. Peers
// of this cloud learn the log from a did.log event.
func (cl *cloud) movedAway(ctx context.Context, accountDID, newHome string) error {
	a, err := cl.db.GetAccount(ctx, accountDID)
	if err != nil {
		return err
	}
	queue := cl.endingSignIns(ctx, accountDID)
	if err := queue(ctx); err != nil {
		return err
	}
	if err := cl.db.ForgetAccount(ctx, accountDID); err != nil {
		return err
	}
	if err := cl.accounts.MarkMoved(ctx, accountDID, newHome); err != nil {
		return err
	}
	now := time.Now().UTC()
	if err := cl.db.AppendEvent(ctx, "account.moved", accountDID, now, map[string]any{"to": newHome}); err != nil {
		return err
	}
	scid := ""
	if l, err := cl.db.GetDIDLog(ctx, accountDID); err == nil {
		scid = l.SCID
	}
	if err := cl.db.AppendEvent(ctx, federation.DIDLogEvent, accountDID, now, map[string]any{"scid": scid}); err != nil {
		return err
	}
	cl.log.InfoContext(ctx, "account moved away: its DID log names a new home; its sessions here ended and its tokens are revoked",
		"handle", a.Handle, "did", accountDID, "home", newHome)
	return nil
}
