package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/oidfed"
)

// A commons over OpenID Federation 1.0 (package oidfed; operators' guide
// in docs/openid-federation.md).
//
// Every cloud publishes its entity configuration. A cloud is a trust
// anchor once it lists members (`commons add-member`): it then serves
// subordinate statements about them and issues them the "commons cloud"
// trust mark. A cloud that joined an anchor (`commons join`) names it in
// its authority_hints and, on every refresh, peers with every member the
// anchor lists whose trust chain verifies (and with the anchor itself when
// it is a Commons ID cloud), pinning the keys the chain states. A member
// whose chain fails definitively (the anchor answers that it is not a
// member, or its statements expired) or whose last verified chain has
// expired is removed as a peer; one that failed otherwise is kept until
// then. Peers added by hand are never touched.

const commonsUsage = `usage: commonsid commons join ANCHOR_URL | leave ANCHOR_URL | status [--json]
                        add-member URL | remove-member URL | members [--json]
  join           trust the commons of the anchor at ANCHOR_URL: its keys are pinned
                 now, this cloud names it as its authority, and it peers with every
                 member whose trust chain verifies (now and on every refresh)
  leave          stop naming the anchor; the peers trusted through it are removed
  status         the anchors joined and the peers trusted through them
  add-member     (as a trust anchor) vouch for the cloud at URL: its entity
                 configuration is fetched and its keys recorded
  remove-member  (as a trust anchor) stop vouching; the statements already issued
                 lapse within COMMONSID_OIDFED_STATEMENT_TTL (default 1h)
  members        (as a trust anchor) the clouds this cloud vouches for`

// Defaults of the commons refresh.
const (
	DefaultCommonsRefresh = 5 * time.Minute
)

// commonsTimes reads COMMONSID_OIDFED_STATEMENT_TTL and
// COMMONSID_OIDFED_REFRESH; the refresh is kept under a quarter of the
// statement lifetime so that a removed member lapses well within it.
func commonsTimes(env func(string) string) (ttl, refresh time.Duration) {
	ttl = envDuration(env, "COMMONSID_OIDFED_STATEMENT_TTL", oidfed.DefaultStatementTTL)
	if ttl < time.Second {
		ttl = oidfed.DefaultStatementTTL
	}
	refresh = envDuration(env, "COMMONSID_OIDFED_REFRESH", DefaultCommonsRefresh)
	if refresh <= 0 || refresh > ttl/4 {
		refresh = ttl / 4
	}
	return ttl, refresh
}

// federationKey is the key the cloud signs statements with: the oldest
// published signing key, so that after a rotation the configuration is
// still signed by the key superiors recorded, and carries the new one.
func federationKey(ctx context.Context, cl *cloud) (oidfed.SigningKey, error) {
	ss, err := cl.keys.PublishedSigners(ctx)
	if err != nil {
		return oidfed.SigningKey{}, err
	}
	if len(ss) == 0 {
		return oidfed.SigningKey{}, errors.New("no signing key: run serve once")
	}
	s := ss[len(ss)-1]
	return oidfed.SigningKey{KID: s.KID, Alg: jose.SignatureAlgorithm(s.Alg), Key: s.Key}, nil
}

// cloudEntity is this cloud as an OpenID Federation entity.
func cloudEntity(cl *cloud, discovery func() map[string]any, ttl time.Duration) *oidfed.Entity {
	return &oidfed.Entity{
		ID:  cl.cfg.Issuer,
		Key: func(ctx context.Context) (oidfed.SigningKey, error) { return federationKey(ctx, cl) },
		JWKS: func(ctx context.Context) (jose.JSONWebKeySet, error) {
			ks, err := cl.keys.Published(ctx)
			return jose.JSONWebKeySet{Keys: ks}, err
		},
		Metadata: func(ctx context.Context) (map[string]map[string]any, error) {
			m := map[string]map[string]any{oidfed.EntityFederation: {"homepage_uri": cl.cfg.Issuer}}
			if discovery != nil {
				m[oidfed.EntityOP] = discovery()
			}
			return m, nil
		},
		AuthorityHints: func(ctx context.Context) ([]string, error) {
			as, err := cl.db.ListAnchors(ctx)
			var out []string
			for _, a := range as {
				out = append(out, a.EntityID)
			}
			return out, err
		},
		TrustMarks: func(ctx context.Context) ([]oidfed.TrustMarkRef, error) {
			as, err := cl.db.ListAnchors(ctx)
			var out []oidfed.TrustMarkRef
			for _, a := range as {
				if a.TrustMark != "" {
					out = append(out, oidfed.TrustMarkRef{Type: oidfed.TrustMarkType(a.EntityID, oidfed.KindCommonsCloud), TrustMark: a.TrustMark})
				}
			}
			return out, err
		},
		Subordinates: cl.db,
		IsAuthority: func(ctx context.Context) bool {
			subs, err := cl.db.ListSubordinates(ctx)
			return err == nil && len(subs) > 0
		},
		// The configuration lives as long as the statements: a peer
		// trusted through it (an anchor that is a cloud too) lapses as
		// soon as a member would.
		StatementTTL: ttl,
		ConfigTTL:    ttl,
		Log:          cl.log,
	}
}

// commonsResolver resolves trust chains to the anchors this cloud joined
// and, when it lists members, to itself; fetches go through the guarded
// outbound client.
func commonsResolver(ctx context.Context, cl *cloud) (*oidfed.Resolver, []*oidfed.Anchor, bool, error) {
	anchors, err := cl.db.ListAnchors(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	subs, err := cl.db.ListSubordinates(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	r := &oidfed.Resolver{HTTP: cl.cfg.Outbound(cl.log).HTTPClient(), Anchors: oidfed.AnchorKeys(anchors)}
	authority := len(subs) > 0
	if authority {
		own, err := cl.keys.Published(ctx)
		if err != nil {
			return nil, nil, false, err
		}
		r.Anchors[cl.cfg.Issuer] = &jose.JSONWebKeySet{Keys: own}
	}
	return r, anchors, authority, nil
}

// syncResult is what one refresh did about one cloud.
type syncResult struct {
	Issuer string `json:"issuer"`
	Action string `json:"action"` // trusted, updated, kept, removed, refused, manual
	Detail string `json:"detail,omitempty"`
}

// syncCommons refreshes the anchors joined (their keys, the trust mark
// they issue this cloud, their member lists), the keys of this cloud's own
// members, and the peers trusted through the commons.
func syncCommons(ctx context.Context, cl *cloud, fed *federation.Federation, log *slog.Logger) ([]syncResult, error) {
	r, anchors, authority, err := commonsResolver(ctx, cl)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	candidates := map[string]bool{}
	joined := map[string]bool{}
	for _, a := range anchors {
		joined[a.EntityID] = true
		ec, err := r.FetchConfiguration(ctx, a.EntityID)
		if err == nil {
			// Its configuration must be signed by a key pinned here; the
			// keys it carries are pinned from then on (a rotation).
			_, err = oidfed.Verify([]byte(ec.Raw), &a.JWKS, now)
		}
		if err != nil {
			log.Warn("the trust anchor could not be refreshed; its members stay trusted until their chains expire", "anchor", a.EntityID, "err", err)
			continue
		}
		changed := false
		if !sameKeys(ec.JWKS, &a.JWKS) {
			a.JWKS, changed = *ec.JWKS, true
			r.Anchors[a.EntityID] = ec.JWKS
			log.Info("the trust anchor's keys changed, vouched by a pinned key", "anchor", a.EntityID, "kid", ec.KeyID())
		}
		tm, err := r.FetchTrustMark(ctx, ec, oidfed.TrustMarkType(a.EntityID, oidfed.KindCommonsCloud), cl.cfg.Issuer)
		switch {
		case err == nil && tm.Raw != a.TrustMark:
			a.TrustMark, changed = tm.Raw, true
		case errors.Is(err, oidfed.ErrNotSubordinate) && a.TrustMark != "":
			a.TrustMark, changed = "", true
		}
		if changed {
			if err := cl.db.PutAnchor(ctx, a); err != nil {
				return nil, err
			}
		}
		ids, err := r.ListSubordinates(ctx, ec)
		if err != nil {
			log.Warn("the trust anchor's member list could not be read", "anchor", a.EntityID, "err", err)
		}
		for _, id := range ids {
			candidates[id] = true
		}
		if _, ok := ec.Metadata[oidfed.EntityOP]["federation_events_endpoint"]; ok {
			candidates[a.EntityID] = true
		}
	}
	if authority {
		subs, err := cl.db.ListSubordinates(ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range subs {
			candidates[s.EntityID] = true
			refreshSubordinate(ctx, cl, r, s, now, log)
		}
	}
	members, err := cl.db.ListMembers(ctx)
	if err != nil {
		return nil, err
	}
	known := map[string]*oidfed.Member{}
	for _, m := range members {
		known[m.Issuer] = m
		candidates[m.Issuer] = true
	}
	delete(candidates, cl.cfg.Issuer)
	ids := make([]string, 0, len(candidates))
	for id := range candidates {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []syncResult
	for _, iss := range ids {
		m := known[iss]
		left := m != nil && !joined[m.Anchor] && !(authority && m.Anchor == cl.cfg.Issuer)
		res := syncMember(ctx, cl, fed, r, iss, m, left, now, log)
		out = append(out, res)
	}
	return out, nil
}

// refreshSubordinate takes up a member's new keys when its configuration
// is signed by a key recorded for it (a rotation it vouches for).
func refreshSubordinate(ctx context.Context, cl *cloud, r *oidfed.Resolver, s *oidfed.Subordinate, now time.Time, log *slog.Logger) {
	ec, err := r.FetchConfiguration(ctx, s.EntityID)
	if err != nil {
		return
	}
	if _, err := oidfed.Verify([]byte(ec.Raw), &s.JWKS, now); err != nil || sameKeys(ec.JWKS, &s.JWKS) {
		return
	}
	s.JWKS, s.UpdatedAt = *ec.JWKS, now
	if err := cl.db.PutSubordinate(ctx, s); err == nil {
		log.Info("a member's keys changed, vouched by a recorded key", "member", s.EntityID, "kid", ec.KeyID())
	}
}

// syncMember resolves one cloud's trust chain and peers with it, updates
// its keys, or stops trusting it.
func syncMember(ctx context.Context, cl *cloud, fed *federation.Federation, r *oidfed.Resolver, iss string, m *oidfed.Member, left bool, now time.Time, log *slog.Logger) syncResult {
	var chain *oidfed.Chain
	err := errors.New("the trust anchor it was trusted through was left")
	if !left {
		chain, err = r.Resolve(ctx, iss)
	}
	if err == nil {
		err = checkCommonsCloudMark(chain, iss)
	}
	if err == nil {
		p, perr := cl.db.GetPeer(ctx, iss)
		if perr == nil && m == nil {
			return syncResult{iss, "manual", "a peer added by hand: left as it is"}
		}
		action := "trusted"
		if perr == nil && sameKeys(&p.JWKS, chain.JWKS) {
			action = "kept"
		} else {
			if perr == nil {
				action = "updated"
			}
			np, err := fed.AddPeerWithKeys(ctx, iss, "", chain.JWKS)
			if err == nil {
				err = oidc.EnsurePeerClient(ctx, cl.db, np.Issuer, np.Issuer+federation.CallbackPath, np.JWKSURI, now.UTC())
			}
			if err != nil {
				if m != nil {
					m.LastError, m.CheckedAt = err.Error(), now
					cl.db.PutMember(ctx, m)
				}
				return syncResult{iss, "refused", err.Error()}
			}
			log.Info("peering through the commons", "peer", iss, "anchor", chain.Anchor, "keys", len(chain.JWKS.Keys), "until", chain.Expiry)
		}
		if err := cl.db.PutMember(ctx, &oidfed.Member{Issuer: iss, Anchor: chain.Anchor, Expiry: chain.Expiry, CheckedAt: now}); err != nil {
			return syncResult{iss, "refused", err.Error()}
		}
		return syncResult{iss, action, "trust chain to " + chain.Anchor + " until " + chain.Expiry.UTC().Format(time.RFC3339)}
	}
	if m == nil {
		return syncResult{iss, "refused", err.Error()}
	}
	definitive := left || errors.Is(err, oidfed.ErrNotSubordinate) || errors.Is(err, oidfed.ErrExpired)
	if !definitive && now.Before(m.Expiry) {
		m.LastError, m.CheckedAt = err.Error(), now
		cl.db.PutMember(ctx, m)
		return syncResult{iss, "kept", "until " + m.Expiry.UTC().Format(time.RFC3339) + ": " + err.Error()}
	}
	if err := removeCommonsPeer(ctx, cl, iss); err != nil {
		return syncResult{iss, "refused", err.Error()}
	}
	log.Warn("a peer trusted through the commons is no longer trusted: removed", "peer", iss, "anchor", m.Anchor, "reason", err.Error())
	return syncResult{iss, "removed", err.Error()}
}

// errNoCommonsCloudMark: a member's chain verifies but its entity
// configuration shows no "commons cloud" trust mark of the anchor that
// verifies (none, forged, expired, or of another anchor). Not definitive
// (a member refreshes its mark from the anchor on its own schedule): a
// member already trusted is kept until its last verified chain expires.
var errNoCommonsCloudMark = errors.New(`no verified "commons cloud" trust mark`)

// checkCommonsCloudMark requires of a member's chain the anchor's "commons
// cloud" trust mark, which the anchor issues to the clouds it lists: a
// cloud peers only with clouds the anchor vouches for as commons clouds.
// The anchor itself, a chain of one statement, needs none.
func checkCommonsCloudMark(chain *oidfed.Chain, iss string) error {
	if iss == chain.Anchor {
		return nil
	}
	typ := oidfed.TrustMarkType(chain.Anchor, oidfed.KindCommonsCloud)
	if !chain.HasTrustMark(typ) {
		return fmt.Errorf("%w of %s in its entity configuration", errNoCommonsCloudMark, chain.Anchor)
	}
	return nil
}

// removeCommonsPeer removes a peer as `peer remove` does.
func removeCommonsPeer(ctx context.Context, cl *cloud, iss string) error {
	if _, err := cl.db.GetPeer(ctx, iss); err == nil {
		if _, err := detachPeerFamilies(ctx, cl, iss); err != nil {
			return err
		}
		if err := cl.db.DeletePeer(ctx, iss); err != nil && !isNotFound(err) {
			return err
		}
		if err := cl.db.DeleteClient(ctx, iss); err != nil && !isNotFound(err) {
			return err
		}
	}
	return cl.db.DeleteMember(ctx, iss)
}

// sameKeys reports whether two key sets hold the same kids and keys.
func sameKeys(a, b *jose.JSONWebKeySet) bool {
	if a == nil || b == nil || len(a.Keys) != len(b.Keys) {
		return false
	}
	for _, k := range a.Keys {
		o := b.Key(k.KeyID)
		if len(o) != 1 {
			return false
		}
		x, _ := k.Public().MarshalJSON()
		y, _ := o[0].Public().MarshalJSON()
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// runCommonsLoop refreshes the commons every interval while serve runs.
func runCommonsLoop(ctx context.Context, cl *cloud, fed *federation.Federation, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := syncCommons(ctx, cl, fed, cl.log); err != nil && ctx.Err() == nil {
			cl.log.Warn("commons refresh", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func runCommons(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usagef(commonsUsage)
	}
	sub, args := args[0], args[1:]
	var asJSON bool
	var extra func(*flag.FlagSet)
	switch sub {
	case "-h", "--help", "help":
		fmt.Fprintln(c.stdout, commonsUsage)
		return nil
	case "join", "leave", "add-member", "remove-member":
	case "status", "members":
		extra = func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON") }
	default:
		return usagef("unknown commons command %q; %s", sub, commonsUsage)
	}
	open := openForCommand
	if sub == "status" || sub == "members" {
		open = openForReading
	}
	cl, fs, err := open(ctx, c, "commons "+sub, args, extra)
	if err != nil {
		return err
	}
	defer cl.Close()
	argURL := func() (string, error) {
		if fs.NArg() != 1 {
			return "", usagef("usage: commonsid commons %s URL", sub)
		}
		id, err := federation.NormalizeIssuer(fs.Arg(0))
		if err != nil {
			return "", usagef("%v", err)
		}
		if err := cl.needIssuer("commons " + sub); err != nil {
			return "", err
		}
		if id == cl.cfg.Issuer {
			return "", fmt.Errorf("%s is this cloud's own issuer", id)
		}
		return id, nil
	}
	if (sub == "status" || sub == "members") && fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	r := &oidfed.Resolver{HTTP: cl.cfg.Outbound(cl.log).HTTPClient()}
	now := time.Now().UTC()
	switch sub {
	case "add-member":
		id, err := argURL()
		if err != nil {
			return err
		}
		ec, err := r.FetchConfiguration(ctx, id)
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		s := &oidfed.Subordinate{EntityID: id, JWKS: *ec.JWKS, AddedAt: now, UpdatedAt: now}
		if old, err := cl.db.GetSubordinate(ctx, id); err == nil {
			s.AddedAt = old.AddedAt
		}
		if err := cl.db.PutSubordinate(ctx, s); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "member %s added (%d keys: %s); it is trusted by the commons once it runs: commonsid commons join %s\n",
			id, len(ec.JWKS.Keys), kids(ec.JWKS), cl.cfg.Issuer)
		return nil
	case "remove-member":
		id, err := argURL()
		if err != nil {
			return err
		}
		if err := cl.db.DeleteSubordinate(ctx, id); err != nil {
			if isNotFound(err) {
				return fmt.Errorf("%s is not a member of this commons", id)
			}
			return err
		}
		ttl, _ := commonsTimes(c.env)
		if m := findMember(ctx, cl, id); m {
			if err := removeCommonsPeer(ctx, cl, id); err != nil {
				return err
			}
		}
		fmt.Fprintf(c.stdout, "member %s removed: this cloud no longer vouches for it; the other members stop trusting it at their next refresh, and within %s at the latest\n", id, ttl)
		return nil
	case "join":
		id, err := argURL()
		if err != nil {
			return err
		}
		ec, err := r.FetchConfiguration(ctx, id)
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		if ec.MetadataString(oidfed.EntityFederation, "federation_fetch_endpoint") == "" {
			return fmt.Errorf("%s is not a trust anchor: its entity configuration names no federation_fetch_endpoint (it has no members yet; its operator adds them with commonsid commons add-member URL)", id)
		}
		if err := cl.db.PutAnchor(ctx, &oidfed.Anchor{EntityID: id, JWKS: *ec.JWKS, JoinedAt: now}); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "joined the commons of %s (its keys pinned: %s)\n", id, kids(ec.JWKS))
		res, err := syncCommons(ctx, cl, cl.federation(), cl.log)
		if err != nil {
			return err
		}
		printSync(c, res)
		return nil
	case "leave":
		id, err := argURL()
		if err != nil {
			return err
		}
		if err := cl.db.DeleteAnchor(ctx, id); err != nil {
			if isNotFound(err) {
				return fmt.Errorf("%s is not an anchor this cloud joined", id)
			}
			return err
		}
		fmt.Fprintf(c.stdout, "left the commons of %s\n", id)
		res, err := syncCommons(ctx, cl, cl.federation(), cl.log)
		if err != nil {
			return err
		}
		printSync(c, res)
		return nil
	case "members":
		subs, err := cl.db.ListSubordinates(ctx)
		if err != nil {
			return err
		}
		type memberJSON struct {
			EntityID string    `json:"entity_id"`
			Keys     []string  `json:"keys"`
			AddedAt  time.Time `json:"added_at"`
		}
		out := []memberJSON{}
		for _, s := range subs {
			out = append(out, memberJSON{s.EntityID, kidList(&s.JWKS), s.AddedAt})
		}
		if asJSON {
			b, _ := json.MarshalIndent(out, "", "  ")
			fmt.Fprintln(c.stdout, string(b))
			return nil
		}
		if len(out) == 0 {
			fmt.Fprintln(c.stdout, "no members; this cloud becomes a trust anchor with: commonsid commons add-member URL")
			return nil
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER\tKEYS\tADDED")
		for _, m := range out {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", m.EntityID, len(m.Keys), m.AddedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	// status
	anchors, err := cl.db.ListAnchors(ctx)
	if err != nil {
		return err
	}
	members, err := cl.db.ListMembers(ctx)
	if err != nil {
		return err
	}
	type anchorJSON struct {
		EntityID  string    `json:"entity_id"`
		Keys      []string  `json:"keys"`
		JoinedAt  time.Time `json:"joined_at"`
		TrustMark bool      `json:"commons_cloud_trust_mark"`
	}
	type peerJSON struct {
		Issuer    string    `json:"issuer"`
		Anchor    string    `json:"anchor"`
		Until     time.Time `json:"trusted_until"`
		CheckedAt time.Time `json:"checked_at"`
		LastError string    `json:"last_error,omitempty"`
	}
	st := struct {
		Anchors []anchorJSON `json:"anchors"`
		Peers   []peerJSON   `json:"peers"`
	}{Anchors: []anchorJSON{}, Peers: []peerJSON{}}
	for _, a := range anchors {
		st.Anchors = append(st.Anchors, anchorJSON{a.EntityID, kidList(&a.JWKS), a.JoinedAt, a.TrustMark != ""})
	}
	for _, m := range members {
		st.Peers = append(st.Peers, peerJSON{m.Issuer, m.Anchor, m.Expiry, m.CheckedAt, m.LastError})
	}
	if asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintln(c.stdout, string(b))
		return nil
	}
	if len(st.Anchors) == 0 {
		fmt.Fprintln(c.stdout, "no commons joined; join one with: commonsid commons join ANCHOR_URL")
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, a := range st.Anchors {
		fmt.Fprintf(tw, "ANCHOR %s\tkeys %d\tjoined %s\ttrust mark %v\n", a.EntityID, len(a.Keys), a.JoinedAt.Format(time.RFC3339), a.TrustMark)
	}
	if len(st.Peers) > 0 {
		fmt.Fprintln(tw, "PEER\tANCHOR\tTRUSTED UNTIL\tLAST ERROR")
	}
	for _, p := range st.Peers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Issuer, p.Anchor, p.Until.Format(time.RFC3339), p.LastError)
	}
	return tw.Flush()
}

// findMember reports whether iss is a peer trusted through the commons.
func findMember(ctx context.Context, cl *cloud, iss string) bool {
	ms, err := cl.db.ListMembers(ctx)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(ms, func(m *oidfed.Member) bool { return m.Issuer == iss })
}

func printSync(c *cli, res []syncResult) {
	for _, r := range res {
		fmt.Fprintf(c.stdout, "  %s: %s (%s)\n", r.Issuer, r.Action, r.Detail)
	}
}

func kidList(ks *jose.JSONWebKeySet) []string {
	out := []string{}
	for _, k := range ks.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

func kids(ks *jose.JSONWebKeySet) string {
	l := kidList(ks)
	s := ""
	for i, k := range l {
		if i > 0 {
			s += ", "
		}
		s += k
	}
	return s
}
