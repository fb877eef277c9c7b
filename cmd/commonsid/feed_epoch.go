package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// The feed epoch (federation/epoch.go) is made at the cloud's first start
// and anew when its database may have gone back in time: restored from a
// backup, its event log numbers events again from where the backup ended,
// and peers would skip them up to their cursors.
//
// Restore detection: the data folder keeps feed-mark.json, the epoch and
// the highest sequence number this cloud has served, written atomically
// every second while serving and at shutdown. At start, when the
// database's epoch is the mark's and its head is below the mark's, or when
// the mark names an epoch the database never had, the database was
// restored: a new epoch is made and logged as an error. A restore that
// brings the data folder back too (SQLite, where the database lives in
// it) is invisible to the mark: the operator runs `commonsid feed
// new-epoch` before serving (docs/operations.md).

// feedMarkFile is the restore mark in the data folder.
const feedMarkFile = "feed-mark.json"

// feedMark is what the data folder remembers of the feed.
type feedMark struct {
	Epoch string    `json:"epoch"`
	Head  int64     `json:"head"`
	At    time.Time `json:"at"`
}

func newFeedEpoch() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// readFeedMark reads the mark; nil when there is none.
func readFeedMark(dir string) (*feedMark, error) {
	raw, err := os.ReadFile(filepath.Join(dir, feedMarkFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m feedMark
	if err := json.Unmarshal(raw, &m); err != nil || m.Epoch == "" || m.Head < 0 {
		return nil, fmt.Errorf("%s is not a feed mark", feedMarkFile)
	}
	return &m, nil
}

// writeFeedMark replaces the mark atomically: a crash leaves the old one
// or the new one, never a torn file.
func writeFeedMark(dir string, m *feedMark) error {
	raw, _ := json.Marshal(m)
	f, err := os.CreateTemp(dir, ".feed-mark-*")
	if err != nil {
		return fmt.Errorf("feed mark: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(raw, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, feedMarkFile))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("feed mark: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// restoreReason says why a database whose epoch is epoch (having had the
// epochs known) and whose head is head was restored behind the data
// folder's mark m; "" when it was not.
func restoreReason(m *feedMark, epoch string, head int64, known []string) string {
	switch {
	case m == nil:
		return ""
	case m.Epoch == epoch && head < m.Head:
		return fmt.Sprintf("the database's event log ends at %d, below the %d this data folder saw served in epoch %s", head, m.Head, epoch)
	case m.Epoch != epoch && !slices.Contains(known, m.Epoch):
		return fmt.Sprintf("this data folder last served feed epoch %s, which the database never had", m.Epoch)
	}
	return ""
}

// startFeedEpoch makes the feed epoch at the first start, and a new one
// when the database was restored behind the data folder's mark; it
// returns the epoch in force and writes the mark.
func startFeedEpoch(ctx context.Context, cl *cloud) (string, error) {
	epoch, made, err := cl.db.EnsureFeedEpoch(ctx, newFeedEpoch())
	if err != nil {
		return "", err
	}
	head, err := cl.db.FeedHead(ctx)
	if err != nil {
		return "", err
	}
	if made {
		cl.log.Info("feed epoch made", "epoch", epoch, "head", head)
	}
	if !cl.cfg.needsDataDir() {
		cl.log.Info("restore detection by the data folder is off (no data folder is used): after restoring the database, run 'commonsid feed new-epoch' before serve", "epoch", epoch)
		return epoch, nil
	}
	dir := cl.cfg.DataDir
	m, err := readFeedMark(dir)
	if err != nil {
		cl.log.Warn("the feed mark cannot be read; it is written anew", "path", filepath.Join(dir, feedMarkFile), "err", err)
	}
	known, err := cl.db.FeedEpochs(ctx)
	if err != nil {
		return "", err
	}
	if reason := restoreReason(m, epoch, head, known); reason != "" {
		was := epoch
		if !made {
			if epoch, err = cl.db.RotateFeedEpoch(ctx, was, newFeedEpoch()); err != nil {
				return "", err
			}
		}
		cl.log.Error("RESTORED DATABASE DETECTED: this cloud's feed starts a new epoch, and every peer replays it from the start",
			"reason", reason, "epoch_was", was, "epoch", epoch, "head", head, "mark_head", m.Head, "mark_at", m.At)
	}
	if err := writeFeedMark(dir, &feedMark{Epoch: epoch, Head: head, At: time.Now().UTC()}); err != nil {
		return "", err
	}
	return epoch, nil
}

// markFeed keeps the data folder's mark up to date every second while
// serving, and once more when ctx ends.
func markFeed(ctx context.Context, cl *cloud) {
	if !cl.cfg.needsDataDir() {
		return
	}
	dir := cl.cfg.DataDir
	last, _ := readFeedMark(dir)
	update := func(ctx context.Context) {
		epoch, err := cl.db.FeedEpoch(ctx)
		if err != nil || epoch == "" {
			return
		}
		head, err := cl.db.FeedHead(ctx)
		if err != nil {
			return
		}
		if last != nil && last.Epoch == epoch {
			if head <= last.Head {
				return // the mark only goes up within an epoch
			}
		}
		m := &feedMark{Epoch: epoch, Head: head, At: time.Now().UTC()}
		if err := writeFeedMark(dir, m); err != nil {
			cl.log.Warn("feed mark", "err", err)
			return
		}
		last = m
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			update(sctx)
			cancel()
			return
		case <-t.C:
			update(ctx)
		}
	}
}

const feedUsage = `usage: commonsid feed status [--json] | new-epoch
  status     this cloud's feed epoch and head, and the data folder's restore mark
  new-epoch  start a new feed epoch: every peer replays this cloud's feed from
             the start and drops what the replay does not mention. Run it
             after restoring the database from a backup when the restore
             brought the data folder (feed-mark.json) back too, before serve`

type feedStatusJSON struct {
	Epoch  string    `json:"epoch"`
	Head   int64     `json:"head"`
	Epochs []string  `json:"epochs"`
	Mark   *feedMark `json:"mark,omitempty"`
}

// runFeed runs feed status and feed new-epoch.
func runFeed(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usagef(feedUsage)
	}
	sub, args := args[0], args[1:]
	var asJSON bool
	var extra func(*flag.FlagSet)
	switch sub {
	case "-h", "--help", "help":
		fmt.Fprintln(c.stdout, feedUsage)
		return nil
	case "status":
		extra = func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON") }
	case "new-epoch":
	default:
		return usagef("unknown feed command %q; %s", sub, feedUsage)
	}
	// Both need an existing cloud: a mistyped --data makes none.
	cl, fs, err := openForReading(ctx, c, "feed "+sub, args, extra)
	if err != nil {
		return err
	}
	defer cl.Close()
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	head, err := cl.db.FeedHead(ctx)
	if err != nil {
		return err
	}
	if sub == "new-epoch" {
		was, err := cl.db.FeedEpoch(ctx)
		if err != nil {
			return err
		}
		epoch, err := cl.db.RotateFeedEpoch(ctx, was, newFeedEpoch())
		if err != nil {
			return err
		}
		if cl.cfg.needsDataDir() {
			if err := writeFeedMark(cl.cfg.DataDir, &feedMark{Epoch: epoch, Head: head, At: time.Now().UTC()}); err != nil {
				return err
			}
		}
		cl.log.Warn("new feed epoch: every peer replays this cloud's feed from the start", "epoch_was", was, "epoch", epoch, "head", head)
		if was == "" {
			was = "none"
		}
		fmt.Fprintf(c.stdout, "feed epoch %s (was %s), head %d: every peer replays this cloud's feed from the start at its next page\n", epoch, was, head)
		return nil
	}
	st := feedStatusJSON{Head: head}
	if st.Epoch, err = cl.db.FeedEpoch(ctx); err != nil {
		return err
	}
	if st.Epochs, err = cl.db.FeedEpochs(ctx); err != nil {
		return err
	}
	if st.Epochs == nil {
		st.Epochs = []string{}
	}
	if cl.cfg.needsDataDir() {
		if st.Mark, err = readFeedMark(cl.cfg.DataDir); err != nil {
			return err
		}
	}
	if asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintln(c.stdout, string(b))
		return nil
	}
	epoch := st.Epoch
	if epoch == "" {
		epoch = "none yet (serve makes it)"
	}
	fmt.Fprintf(c.stdout, "epoch   %s\nhead    %d\nepochs  %d this database has had\n", epoch, head, len(st.Epochs))
	if st.Mark != nil {
		fmt.Fprintf(c.stdout, "mark    epoch %s, head %d, at %s (%s)\n", st.Mark.Epoch, st.Mark.Head, st.Mark.At.Format(time.RFC3339), filepath.Join(cl.cfg.DataDir, feedMarkFile))
	} else {
		fmt.Fprintln(c.stdout, "mark    none")
	}
	return nil
}

// peerFeedJSON is a peer's feed epoch and this cloud's resyncs with it,
// as peer list shows them.
type peerFeedJSON struct {
	Epoch      string     `json:"epoch,omitempty"`
	Resyncing  bool       `json:"resyncing,omitempty"`
	Resyncs    int        `json:"resyncs"`
	ResyncAt   *time.Time `json:"last_resync_at,omitempty"`
	ResyncDone *time.Time `json:"last_resync_done_at,omitempty"`
	Reason     string     `json:"last_resync_reason,omitempty"`
}

func peerFeed(ctx context.Context, cl *cloud, issuer string) (peerFeedJSON, error) {
	pe, err := cl.db.PeerEpoch(ctx, issuer)
	if err != nil {
		return peerFeedJSON{}, err
	}
	pf := peerFeedJSON{Epoch: pe.Epoch, Resyncing: pe.Resyncing, Resyncs: pe.Resyncs, Reason: pe.Reason}
	if !pe.ResyncAt.IsZero() {
		t := pe.ResyncAt
		pf.ResyncAt = &t
	}
	if !pe.DoneAt.IsZero() {
		t := pe.DoneAt
		pf.ResyncDone = &t
	}
	return pf, nil
}

func (pf peerFeedJSON) epochCell() string {
	switch {
	case pf.Epoch == "":
		return "-"
	case len(pf.Epoch) > 8:
		return pf.Epoch[:8] + "…"
	}
	return pf.Epoch
}

func (pf peerFeedJSON) resyncCell() string {
	if pf.ResyncAt == nil {
		return "-"
	}
	state := "done"
	if pf.Resyncing {
		state = "replaying"
	}
	return fmt.Sprintf("%s %s: %s", pf.ResyncAt.Format(time.RFC3339), state, pf.Reason)
}
