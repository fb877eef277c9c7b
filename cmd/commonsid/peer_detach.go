package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/privacy"
)

// Detaching the families a removed peer introduced.
//
// A fork registered here of a peer's service (forked_from ISSUER#ID) joined
// the family the peer announced, and a person who carried their account
// over has the family's sub there. Once the peer is removed nothing here
// vouches for that family any more, so `peer remove` detaches:
//
//   - every service of this cloud whose family root is on the peer
//     (x_family_root ISSUER#…), or that was registered as a fork of one of
//     the peer's services (forked_from ISSUER#…), or is a fork of a
//     service detached so, loses its family root and family sector: it has
//     its own sector only, and its next announcement says so;
//   - every consent to such a service whose sub was computed for the
//     family sector is revoked, with its tokens (the person is asked again
//     at the next sign-in and gets the service's own sub), and the person's
//     activity log records it.

// detachedFork is one service taken out of a peer's family.
type detachedFork struct {
	ClientID     string
	FamilySector string
	Consents     int
}

// detachPeerFamilies detaches the forks of this cloud that joined a family
// through peer issuer.
func detachPeerFamilies(ctx context.Context, cl *cloud, issuer string) ([]detachedFork, error) {
	clients, err := cl.db.ListClients(ctx)
	if err != nil {
		return nil, err
	}
	type fork struct{ forkedFrom, root, sector string }
	forks := map[string]fork{}
	for _, sc := range clients {
		from, root, sector, err := oidc.ForkFields(sc.Metadata)
		if err != nil || (from == "" && root == "") {
			continue
		}
		forks[sc.ClientID] = fork{from, root, sector}
	}
	prefix := issuer + "#"
	detach := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for id, f := range forks {
			if detach[id] || f.root == "" {
				continue
			}
			if strings.HasPrefix(f.root, prefix) || strings.HasPrefix(f.forkedFrom, prefix) || detach[f.forkedFrom] {
				detach[id], changed = true, true
			}
		}
	}
	ps := &privacy.Service{Store: cl.db, Grants: cl.db, Now: time.Now}
	var out []detachedFork
	for _, sc := range clients {
		if !detach[sc.ClientID] {
			continue
		}
		d := detachedFork{ClientID: sc.ClientID, FamilySector: forks[sc.ClientID].sector}
		err := cl.db.InTx(ctx, func(ctx context.Context) error {
			md, err := oidc.DetachedMetadata(sc.Metadata)
			if err != nil {
				return err
			}
			now := time.Now().UTC()
			sc.Metadata, sc.UpdatedAt = md, now
			if err := cl.db.UpdateClient(ctx, sc); err != nil {
				return err
			}
			// Peers learn of the change from the next announcement.
			if err := cl.db.AppendEvent(ctx, "service.forked", "", now, map[string]any{"client_id": sc.ClientID}); err != nil {
				return err
			}
			if d.FamilySector == "" {
				return nil
			}
			cs, err := cl.db.ConsentsWithSector(ctx, sc.ClientID, d.FamilySector)
			if err != nil {
				return err
			}
			for _, c := range cs {
				if err := ps.Revoke(ctx, c.AccountDID, c.ClientID, privacy.ActivityMeta{}); err != nil && !errors.Is(err, privacy.ErrNoConsent) {
					return err
				}
				d.Consents++
			}
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("detach %s from the family of peer %s: %w", sc.ClientID, issuer, err)
		}
		cl.log.Warn("service detached from a removed peer's family", "client_id", d.ClientID, "peer", issuer, "consents_reset", d.Consents)
		out = append(out, d)
	}
	return out, nil
}

// printDetached detaches the peer's families and says what changed.
func printDetached(ctx context.Context, c *cli, cl *cloud, issuer string) error {
	ds, err := detachPeerFamilies(ctx, cl, issuer)
	for _, d := range ds {
		fmt.Fprintf(c.stdout, "service %s detached from the family it joined through %s; %d consents reset (those people are asked again)\n",
			d.ClientID, issuer, d.Consents)
	}
	return err
}
