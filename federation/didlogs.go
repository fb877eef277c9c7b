package federation

// did:webvh logs in the feed, and one home at a time.
//
// A cloud that stores a new version of an account's did:webvh log (at
// creation, when its witnesses change or sign, at a move, at a key
// change) appends a did.log event. The event is shared with every peer
// whatever the person's sharing setting: the log holds keys and the home,
// no profile data. Its data is built when the feed is read, from the
// cloud's did_logs row of the account:
//
//	{"scid": "Qm…", "log": "<did.jsonl>", "witness": [did-witness.json records], "escrow": "<base64>"}
//
// witness is omitted when the log has no witness file, escrow (the
// pairwise secret sealed under the person's recovery kit, unreadable
// without it) when there is none.
//
// A cloud applying a did.log event verifies the log (webvh.Verify with the
// witness file: every entry that must be witnessed meets its threshold),
// checks that it belongs to the event's account (its first DID, or the
// did:key an upgraded account keeps as its key, named in alsoKnownAs of
// the genesis and signing it), checks rule 2 (identity.CheckAuthority) on
// the entries it does not hold yet, and keeps the log that
// identity.PreferLog puts first: a log that extends or beats the stored one
// is stored (a compare-and-swap on the stored version), a stale or losing
// one is ignored. A log that does not verify, or breaks rule 2, is refused
// (ErrRejected: quarantined); one whose new entries are not witnessed yet
// is ignored, the home sends it again once they are.
//
// The account's home is the issuer its current DID names
// (identity.IssuerOfWebVH). When a stored log moves the home away from
// this cloud, OnMovedAway is called; a replica follows the log to its new
// home. For an account with a DID log, account events are taken only from
// the cloud the log names as home (replicate.go): a stale event of a
// former home changes nothing.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

// DIDLogEvent is the type of the feed event that carries an account's
// did:webvh log.
const DIDLogEvent = "did.log"

// DIDLogData is the data of a did.log event.
type DIDLogData struct {
	SCID    string          `json:"scid"`
	Log     string          `json:"log"`               // did.jsonl
	Witness json.RawMessage `json:"witness,omitempty"` // did-witness.json
	Escrow  []byte          `json:"escrow,omitempty"`  // base64
}

// MaxEscrow bounds the escrow a did.log event carries (a sealed 32-byte
// secret takes about 60 bytes).
const MaxEscrow = 1024

// didLogCAS bounds the compare-and-swap attempts of storing one log.
const didLogCAS = 3

// didLogData is the data of a did.log event about account, from the log
// stored here; nil when there is none, or when the stored row is over the
// bounds receivers enforce (it is then logged, not served).
func (f *Federation) didLogData(ctx context.Context, account string) (*DIDLogData, error) {
	if account == "" {
		return nil, nil
	}
	l, err := f.Store.GetDIDLog(ctx, account)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lim := webvh.DefaultLimits
	if len(l.Log) > lim.MaxLogBytes || len(l.Witness) > lim.MaxWitnessBytes || len(l.Escrow) > MaxEscrow {
		f.log().WarnContext(ctx, "a DID log over the federation bounds is not served in the feed", "did", account, "scid", l.SCID,
			"log_bytes", len(l.Log), "witness_bytes", len(l.Witness), "escrow_bytes", len(l.Escrow))
		return nil, nil
	}
	d := &DIDLogData{SCID: l.SCID, Log: string(witnessedPrefix(l.Log, l.Witness, f.now)), Escrow: l.Escrow}
	if len(l.Witness) > 0 {
		if !json.Valid(l.Witness) {
			f.log().WarnContext(ctx, "the stored witness file of a DID log is not JSON; the log is served without it", "did", account, "scid", l.SCID)
		} else {
			d.Witness = json.RawMessage(l.Witness)
		}
	}
	return d, nil
}

// applyDIDLog applies a peer's did.log event (see the top of this file).
func (f *Federation) applyDIDLog(ctx context.Context, p *Peer, pl *Payload) error {
	if !pl.Shared || len(pl.Data) == 0 {
		return nil // not served: nothing to learn
	}
	if !strings.HasPrefix(pl.Account, "did:") {
		return fmt.Errorf("%w: did.log without an account DID", ErrRejected)
	}
	lim := webvh.DefaultLimits
	// The data is a log, a witness file, an escrow and their JSON quoting.
	if max := 2*(lim.MaxLogBytes+lim.MaxWitnessBytes) + 4*MaxEscrow; len(pl.Data) > max {
		return fmt.Errorf("%w: did.log data of %d bytes, over %d", ErrRejected, len(pl.Data), max)
	}
	var d DIDLogData
	if err := json.Unmarshal(pl.Data, &d); err != nil {
		return fmt.Errorf("%w: did.log data: %v", ErrRejected, err)
	}
	switch {
	case len(d.Log) > lim.MaxLogBytes:
		return fmt.Errorf("%w: did.log: a log of %d bytes, over %d", ErrRejected, len(d.Log), lim.MaxLogBytes)
	case len(d.Witness) > lim.MaxWitnessBytes:
		return fmt.Errorf("%w: did.log: a witness file of %d bytes, over %d", ErrRejected, len(d.Witness), lim.MaxWitnessBytes)
	case len(d.Escrow) > MaxEscrow:
		return fmt.Errorf("%w: did.log: an escrow of %d bytes, over %d", ErrRejected, len(d.Escrow), MaxEscrow)
	}
	opts := webvh.Options{Now: f.now}
	var witness []byte
	if len(d.Witness) > 0 && string(d.Witness) != "null" {
		witness = []byte(d.Witness)
		opts.Witness = func() ([]byte, error) { return witness, nil }
	}
	res, err := webvh.Verify([]byte(d.Log), opts)
	if errors.Is(err, webvh.ErrWitness) {
		// Not witnessed yet: the home sends it again once it is.
		f.log().InfoContext(ctx, "ignored a DID log whose new entries are not witnessed yet", "peer", p.Issuer, "seq", pl.Seq, "did", pl.Account, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: did.log: the log does not verify: %v", ErrRejected, err)
	}
	if !res.Metadata.Witnessed {
		f.log().InfoContext(ctx, "ignored a DID log that is not witnessed", "peer", p.Issuer, "seq", pl.Seq, "did", pl.Account)
		return nil
	}
	scid := res.Metadata.SCID
	if d.SCID != scid {
		return fmt.Errorf("%w: did.log names SCID %.64q, its log is %s", ErrRejected, d.SCID, scid)
	}
	if err := f.checkLogAccount(ctx, pl.Account, res); err != nil {
		return err
	}
	home, name, err := identity.IssuerOfWebVH(res.DID)
	if err != nil {
		return fmt.Errorf("%w: did.log: the log's DID names no issuer: %v", ErrRejected, err)
	}
	for range didLogCAS {
		stored, err := f.Store.GetDIDLogBySCID(ctx, scid)
		if errors.Is(err, store.ErrNotFound) {
			stored, err = nil, nil
		}
		if err != nil {
			return err
		}
		var old *webvh.Result
		prev := 0
		if stored != nil {
			if stored.DID != pl.Account {
				return fmt.Errorf("%w: did.log: SCID %s is the log of account %s here, not of %s", ErrRejected, scid, stored.DID, pl.Account)
			}
			prev = stored.Version
			if ol, err := webvh.Open(stored.Log, webvh.Options{Now: f.now}); err != nil {
				f.log().WarnContext(ctx, "the stored DID log no longer verifies; a peer's log replaces it", "did", pl.Account, "scid", scid, "err", err)
			} else {
				old = ol.Result()
			}
		} else if other, err := f.Store.GetDIDLog(ctx, pl.Account); err == nil {
			return fmt.Errorf("%w: did.log: account %s has the log %s here, not %s", ErrRejected, pl.Account, other.SCID, scid)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := identity.CheckAuthority(res, commonEntries(old, res)); err != nil {
			return fmt.Errorf("%w: did.log: %v", ErrRejected, err)
		}
		if old != nil {
			if c := identity.PreferLog(res, old); c <= 0 {
				what := "a stale"
				if c < 0 && commonEntries(old, res) < len(res.Entries) {
					what = "a losing fork of the"
				} else if c == 0 {
					what = "the same"
				}
				f.log().InfoContext(ctx, "ignored "+what+" DID log", "peer", p.Issuer, "seq", pl.Seq, "did", pl.Account,
					"version", res.Metadata.VersionNumber, "stored_version", stored.Version)
				return nil
			}
		}
		l := &identity.DIDLog{DID: pl.Account, SCID: scid, CurrentDID: res.DID, Name: name, HomeIssuer: home,
			Log: []byte(d.Log), Witness: witness, Escrow: d.Escrow, Version: res.Metadata.VersionNumber, UpdatedAt: f.now()}
		if len(l.Escrow) == 0 && stored != nil {
			l.Escrow = stored.Escrow // an escrow is replaced, never dropped by omission
		}
		ok, err := f.Store.PutDIDLog(ctx, l, prev)
		if err != nil {
			return err
		}
		if !ok {
			continue // stored meanwhile: compare again
		}
		prevHome := ""
		if stored != nil {
			prevHome = stored.HomeIssuer
		}
		f.log().InfoContext(ctx, "stored a peer's DID log", "peer", p.Issuer, "did", pl.Account, "scid", scid,
			"version", l.Version, "home", home)
		if home != prevHome {
			return f.followHome(ctx, pl.Account, home)
		}
		return nil
	}
	return fmt.Errorf("the DID log %s kept changing while a peer's was stored", scid)
}

// commonEntries is how many first entries two logs share; 0 when old is nil.
func commonEntries(old, res *webvh.Result) int {
	if old == nil {
		return 0
	}
	n := 0
	for n < len(old.Entries) && n < len(res.Entries) && old.Entries[n].VersionID == res.Entries[n].VersionID {
		n++
	}
	return n
}

// checkLogAccount checks that res is the log of account: its genesis DID
// is the account's (a did:webvh account), or the genesis names the
// account's did:key in alsoKnownAs, has it as its first update key and is
// signed by it (a did:key account upgraded), or the genesis DID is
// already an account DID of it here.
func (f *Federation) checkLogAccount(ctx context.Context, account string, res *webvh.Result) error {
	g := res.Entries[0]
	if g.DID == account {
		return nil
	}
	if strings.HasPrefix(account, "did:key:") && len(g.UpdateKeys) > 0 && "did:key:"+g.UpdateKeys[0] == account &&
		slices.Contains(g.Signers, g.UpdateKeys[0]) {
		var doc struct {
			AlsoKnownAs []string `json:"alsoKnownAs"`
		}
		if json.Unmarshal(g.State, &doc) == nil && slices.Contains(doc.AlsoKnownAs, account) {
			return nil
		}
	}
	acct, err := f.Store.AccountForDID(ctx, g.DID)
	switch {
	case err == nil && acct == account:
		return nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	return fmt.Errorf("%w: did.log: the log of %s is not the log of account %s", ErrRejected, g.DID, account)
}

// followHome acts on a stored log that names home as the account's home:
// an account homed here until now has moved away (OnMovedAway); a replica
// follows it.
func (f *Federation) followHome(ctx context.Context, account, home string) error {
	cur, err := f.Store.GetAccount(ctx, account)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case cur.Status == identity.StatusDeleted || cur.Status == identity.StatusMoved:
		return nil
	case cur.HomeIssuer == f.Issuer:
		if home == f.Issuer {
			return nil
		}
		f.log().InfoContext(ctx, "an account homed here has moved: its DID log names another home", "did", account, "home", home)
		if f.OnMovedAway == nil {
			return nil
		}
		return f.OnMovedAway(ctx, account, home)
	case home == f.Issuer, cur.HomeIssuer == home:
		return nil // a move here arrives by import
	}
	a := *cur
	a.HomeIssuer, a.Handle = home, replicaHandle(bareHandle(cur.Handle), home)
	f.log().InfoContext(ctx, "a replica follows its DID log to a new home", "did", account, "from", cur.HomeIssuer, "home", home)
	return f.putReplicaAccount(ctx, &a)
}

// logHome returns the home the stored DID log of account names; false
// when the account has no DID log here (a did:key account).
func (f *Federation) logHome(ctx context.Context, account string) (string, bool, error) {
	l, err := f.Store.GetDIDLog(ctx, account)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return l.HomeIssuer, true, nil
}

// witnessedPrefix returns the longest prefix of log that verifies with its
// witness threshold met: the home may hold a last entry whose witnesses have
// not all answered yet (its worker retries it), and peers take only
// witnessed logs, so what it announces is the history the commons already
// witnessed. A log that does not verify at all is returned as it is (the
// peer refuses it with the verifier's reason).
func witnessedPrefix(log, witness []byte, now func() time.Time) []byte {
	wf := func() ([]byte, error) { return witness, nil }
	cut := bytes.TrimRight(log, "\n")
	for range 64 {
		res, err := webvh.Verify(cut, webvh.Options{Witness: wf, Now: now})
		if err == nil && res.Metadata.Witnessed {
			if len(cut) == len(bytes.TrimRight(log, "\n")) {
				return log
			}
			return append(append([]byte(nil), cut...), '\n')
		}
		i := bytes.LastIndexByte(cut, '\n')
		if i < 0 {
			break
		}
		cut = cut[:i]
	}
	return log
}
