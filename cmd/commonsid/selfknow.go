package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/onecommons/commonsid/federation"
)

// addPeer is `peer add`: it refuses this cloud itself, named by its
// issuer, its DID or another URL that serves this cloud's keys, since a
// cloud that follows its own feed would replicate its accounts onto
// themselves. It needs the issuer to be known, because the other cloud
// must be told which URL to add in return.
func addPeer(ctx context.Context, cl *cloud, fed *federation.Federation, arg, endpoint string) (*federation.Peer, error) {
	if err := cl.needIssuer("peer add"); err != nil {
		return nil, err
	}
	arg = strings.TrimSpace(arg)
	if strings.HasPrefix(arg, "did:") {
		if arg == fed.DID {
			return nil, fmt.Errorf("%s is this cloud's own DID: a cloud does not peer with itself", arg)
		}
		return nil, usagef("peer add takes the other cloud's issuer URL (such as https://id.example.org), not a DID")
	}
	iss, err := federation.NormalizeIssuer(arg)
	if err != nil {
		return nil, err
	}
	if iss == cl.cfg.Issuer {
		return nil, fmt.Errorf("%s is this cloud's own issuer: a cloud does not peer with itself", iss)
	}
	p, err := fed.Discover(ctx, iss)
	if err != nil {
		return nil, err
	}
	if p.DID == fed.DID {
		return nil, fmt.Errorf("%s is this cloud's own DID: a cloud does not peer with itself", p.DID)
	}
	own, err := cl.keys.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range own {
		if len(p.JWKS.Key(k.KID)) > 0 {
			return nil, fmt.Errorf("%s publishes this cloud's own signing key %s: it is this cloud under another name (%s), and a cloud does not peer with itself", iss, k.KID, cl.cfg.Issuer)
		}
	}
	return fed.AddPeer(ctx, iss, endpoint)
}
