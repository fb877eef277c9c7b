package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/oidc"
)

const peerUsage = `usage: commonsid peer add URL [--endpoint URL] | list | remove URL
  add     fetch the cloud's discovery and did:web documents, pin its keys and
          record it as a peer (the other cloud must add this one too)
  list    the peers, with replication state
  remove  stop federating with a cloud and drop what was replicated from it;
          forks here that joined a family through it are detached
` + peerQuarantineUsage + peerTrustUsage

// federation builds this cloud's federation service.
func (cl *cloud) federation() *federation.Federation {
	cloudDID, _ := did.WebDID(cl.cfg.Issuer)
	f := &federation.Federation{Issuer: cl.cfg.Issuer, DID: cloudDID, Store: cl.db, Keys: cl.keys, Accounts: cl.accounts,
		HTTP: cl.cfg.Outbound(cl.log).Streaming(), Log: cl.log, Access: cl.db}
	f.Resolver = withWebVHFallback(cl.cfg.Outbound(cl.log).resolver, f)
	return f
}

// remoteService finds a peer's service (for forks across clouds).
func (cl *cloud) remoteService(ctx context.Context, issuer, clientID string) (*oidc.RemoteService, error) {
	raw, err := cl.db.RemoteService(ctx, issuer, clientID)
	if err != nil {
		return nil, err
	}
	return oidc.ParseRemoteService(issuer, raw)
}

type peerJSON struct {
	Issuer      string     `json:"issuer"`
	DID         string     `json:"did"`
	JWKSURI     string     `json:"jwks_uri"`
	Endpoint    string     `json:"endpoint,omitempty"`
	Keys        []string   `json:"keys"`
	Cursor      int64      `json:"cursor"`
	AddedAt     time.Time  `json:"added_at"`
	LastEventAt *time.Time `json:"last_event_at,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	Rejected    int        `json:"rejected_events"`
	Quarantined int        `json:"quarantined_events"`
	// QuarantineDropped counts quarantined events dropped over the bound.
	QuarantineDropped int64 `json:"quarantine_dropped,omitempty"`
	// Feed is the peer's feed epoch and this cloud's resyncs with it.
	Feed peerFeedJSON `json:"feed"`
	// PendingKeys are keys the peer publishes that are not trusted here.
	PendingKeys []pendingKeyJSON `json:"pending_keys,omitempty"`
}

func runPeer(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usagef(peerUsage)
	}
	sub, args := args[0], args[1:]
	var (
		endpoint string
		asJSON   bool
		extra    func(*flag.FlagSet)
	)
	switch sub {
	case "-h", "--help", "help":
		fmt.Fprintln(c.stdout, peerUsage)
		return nil
	case "rejected", "retry", "drop":
		return runPeerQuarantine(ctx, c, sub, args)
	case "trust":
		return runPeerTrust(ctx, c, args)
	case "add":
		extra = func(fs *flag.FlagSet) {
			fs.StringVar(&endpoint, "endpoint", "", "base URL to fetch the peer's feed from, when not its issuer (an internal address or gateway)")
		}
	case "list":
		extra = func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON") }
	case "remove":
	default:
		return usagef("unknown peer command %q; %s", sub, peerUsage)
	}
	open := openForCommand
	if sub == "list" {
		open = openForReading
	}
	cl, fs, err := open(ctx, c, "peer "+sub, args, extra)
	if err != nil {
		return err
	}
	defer cl.Close()
	fed := cl.federation()
	switch sub {
	case "add":
		if fs.NArg() != 1 {
			return usagef("usage: commonsid peer add URL [--endpoint URL]")
		}
		p, err := addPeer(ctx, cl, fed, fs.Arg(0), endpoint)
		if err != nil {
			return err
		}
		// The peer signs people in here as an OpenID Connect client.
		if err := oidc.EnsurePeerClient(ctx, cl.db, p.Issuer, p.Issuer+federation.CallbackPath, p.JWKSURI, time.Now().UTC()); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "peer %s added (%s, %d keys pinned); it replicates from this cloud once it adds %s too\n",
			p.Issuer, p.DID, len(p.JWKS.Keys), cl.cfg.Issuer)
		return nil
	case "remove":
		if fs.NArg() != 1 {
			return usagef("usage: commonsid peer remove URL")
		}
		iss, err := federation.NormalizeIssuer(fs.Arg(0))
		if err != nil {
			return usagef("%v", err)
		}
		if _, err := cl.db.GetPeer(ctx, iss); err == nil {
			if err := printDetached(ctx, c, cl, iss); err != nil { // peer_detach.go
				return err
			}
		}
		if err := cl.db.DeletePeer(ctx, iss); err != nil {
			if isNotFound(err) {
				return fmt.Errorf("%s is not a peer", iss)
			}
			return err
		}
		if err := cl.db.DeleteClient(ctx, iss); err != nil && !isNotFound(err) {
			return err
		}
		fmt.Fprintf(c.stdout, "peer %s removed with its replicated accounts, revocations and services\n", iss)
		return nil
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	peers, err := cl.db.ListPeers(ctx)
	if err != nil {
		return err
	}
	out := []peerJSON{}
	for _, p := range peers {
		pj := peerJSON{Issuer: p.Issuer, DID: p.DID, JWKSURI: p.JWKSURI, Endpoint: p.Endpoint, Cursor: p.Cursor, AddedAt: p.AddedAt, LastError: p.LastError, Keys: []string{}}
		for _, k := range p.JWKS.Keys {
			pj.Keys = append(pj.Keys, k.KeyID)
		}
		if !p.LastEventAt.IsZero() {
			t := p.LastEventAt
			pj.LastEventAt = &t
		}
		rej, err := cl.db.ListRejected(ctx, p.Issuer, 1000)
		if err != nil {
			return err
		}
		pj.Rejected = len(rej)
		if pj.Quarantined, pj.QuarantineDropped, err = cl.db.QuarantineCount(ctx, p.Issuer); err != nil {
			return err
		}
		if pj.Feed, err = peerFeed(ctx, cl, p.Issuer); err != nil {
			return err
		}
		if pj.PendingKeys, err = pendingKeys(ctx, cl, p.Issuer); err != nil {
			return err
		}
		out = append(out, pj)
	}
	if asJSON {
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(c.stdout, string(b))
		return nil
	}
	if len(out) == 0 {
		fmt.Fprintln(c.stdout, "no peers; add one with: commonsid peer add URL")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ISSUER\tCURSOR\tLAST EVENT\tREJECTED\tQUARANTINED\tEPOCH\tLAST RESYNC\tLAST ERROR")
	for _, p := range out {
		last := "-"
		if p.LastEventAt != nil {
			last = p.LastEventAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\t%s\n", p.Issuer, p.Cursor, last, p.Rejected, p.Quarantined, p.Feed.epochCell(), p.Feed.resyncCell(), p.LastError)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printPendingKeys(c.stdout, out)
	return nil
}
