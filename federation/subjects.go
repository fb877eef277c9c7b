package federation

// Subjects on peers.
//
// A person's pairwise sub at a service is HMAC-SHA256(account pairwise
// secret, sector). The secret never leaves the home cloud: holding it, a
// peer could compute the person's sub at every service of every cloud. A
// peer that signs a replicated account in to one of its own services asks
// the home for that one sub instead, and keeps it:
//
//	POST /federation/v1/subjects            (peer token, as /events)
//	{"account": DID, "sector": S, "client_id": C}
//	→ 200 {"sub": "…"}
//
// The home answers only when
//
//	(a) the account is homed here, active, and shared with that peer
//	    (shareLevel not "none"); anything else, including an account that
//	    does not exist, is the same 403, so a peer learns nothing;
//	(b) S is a sector of C, a service that peer announced in its feed and
//	    this cloud kept (Store.RemoteService): its x_sector, which must be
//	    what its redirect URIs (or sector_identifier_uri) give, or its
//	    x_family_sector; and
//	(c) a family sector is claimed only by a fork whose announced family
//	    root is known here with that very sector (a service of this cloud,
//	    of the peer, or of another peer), and only when the person's fork
//	    policy is not "never": a peer cannot name another cloud's sector
//	    that it does not share.
//
// Checks (b) and (c) come before (a) and do not depend on the account. Each
// answer is recorded in the person's activity log (kind subject.disclosed)
// and each peer has a bounded budget of requests (subjectBurst, refilled at
// subjectRate per second); over it the answer is 429 with Retry-After.
//
// On the peer, ReplicaSubject serves a replica's sub from the
// replica_subjects table and asks the home (within subjectTimeout) only at
// the first use of a sector: once learned, a service keeps working while
// the home is unreachable; a new one cannot be used until it answers.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// SubjectStore keeps the subs of replicated accounts learned from their
// homes, and the activity entries of the subs disclosed to peers.
type SubjectStore interface {
	// ReplicaSubject returns the sub learned for (account, sector), or
	// store.ErrNotFound.
	ReplicaSubject(ctx context.Context, accountDID, sector string) (string, error)
	// PutReplicaSubject records a sub learned from the account's home.
	PutReplicaSubject(ctx context.Context, accountDID, sector, sub string, at time.Time) error
	AppendActivity(ctx context.Context, a *privacy.Activity) error
}

// ActivitySubjectDisclosed is the activity kind of a sub given to a peer.
const ActivitySubjectDisclosed = "subject.disclosed"

// SubjectsPath is the route of the subjects endpoint.
const SubjectsPath = "/federation/v1/subjects"

const (
	// subjectBurst and subjectRate bound the requests one peer makes to
	// the subjects endpoint: a burst of subjectBurst, then subjectRate a
	// second.
	subjectBurst = 300
	subjectRate  = 10.0
	// subjectTimeout bounds the request of a peer to an account's home.
	subjectTimeout = 5 * time.Second
	// announcementWait is how long the home waits for the announcement
	// of a service just registered on the peer to arrive in its feed.
	announcementWait = 2 * time.Second
	// maxSubjectRequest bounds a request body; maxSubjectField each field.
	maxSubjectRequest = 4 << 10
	maxSubjectField   = 512
	// disclosuresKept bounds the memory of recent disclosures, which keeps
	// a peer asking again from filling the activity log.
	disclosuresKept   = 10000
	disclosureLogOnce = time.Hour
)

// Errors of ReplicaSubject.
var (
	// ErrHomeUnavailable: the account's home could not be asked.
	ErrHomeUnavailable = errors.New("the account's home cloud cannot be reached")
	// ErrHomeRefused: the home refused to give the sub.
	ErrHomeRefused = errors.New("the account's home cloud refused to give this cloud the identifier")
)

// subjectState is the home's side: request budgets per peer and the
// disclosures recently logged.
type subjectState struct {
	mu        sync.Mutex
	buckets   map[string]*bucket // per peer issuer: bounded by the peers
	disclosed map[string]time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// allow takes one request from the peer's budget; when it is spent it
// returns how long until the next request is allowed.
func (s *subjectState) allow(peer string, now time.Time) (bool, time.Duration) {
	return s.allowWith(peer, now, subjectBurst, subjectRate)
}

// allowWith is allow with a budget of burst requests, then rate a second.
func (s *subjectState) allowWith(peer string, now time.Time, burst, rate float64) (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets == nil {
		s.buckets = map[string]*bucket{}
	}
	b := s.buckets[peer]
	if b == nil {
		b = &bucket{tokens: burst, at: now}
		s.buckets[peer] = b
	}
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.tokens = min(burst, b.tokens+el*rate)
	}
	b.at = now
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// firstDisclosure reports whether (peer, account, sector) was not logged
// within disclosureLogOnce, and remembers it.
func (s *subjectState) firstDisclosure(key string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.disclosed[key]; ok && now.Sub(at) < disclosureLogOnce {
		return false
	}
	if s.disclosed == nil || len(s.disclosed) >= disclosuresKept {
		s.disclosed = map[string]time.Time{}
	}
	s.disclosed[key] = now
	return true
}

// subjectRequest is the body of POST /federation/v1/subjects.
type subjectRequest struct {
	Account  string `json:"account"`
	Sector   string `json:"sector"`
	ClientID string `json:"client_id"`
}

// subjectResponse is its answer.
type subjectResponse struct {
	Sub string `json:"sub"`
}

// pairwiseSubject is oidc.PairwiseSubject (the tests hold them equal):
// base64url(HMAC-SHA256(secret, sector)).
func pairwiseSubject(secret []byte, sector string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(sector))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// refusal is a 403 of the subjects endpoint.
type refusal struct{ desc string }

func (r *refusal) Error() string { return r.desc }

func refuse(format string, args ...any) error { return &refusal{fmt.Sprintf(format, args...)} }

// notShared is the one answer for an account that is unknown, homed
// elsewhere, closed or not shared with the peer.
var notShared = refuse("this account is not shared with your cloud by a person homed here")

// serveSubjects is POST /federation/v1/subjects.
func (f *Federation) serveSubjects(w http.ResponseWriter, r *http.Request) {
	p, ok := f.authorize(w, r)
	if !ok {
		return
	}
	if ok, wait := f.subjects.allow(p.Issuer, f.now()); !ok {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait/time.Second)+1))
		writeError(w, http.StatusTooManyRequests, "slow_down",
			fmt.Sprintf("a peer asks for at most %d identifiers at once and %g a second", subjectBurst, subjectRate))
		return
	}
	var req subjectRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSubjectRequest))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	switch {
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("the body must be a JSON object of at most %d bytes: {account, sector, client_id}", maxSubjectRequest))
		return
	case !strings.HasPrefix(req.Account, "did:") || req.Sector == "" || req.ClientID == "":
		writeError(w, http.StatusBadRequest, "invalid_request", "account (a DID), sector and client_id are required")
		return
	case len(req.Account) > maxSubjectField || len(req.Sector) > maxSubjectField || len(req.ClientID) > maxSubjectField:
		writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("account, sector and client_id take at most %d bytes each", maxSubjectField))
		return
	}
	sub, name, err := f.discloseSubject(r.Context(), p, &req)
	var ref *refusal
	if errors.As(err, &ref) {
		f.log().InfoContext(r.Context(), "refused a peer an identifier", "peer", p.Issuer, "client_id", req.ClientID, "reason", ref.desc)
		writeError(w, http.StatusForbidden, "access_denied", ref.desc)
		return
	}
	if err != nil {
		f.log().ErrorContext(r.Context(), "subjects endpoint", "peer", p.Issuer, "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "the identifier could not be computed")
		return
	}
	now := f.now()
	if f.subjects.firstDisclosure(p.Issuer+"\x00"+req.Account+"\x00"+req.Sector, now) {
		host := p.Issuer
		if u, err := url.Parse(p.Issuer); err == nil && u.Host != "" {
			host = u.Host
		}
		err := f.Store.AppendActivity(r.Context(), &privacy.Activity{AccountDID: req.Account, At: now, Kind: ActivitySubjectDisclosed,
			ClientID: p.Issuer + "#" + req.ClientID,
			Detail:   map[string]any{"cloud": host, "service": name}})
		if err != nil {
			// Nothing is disclosed that was not recorded.
			f.log().ErrorContext(r.Context(), "subjects endpoint: activity log", "err", err)
			writeError(w, http.StatusInternalServerError, "server_error", "the identifier could not be computed")
			return
		}
	}
	writeJSON(w, http.StatusOK, subjectResponse{Sub: sub})
}

// announcement is what the subjects endpoint reads of a service
// announcement.
type announcement struct {
	Name                string   `json:"client_name"`
	RedirectURIs        []string `json:"redirect_uris"`
	SectorIdentifierURI string   `json:"sector_identifier_uri"`
	Sector              string   `json:"x_sector"`
	FamilySector        string   `json:"x_family_sector"`
	FamilyRoot          string   `json:"x_family_root"`
}

// discloseSubject applies rules (a)–(c) and computes the sub; a refusal
// is a *refusal.
func (f *Federation) discloseSubject(ctx context.Context, p *Peer, req *subjectRequest) (sub, name string, err error) {
	// (b) the service is the peer's, as announced and kept here.
	raw, err := f.Store.RemoteService(ctx, p.Issuer, req.ClientID)
	for deadline := time.Now().Add(announcementWait); errors.Is(err, store.ErrNotFound) && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		raw, err = f.Store.RemoteService(ctx, p.Issuer, req.ClientID)
	}
	if errors.Is(err, store.ErrNotFound) {
		return "", "", refuse("client_id %q is not a service your cloud announced to this one", req.ClientID)
	}
	if err != nil {
		return "", "", err
	}
	var ann announcement
	if err := json.Unmarshal(raw, &ann); err != nil {
		return "", "", refuse("the announcement of %q cannot be read", req.ClientID)
	}
	name = ann.Name
	if name == "" {
		name = req.ClientID
	}
	family := false
	switch {
	case req.Sector == ann.Sector:
		if s := announcedSector(&ann, req.ClientID); s != ann.Sector {
			return "", "", refuse("the sector of %q is not what its redirect URIs give (%q)", req.ClientID, s)
		}
	case req.Sector == ann.FamilySector:
		// (c) a fork's family sector: its root is known here with it.
		if err := f.checkFamilyRoot(ctx, p, &ann); err != nil {
			return "", "", err
		}
		family = true
	default:
		return "", "", refuse("sector %q is not a sector of %q", req.Sector, req.ClientID)
	}
	// (a) the account is homed here and shared with the peer.
	a, err := f.Store.GetAccount(ctx, req.Account)
	if errors.Is(err, store.ErrNotFound) {
		return "", "", notShared
	}
	if err != nil {
		return "", "", err
	}
	if a.HomeIssuer != f.Issuer || a.Status != identity.StatusActive || len(a.PairwiseSecretSealed) == 0 {
		return "", "", notShared
	}
	st, err := f.Store.GetSettings(ctx, a.DID)
	if errors.Is(err, store.ErrNotFound) {
		st, err = privacy.DefaultSettings(), nil
	}
	if err != nil {
		return "", "", err
	}
	level, err := f.shareLevel(ctx, &pageState{}, a, st, p.Issuer)
	if err != nil {
		return "", "", err
	}
	if level == ShareNone || level == "" {
		return "", "", notShared
	}
	if family && st.ForkPolicy == privacy.PolicyNever {
		return "", "", refuse("the person does not carry their account over to forks: %q has its own sector", req.ClientID)
	}
	secret, err := f.Accounts.PairwiseSecret(a)
	if err != nil {
		return "", "", err
	}
	return pairwiseSubject(secret, req.Sector), name, nil
}

// announcedSector is the sector the announced metadata gives (OIDC Core
// 8.1, as registration computes it): the host of sector_identifier_uri,
// else the one host of the redirect URIs, else the client_id.
func announcedSector(ann *announcement, clientID string) string {
	if ann.SectorIdentifierURI != "" {
		u, err := url.Parse(ann.SectorIdentifierURI)
		if err != nil {
			return ""
		}
		return u.Host
	}
	host := ""
	for _, r := range ann.RedirectURIs {
		u, err := url.Parse(r)
		if err != nil || (host != "" && u.Host != host) {
			return ""
		}
		host = u.Host
	}
	if host == "" {
		return clientID
	}
	return host
}

// checkFamilyRoot checks that the family root a fork names is known here
// with the family sector it claims.
func (f *Federation) checkFamilyRoot(ctx context.Context, p *Peer, ann *announcement) error {
	issuer, id, ok := strings.Cut(ann.FamilyRoot, "#")
	if !ok {
		issuer, id = p.Issuer, ann.FamilyRoot
	}
	if id == "" {
		return refuse("the service claims a family sector without a family root")
	}
	var (
		raw []byte
		err error
	)
	if issuer == f.Issuer {
		raw, err = f.Store.ClientMetadata(ctx, id)
	} else {
		raw, err = f.Store.RemoteService(ctx, issuer, id)
	}
	if errors.Is(err, store.ErrNotFound) {
		return refuse("the family root %q of this fork is not a service known here", ann.FamilyRoot)
	}
	if err != nil {
		return err
	}
	var root announcement
	if err := json.Unmarshal(raw, &root); err != nil || root.Sector == "" || root.Sector != ann.FamilySector {
		return refuse("the family sector this fork claims is not the sector of its family root %q", ann.FamilyRoot)
	}
	return nil
}

// ReplicaSubject returns the pairwise sub of a replicated account at a
// sector of this cloud's service clientID: the one learned before, else
// the one its home gives now, kept for next time. It fails with
// ErrHomeUnavailable when the home cannot be asked and ErrHomeRefused
// when it refuses.
func (f *Federation) ReplicaSubject(ctx context.Context, a *identity.Account, clientID, sector string) (string, error) {
	sub, err := f.Store.ReplicaSubject(ctx, a.DID, sector)
	if err == nil {
		return sub, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	if a.HomeIssuer == "" || a.HomeIssuer == f.Issuer {
		return "", fmt.Errorf("%w: the account is homed here and holds no pairwise secret", ErrHomeRefused)
	}
	p, err := f.Store.GetPeer(ctx, a.HomeIssuer)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("%w: %s is %v", ErrHomeUnavailable, a.HomeIssuer, ErrNotPeer)
	}
	if err != nil {
		return "", err
	}
	if sub, err = f.askSubject(ctx, p, &subjectRequest{Account: a.DID, Sector: sector, ClientID: clientID}); err != nil {
		return "", err
	}
	if err := f.Store.PutReplicaSubject(ctx, a.DID, sector, sub, f.now()); err != nil {
		return "", err
	}
	return sub, nil
}

// askSubject asks the home p for a sub.
func (f *Federation) askSubject(ctx context.Context, p *Peer, sr *subjectRequest) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, subjectTimeout)
	defer cancel()
	tok, err := f.PeerToken(ctx, p.Issuer)
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(sr)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base()+SubjectsPath, strings.NewReader(string(body)))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrHomeUnavailable, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrHomeUnavailable, p.Issuer, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxSubjectRequest))
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrHomeUnavailable, p.Issuer, err)
	}
	var out struct {
		Sub  string `json:"sub"`
		Code string `json:"error"`
		Desc string `json:"error_description"`
	}
	json.Unmarshal(raw, &out)
	switch {
	case resp.StatusCode == http.StatusOK && validSub(out.Sub):
		return out.Sub, nil
	case resp.StatusCode == http.StatusForbidden:
		return "", fmt.Errorf("%w: %s", ErrHomeRefused, out.Desc)
	case resp.StatusCode == http.StatusOK:
		return "", fmt.Errorf("%w: %s answered no valid sub", ErrHomeUnavailable, p.Issuer)
	}
	return "", fmt.Errorf("%w: %s answered %s %s", ErrHomeUnavailable, p.Issuer, resp.Status, out.Code)
}

// validSub: 32 bytes in unpadded base64url, as pairwiseSubject makes.
func validSub(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}
