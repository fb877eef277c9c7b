package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/store"
)

const peerTrustUsage = `
  trust URL                 after checking with the peer's operator that it
                            changed its keys: fetch its discovery document, JWKS
                            and did:web document again, pin the keys it publishes
                            now, and retry its quarantined events`

// pendingKeyJSON is a key a peer publishes that no pinned key vouched for.
type pendingKeyJSON struct {
	KID       string    `json:"kid"`
	Reason    string    `json:"reason"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

func pendingKeys(ctx context.Context, cl *cloud, issuer string) ([]pendingKeyJSON, error) {
	ks, err := cl.db.ListPendingKeys(ctx, issuer)
	if err != nil {
		return nil, err
	}
	var out []pendingKeyJSON
	for _, k := range ks {
		out = append(out, pendingKeyJSON{KID: k.KID, Reason: k.Reason, FirstSeen: k.FirstSeen, LastSeen: k.LastSeen})
	}
	return out, nil
}

// printPendingKeys lists, under the peer table, the keys peers publish
// that are not trusted here.
func printPendingKeys(w io.Writer, peers []peerJSON) {
	n := 0
	for _, p := range peers {
		n += len(p.PendingKeys)
	}
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "\nUntrusted keys: what peers sign with them is refused. Check with the peer's operator, then run: commonsid peer trust URL")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tKID\tFIRST SEEN\tREASON")
	for _, p := range peers {
		for _, k := range p.PendingKeys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Issuer, k.KID, k.FirstSeen.Format(time.RFC3339), k.Reason)
		}
	}
	tw.Flush()
}

// runPeerTrust runs peer trust URL.
func runPeerTrust(ctx context.Context, c *cli, args []string) error {
	cl, fs, err := openForCommand(ctx, c, "peer trust", args, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	if fs.NArg() != 1 {
		return usagef("usage: commonsid peer trust URL")
	}
	iss, err := federation.NormalizeIssuer(fs.Arg(0))
	if err != nil {
		return usagef("%v", err)
	}
	fed := cl.federation()
	ch, err := fed.TrustPeer(ctx, iss)
	if errors.Is(err, federation.ErrNotPeer) {
		return fmt.Errorf("%s is not a peer of this cloud; add it with: commonsid peer add %s", iss, iss)
	}
	if err != nil {
		return fmt.Errorf("peer trust %s: %w (nothing was changed)", iss, err)
	}
	added, removed := diffKIDs(ch.Old, ch.New)
	if len(added)+len(removed) == 0 {
		fmt.Fprintf(c.stdout, "peer %s: keys unchanged (%s)\n", iss, strings.Join(ch.New, ", "))
	} else {
		fmt.Fprintf(c.stdout, "peer %s: keys checked against its DID document and pinned\n", iss)
		fmt.Fprintf(c.stdout, "  before:  %s\n  now:     %s\n", strings.Join(ch.Old, ", "), strings.Join(ch.New, ", "))
		if len(added) > 0 {
			fmt.Fprintf(c.stdout, "  added:   %s\n", strings.Join(added, ", "))
		}
		if len(removed) > 0 {
			fmt.Fprintf(c.stdout, "  removed: %s\n", strings.Join(removed, ", "))
		}
	}
	for _, k := range ch.Pending {
		state := "now trusted"
		if !slices.Contains(ch.New, k.KID) {
			state = "no longer published; forgotten"
		}
		fmt.Fprintf(c.stdout, "  untrusted key %s (first seen %s): %s\n", k.KID, k.FirstSeen.Format(time.RFC3339), state)
	}
	// A running server may apply some of them meanwhile (its follower
	// reads the new keys too): what it took is gone, the rest is retried.
	res, err := fed.RetryQuarantined(ctx, ch.Peer, 0)
	for i := 0; i < 3 && errors.Is(err, store.ErrNotFound); i++ {
		var more *federation.RetryResult
		more, err = fed.RetryQuarantined(ctx, ch.Peer, 0)
		if more != nil {
			res.Applied, res.Failed = append(res.Applied, more.Applied...), more.Failed
		}
	}
	if res != nil {
		fmt.Fprintf(c.stdout, "quarantined events of %s: %d applied, %d still quarantined\n", iss, len(res.Applied), len(res.Failed))
	}
	if err != nil {
		return fmt.Errorf("retry the quarantined events of %s: %w (the keys are pinned; run: commonsid peer retry %s --all)", iss, err, iss)
	}
	if len(res.Failed) > 0 {
		return fmt.Errorf("%d events of %s still fail; see: commonsid peer rejected %s", len(res.Failed), iss, iss)
	}
	return nil
}

// diffKIDs returns the kids in now and not in before, and the reverse.
func diffKIDs(before, now []string) (added, removed []string) {
	for _, k := range now {
		if !slices.Contains(before, k) {
			added = append(added, k)
		}
	}
	for _, k := range before {
		if !slices.Contains(now, k) {
			removed = append(removed, k)
		}
	}
	return added, removed
}
