package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/onecommons/commonsid/federation"
)

const peerQuarantineUsage = `  rejected [URL] [--json]   the peer events held in quarantine (refused, or held
                            behind a refused event of the same account)
  retry URL SEQ|--all       re-apply quarantined events after a fix; those that
                            still fail stay, with one more attempt counted
  drop URL SEQ              discard a quarantined event (the events of its
                            account held behind it are then retried)`

type quarantinedJSON struct {
	Peer      string    `json:"peer"`
	Seq       int64     `json:"seq"`
	Type      string    `json:"type"`
	Account   string    `json:"account,omitempty"`
	Reason    string    `json:"reason"`
	HeldBy    int64     `json:"held_by,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Attempts  int       `json:"attempts"`
}

// runPeerQuarantine runs peer rejected, retry and drop.
func runPeerQuarantine(ctx context.Context, c *cli, sub string, args []string) error {
	var asJSON, all bool
	extra := func(fs *flag.FlagSet) {}
	switch sub {
	case "rejected":
		extra = func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON") }
	case "retry":
		extra = func(fs *flag.FlagSet) { fs.BoolVar(&all, "all", false, "retry every quarantined event of the peer") }
	}
	open := openForCommand
	if sub == "rejected" {
		open = openForReading
	}
	cl, fs, err := open(ctx, c, "peer "+sub, args, extra)
	if err != nil {
		return err
	}
	defer cl.Close()
	fed := cl.federation()
	peerArg := func() (*federation.Peer, error) {
		iss, err := federation.NormalizeIssuer(fs.Arg(0))
		if err != nil {
			return nil, usagef("%v", err)
		}
		p, err := cl.db.GetPeer(ctx, iss)
		if isNotFound(err) {
			return nil, fmt.Errorf("%s is not a peer", iss)
		}
		return p, err
	}
	seqArg := func(s string) (int64, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return 0, usagef("sequence number %q: a positive integer expected", s)
		}
		return n, nil
	}
	switch sub {
	case "rejected":
		if fs.NArg() > 1 {
			return usagef("usage: commonsid peer rejected [URL] [--json]")
		}
		issuer := ""
		if fs.NArg() == 1 {
			p, err := peerArg()
			if err != nil {
				return err
			}
			issuer = p.Issuer
		}
		qs, err := cl.db.ListQuarantined(ctx, issuer, federation.DefaultMaxQuarantine*100)
		if err != nil {
			return err
		}
		out := []quarantinedJSON{}
		for _, q := range qs {
			out = append(out, quarantinedJSON{Peer: q.Peer, Seq: q.Seq, Type: q.Type, Account: q.AccountDID, Reason: q.Reason,
				HeldBy: q.HeldBy, FirstSeen: q.FirstSeen, LastSeen: q.LastSeen, Attempts: q.Attempts})
		}
		if asJSON {
			b, _ := json.MarshalIndent(out, "", "  ")
			fmt.Fprintln(c.stdout, string(b))
			return nil
		}
		if len(out) == 0 {
			fmt.Fprintln(c.stdout, "no quarantined peer events")
			return nil
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PEER\tSEQ\tTYPE\tACCOUNT\tLAST SEEN\tATTEMPTS\tREASON")
		for _, q := range out {
			typ, acct := q.Type, q.Account
			if typ == "" {
				typ = "-"
			}
			if acct == "" {
				acct = "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\n", q.Peer, q.Seq, typ, acct, q.LastSeen.Format(time.RFC3339), q.Attempts, q.Reason)
		}
		return tw.Flush()
	case "retry":
		if fs.NArg() < 1 || fs.NArg() > 2 || (fs.NArg() == 2) == all {
			return usagef("usage: commonsid peer retry URL SEQ|--all")
		}
		p, err := peerArg()
		if err != nil {
			return err
		}
		var seq int64
		if !all {
			if seq, err = seqArg(fs.Arg(1)); err != nil {
				return err
			}
		}
		res, err := fed.RetryQuarantined(ctx, p, seq)
		if errors.Is(err, federation.ErrNotQuarantined) {
			return fmt.Errorf("event %d of %s is not in quarantine; see: commonsid peer rejected %s", seq, p.Issuer, p.Issuer)
		}
		if res != nil {
			fmt.Fprintf(c.stdout, "%d applied, %d still quarantined\n", len(res.Applied), len(res.Failed))
		}
		if err != nil {
			return err
		}
		if len(res.Failed) > 0 {
			return fmt.Errorf("%d events of %s still fail; see: commonsid peer rejected %s", len(res.Failed), p.Issuer, p.Issuer)
		}
		return nil
	case "drop":
		if fs.NArg() != 2 {
			return usagef("usage: commonsid peer drop URL SEQ")
		}
		p, err := peerArg()
		if err != nil {
			return err
		}
		seq, err := seqArg(fs.Arg(1))
		if err != nil {
			return err
		}
		res, err := fed.DropQuarantined(ctx, p, seq)
		if errors.Is(err, federation.ErrNotQuarantined) {
			return fmt.Errorf("event %d of %s is not in quarantine; see: commonsid peer rejected %s", seq, p.Issuer, p.Issuer)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "event %d of %s dropped", seq, p.Issuer)
		if n := len(res.Applied) + len(res.Failed); n > 0 {
			fmt.Fprintf(c.stdout, "; of the %d events of its account held behind it, %d applied", n, len(res.Applied))
		}
		fmt.Fprintln(c.stdout)
		return nil
	}
	return usagef("unknown peer command %q", sub)
}
