package federation

// Service announcements: what a peer may say about the pairwise sectors
// of its services.
//
// A peer announces each of its services (service.registered,
// service.forked) with its public metadata and three computed fields:
// x_sector (the service's own pairwise sector), and for a fork
// x_family_root and x_family_sector (the family it joined). The pairwise
// sub a person has at a service is HMAC(person's secret, sector), so a
// sector is a claim on every person's identifier at every service that
// holds it: this cloud believes none of these fields on the peer's word.
//
// Rules, applied to every announcement from peer P before it is kept:
//
//   - x_sector must be what the metadata implies (OIDC Core 8.1): the host
//     of sector_identifier_uri, whose JSON array, fetched here through the
//     cloud's guarded client, lists every redirect URI; else the single
//     host of the redirect URIs. A document that cannot be fetched leaves
//     the sector unverified.
//   - A sector that another cloud's service, or one of this cloud's, holds
//     already is refused to P's service as a family sector: the first
//     holder keeps the family. The service keeps it for its own sign-ins
//     only (its redirect URIs are on that host, so its codes reach nobody
//     else; the same service may be registered on several clouds), but it
//     cannot head or join a family.
//   - A family sector is believed only from the cloud that is home to the
//     family root. Root "ID" (P's own service): it must be the verified
//     sector of P's announced root ID. Root "X#ID": X is this cloud and its
//     service ID has that sector, or this cloud holds X's own verified
//     announcement of ID with that sector. The root must not be a fork.
//
// An announcement that breaks a rule is kept, so that its name shows, but
// without x_family_root and x_family_sector, without x_sector (except as
// above), and with x_unverified set to the reason; forks of it are refused
// at registration (invalid_client_metadata, naming the reason) and given
// no family sub at consent. Every refusal is logged at warning level with
// the peer, the service and the reason.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/onecommons/commonsid/store"
)

// SectorHolder is a service holding a pairwise sector as its own: Issuer
// is "" for this cloud's services, else the peer that announced it.
type SectorHolder struct {
	Issuer   string
	ClientID string
}

// ServiceSectorStore finds who holds a sector.
type ServiceSectorStore interface {
	// SectorHolders lists at most limit services whose own sector is
	// sector: this cloud's (not peers' sign-in clients) and peers'
	// verified announcements.
	SectorHolders(ctx context.Context, sector string, limit int) ([]SectorHolder, error)
}

// Bounds of the sector_identifier_uri fetches.
const (
	maxSectorDocument  = 64 << 10
	sectorFetchTimeout = 10 * time.Second
	sectorCacheTTL     = 10 * time.Minute
	sectorFailTTL      = time.Minute
	maxSectorCache     = 1024
	maxSectorHolders   = 16
)

// sectorCache keeps fetched sector documents (and failures, shorter), at
// most maxSectorCache of them.
type sectorCache struct {
	mu   sync.Mutex
	docs map[string]sectorDoc
}

type sectorDoc struct {
	uris []string
	err  error
	at   time.Time
}

// checkService vets a peer's service announcement before it is kept: it
// returns the metadata to store (see the rules above).
func (f *Federation) checkService(ctx context.Context, p *Peer, clientID string, data []byte) ([]byte, error) {
	var md map[string]any
	if err := json.Unmarshal(data, &md); err != nil {
		return nil, fmt.Errorf("%w: service data: %v", ErrRejected, err)
	}
	delete(md, "x_unverified")
	reason, keepSector, err := f.verifyService(ctx, p, clientID, md)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		f.log().Warn("peer service announcement not verified: it heads no family and forks of it are refused",
			"peer", p.Issuer, "client_id", clientID, "reason", reason, "sector_kept_for_its_sign_ins", keepSector)
		if !keepSector {
			delete(md, "x_sector")
		}
		delete(md, "x_family_sector")
		delete(md, "x_family_root")
		md["x_unverified"] = reason
	}
	return json.Marshal(md)
}

func str(md map[string]any, k string) string {
	s, _ := md[k].(string)
	return s
}

// verifyService returns why an announcement cannot be believed, or "",
// and whether its x_sector still stands for its own sign-ins. An error is
// a failure of this cloud (its store), to be retried.
func (f *Federation) verifyService(ctx context.Context, p *Peer, clientID string, md map[string]any) (string, bool, error) {
	sector, root, fsec := str(md, "x_sector"), str(md, "x_family_root"), str(md, "x_family_sector")
	if sector == "" && root == "" && fsec == "" {
		return "", false, nil // claims no sector: nothing to believe
	}
	implied, reason := f.impliedSector(ctx, md)
	if reason != "" {
		return reason, false, nil
	}
	if sector != implied {
		return fmt.Sprintf("x_sector %q is not the sector its metadata implies (%q)", sector, implied), false, nil
	}
	reason, err := f.verifyFamily(ctx, p, clientID, sector, root, fsec)
	return reason, reason != "", err
}

// verifyFamily checks that a service whose own sector is verified may
// head a family or belongs to the one it names; it returns why not.
func (f *Federation) verifyFamily(ctx context.Context, p *Peer, clientID, sector, root, fsec string) (string, error) {
	holders, err := f.Store.SectorHolders(ctx, sector, maxSectorHolders)
	if err != nil {
		return "", err
	}
	for _, h := range holders {
		if h.Issuer == p.Issuer {
			continue
		}
		who := "this cloud's service " + h.ClientID
		if h.Issuer != "" {
			who = "service " + h.ClientID + " of " + h.Issuer
		}
		return fmt.Sprintf("sector %q is already held by %s", sector, who), nil
	}
	if root == "" && fsec == "" {
		return "", nil
	}
	if root == "" || fsec == "" {
		return "x_family_root and x_family_sector must be given together", nil
	}
	home, id, remote := strings.Cut(root, "#")
	if !remote {
		home, id = p.Issuer, root
	}
	var rootSector string
	switch {
	case home == p.Issuer && id == clientID:
		rootSector = sector // the service is its own root
	case home == p.Issuer || home != f.Issuer:
		raw, err := f.Store.RemoteService(ctx, home, id)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Sprintf("family root %s#%s: no announcement of it by %s is held here", home, id, home), nil
		}
		if err != nil {
			return "", err
		}
		var r map[string]any
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Sprintf("family root %s#%s: its stored announcement cannot be read", home, id), nil
		}
		if why := str(r, "x_unverified"); why != "" {
			return fmt.Sprintf("family root %s#%s is itself unverified (%s)", home, id, why), nil
		}
		if str(r, "x_family_root") != "" {
			return fmt.Sprintf("family root %s#%s is a fork, not a root", home, id), nil
		}
		rootSector = str(r, "x_sector")
	default: // a service of this cloud
		raw, err := f.Store.ClientMetadata(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Sprintf("family root %s: no such service on this cloud", root), nil
		}
		if err != nil {
			return "", err
		}
		var r map[string]any
		if err := json.Unmarshal(raw, &r); err != nil {
			return "", fmt.Errorf("client %s metadata: %w", id, err)
		}
		if str(r, "x_family_root") != "" {
			return fmt.Sprintf("family root %s is a fork, not a root", root), nil
		}
		rootSector = str(r, "x_sector")
	}
	if rootSector == "" || rootSector != fsec {
		return fmt.Sprintf("x_family_sector %q is not the sector of its family root %s (%q)", fsec, root, rootSector), nil
	}
	return "", nil
}

// impliedSector computes a peer service's sector from its metadata, as
// registration computes a local one; a non-empty reason says why it
// cannot.
func (f *Federation) impliedSector(ctx context.Context, md map[string]any) (string, string) {
	var redirects []string
	if rs, ok := md["redirect_uris"].([]any); ok {
		for _, r := range rs {
			s, ok := r.(string)
			if !ok {
				return "", "redirect_uris is not an array of URLs"
			}
			redirects = append(redirects, s)
		}
	}
	if len(redirects) == 0 {
		return "", "a service without redirect URIs signs nobody in and holds no sector"
	}
	if siu := str(md, "sector_identifier_uri"); siu != "" {
		u, err := url.Parse(siu)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return "", "sector_identifier_uri is not an absolute URL"
		}
		uris, err := f.sectorDocument(ctx, siu)
		if err != nil {
			return "", fmt.Sprintf("sector_identifier_uri %s: %v", siu, err)
		}
		for _, r := range redirects {
			if !slices.Contains(uris, r) {
				return "", fmt.Sprintf("sector_identifier_uri %s does not list redirect URI %q", siu, r)
			}
		}
		return u.Host, ""
	}
	host := ""
	for _, r := range redirects {
		u, err := url.Parse(r)
		if err != nil || u.Host == "" {
			return "", fmt.Sprintf("redirect URI %q is not an absolute URL", r)
		}
		if host != "" && u.Host != host {
			return "", "redirect URIs span several hosts and no sector_identifier_uri is given"
		}
		host = u.Host
	}
	return host, ""
}

// sectorDocument fetches (or recalls) a sector_identifier_uri document
// through the cloud's guarded client.
func (f *Federation) sectorDocument(ctx context.Context, raw string) ([]string, error) {
	now := f.now()
	c := &f.sectors
	c.mu.Lock()
	if d, ok := c.docs[raw]; ok {
		ttl := sectorCacheTTL
		if d.err != nil {
			ttl = sectorFailTTL
		}
		if now.Sub(d.at) < ttl {
			c.mu.Unlock()
			return d.uris, d.err
		}
	}
	c.mu.Unlock()
	uris, err := f.fetchSectorDocument(ctx, raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.docs == nil {
		c.docs = map[string]sectorDoc{}
	}
	if len(c.docs) >= maxSectorCache {
		for k, d := range c.docs { // drop the stale, else any one
			if now.Sub(d.at) >= sectorFailTTL || len(c.docs) >= maxSectorCache {
				delete(c.docs, k)
			}
		}
	}
	c.docs[raw] = sectorDoc{uris: uris, err: err, at: now}
	return uris, err
}

func (f *Federation) fetchSectorDocument(ctx context.Context, raw string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, sectorFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client().Do(req)
	if err != nil {
		f.log().Warn("sector_identifier_uri fetch failed", "url", raw, "err", err)
		return nil, errors.New("could not be fetched")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("answered %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSectorDocument+1))
	if err != nil {
		return nil, errors.New("could not be read")
	}
	if len(body) > maxSectorDocument {
		return nil, fmt.Errorf("is larger than %d KiB", maxSectorDocument>>10)
	}
	var uris []string
	if err := json.Unmarshal(body, &uris); err != nil {
		return nil, errors.New("is not a JSON array of URLs")
	}
	return uris, nil
}
