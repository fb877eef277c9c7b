package federation

// Witness collection and the DID logs a cloud serves to the commons.
//
// Every member cloud is a witness: its witness id is in its discovery
// document (federation_witness, see witness.go), kept on the Peer record.
// A home gives its accounts the witness parameter of the member set
// (MemberWitnesses), and collects the proofs on a new entry with
// CollectWitness:
//
//   - the witness configuration that applies to the entries not yet
//     witnessed is read from the log (did:webvh rules: the configuration
//     active before an entry, or the entry's own when none was active);
//   - the witnesses are asked one by one in the order of their ids, this
//     cloud's own witness in-process, a peer's through RequestWitness;
//     one that cannot be reached is skipped;
//   - the first fork (or stale) refusal ends the collection with an error:
//     another entry won that version. The order is the same on every
//     cloud, so of two entries competing for one version (two moves of an
//     account) the loser is refused at the first witness both reach, and
//     a majority threshold leaves at most one winner;
//   - once the threshold is met the remaining witnesses are asked too,
//     best-effort and for a bounded time, and did-witness.json is returned:
//     the proofs the log had merged with the new ones, one proof per
//     witness (its latest: a proof on an entry counts for the entries
//     before it).
//
// Every cloud also serves the logs it holds (homed here, moved away, or
// learned from peers), so that a DID resolves while its home is down:
//
//	GET /federation/v1/dids/{scid}          (public, limited per IP)
//	→ 200 {"log": "<did.jsonl>", "witness": [did-witness.json records]}
//	→ 404 {"error": "not_found"}            no log of that SCID here
//	→ 400 {"error": "invalid_request"}      not a SCID
//
// LatestDIDLog gathers this cloud's copy and every peer's, and keeps the
// best one that verifies (witness threshold met, rule 2 of
// identity.CheckAuthority) by identity.PreferLog.

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

	"github.com/go-chi/chi/v5"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/store"
)

// DIDsPath is the route prefix of the DID logs served: DIDsPath/{scid}.
const DIDsPath = "/federation/v1/dids"

const (
	// didsPerIP bounds the DID log requests of one IP a minute.
	didsPerIP = 600
	// didFetchTimeout bounds asking one peer for its copy of a log.
	didFetchTimeout = 10 * time.Second
	// didFetchParallel bounds the peers asked at once for a log.
	didFetchParallel = 4
	// collectRestTimeout bounds asking the remaining witnesses once the
	// threshold is met.
	collectRestTimeout = 10 * time.Second
)

// maxDIDAnswer bounds the answer read from a peer's DIDsPath: the log as a
// JSON string (escaping at most doubles it) and the witness file.
var maxDIDAnswer = 2*webvh.DefaultLimits.MaxLogBytes + webvh.DefaultLimits.MaxWitnessBytes + 4096

// ErrWitnessThreshold reports a collection that did not get the proofs of
// enough witnesses.
var ErrWitnessThreshold = errors.New("witness threshold not met")

// Witness returns the witness the peer publishes in its discovery document
// (federation_witness): its did:key id and endpoint; ok is false when the
// peer publishes none, or one that is not an Ed25519 did:key.
func (p *Peer) Witness() (id, endpoint string, ok bool) {
	var m struct {
		Witness *WitnessService `json:"federation_witness"`
	}
	if len(p.Metadata) == 0 || json.Unmarshal(p.Metadata, &m) != nil || m.Witness == nil {
		return "", "", false
	}
	if !validWitnessID(m.Witness.ID) {
		return "", "", false
	}
	if u, err := url.Parse(m.Witness.Endpoint); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		endpoint = m.Witness.Endpoint
	}
	return m.Witness.ID, endpoint, true
}

// validWitnessID reports whether id is a did:key of an Ed25519 key.
func validWitnessID(id string) bool {
	mk, ok := strings.CutPrefix(id, "did:key:")
	if !ok || len(id) > 128 || strings.ContainsAny(mk, "#/?") {
		return false
	}
	_, err := webvh.ParseMultikey(mk)
	return err == nil
}

// MemberWitnesses returns the witness ids of the commons as this cloud
// knows it: its own and every peer's, sorted and distinct.
func (f *Federation) MemberWitnesses(ctx context.Context) ([]string, error) {
	own, err := f.WitnessID()
	if err != nil {
		return nil, err
	}
	peers, err := f.Store.ListPeers(ctx)
	if err != nil {
		return nil, err
	}
	ids := []string{own}
	for _, p := range peers {
		if id, _, ok := p.Witness(); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// witnessNeeds returns, for each entry of res, the witness configuration
// that must witness it (nil: none), by the did:webvh rule: the
// configuration active before the entry, or the entry's own when none was
// active.
func witnessNeeds(res *webvh.Result) []*webvh.Witness {
	var active *webvh.Witness
	need := make([]*webvh.Witness, len(res.Entries))
	for i, e := range res.Entries {
		var p struct {
			Witness json.RawMessage `json:"witness"`
		}
		_ = json.Unmarshal(e.Parameters, &p) // the log verified: well formed
		n := active
		if len(p.Witness) > 0 {
			w := &webvh.Witness{}
			if string(p.Witness) != "null" {
				_ = json.Unmarshal(p.Witness, w)
			}
			if !active.Active() {
				n = w
			}
			active = w
		}
		if n.Active() {
			need[i] = n
		}
	}
	return need
}

// proofSet is a did-witness.json being built: per witness, its valid proof
// on the latest entry of the log it signed.
type proofSet struct {
	entries []webvh.Entry
	index   map[string]int // versionId -> entry index
	latest  map[string]witnessed
}

type witnessed struct {
	at    int // entry index
	proof json.RawMessage
}

func newProofSet(res *webvh.Result) *proofSet {
	s := &proofSet{entries: res.Entries, index: map[string]int{}, latest: map[string]witnessed{}}
	for i, e := range res.Entries {
		s.index[e.VersionID] = i
	}
	return s
}

// add keeps the valid proofs of records on the log's entries; when only is
// set, proofs by other witnesses are left out. It returns how many proofs
// were kept.
func (s *proofSet) add(records []webvh.WitnessProofs, only string) int {
	n := 0
	for _, r := range records {
		i, ok := s.index[r.VersionID]
		if !ok {
			continue
		}
		for _, raw := range r.Proof {
			id, err := webvh.VerifyWitnessProof(raw, r.VersionID)
			if err != nil || (only != "" && id != only) {
				continue
			}
			if old, seen := s.latest[id]; seen && old.at >= i {
				continue
			}
			s.latest[id] = witnessed{at: i, proof: slices.Clone(raw)}
			n++
		}
	}
	return n
}

// signed counts the witnesses of w with a proof on entry i or a later one.
func (s *proofSet) signed(w *webvh.Witness, i int) int {
	got := 0
	for _, m := range w.Witnesses {
		if p, ok := s.latest[m.ID]; ok && p.at >= i {
			got++
		}
	}
	return got
}

// unmet returns the first entry whose witness configuration in need is not
// met, or -1.
func (s *proofSet) unmet(need []*webvh.Witness) int {
	for i, w := range need {
		if w != nil && s.signed(w, i) < w.Threshold {
			return i
		}
	}
	return -1
}

// bytes returns did-witness.json: the records in log order, the proofs of
// one record by witness id.
func (s *proofSet) bytes() []byte {
	byEntry := map[int][]string{}
	for id, p := range s.latest {
		byEntry[p.at] = append(byEntry[p.at], id)
	}
	out := []webvh.WitnessProofs{}
	for i, e := range s.entries {
		ids := byEntry[i]
		if len(ids) == 0 {
			continue
		}
		slices.Sort(ids)
		r := webvh.WitnessProofs{VersionID: e.VersionID}
		for _, id := range ids {
			r.Proof = append(r.Proof, s.latest[id].proof)
		}
		out = append(out, r)
	}
	b, _ := json.Marshal(out)
	return b
}

// parseWitnessFile decodes did-witness.json within the did:webvh bounds;
// empty is no records.
func parseWitnessFile(raw []byte) ([]webvh.WitnessProofs, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if len(raw) > webvh.DefaultLimits.MaxWitnessBytes {
		return nil, fmt.Errorf("%w: did-witness.json is %d bytes, over %d", webvh.ErrTooLarge, len(raw), webvh.DefaultLimits.MaxWitnessBytes)
	}
	var records []webvh.WitnessProofs
	if err := json.Unmarshal(raw, &records); err != nil {
		return nil, fmt.Errorf("did-witness.json is not an array of {versionId, proof}: %v", err)
	}
	return records, nil
}

// CollectWitness collects the witness proofs that log's entries not yet
// witnessed need (see the top of this file), existing being the
// did-witness.json the log had so far, and returns the new
// did-witness.json, with which webvh.Verify reports the log witnessed. A
// witness that another entry won a version is an error wrapping
// ErrWitnessFork (ErrWitnessStale when it saw a longer log); a change only
// the person's key may make, identity.ErrPersonKeyRequired; too few proofs,
// ErrWitnessThreshold.
func (f *Federation) CollectWitness(ctx context.Context, log []byte, existing []byte) ([]byte, error) {
	l, err := webvh.Open(log, webvh.Options{Now: f.now})
	if err != nil {
		return nil, fmt.Errorf("collect witness proofs: %w", err)
	}
	res := l.Result()
	records, err := parseWitnessFile(existing)
	if err != nil {
		return nil, fmt.Errorf("collect witness proofs: %w", err)
	}
	set := newProofSet(res)
	set.add(records, "")
	need := witnessNeeds(res)
	first := set.unmet(need)
	if first < 0 {
		return set.bytes(), nil
	}
	var ids []string
	for _, w := range need[first:] {
		if w != nil {
			for _, m := range w.Witnesses {
				ids = append(ids, m.ID)
			}
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	own, err := f.WitnessID()
	if err != nil {
		return nil, fmt.Errorf("collect witness proofs: %w", err)
	}
	peers, err := f.Store.ListPeers(ctx)
	if err != nil {
		return nil, fmt.Errorf("collect witness proofs: %w", err)
	}
	byID := map[string]*Peer{}
	for _, p := range peers {
		if id, _, ok := p.Witness(); ok && id != own {
			byID[id] = p
		}
	}
	ask := func(ctx context.Context, id string) ([]webvh.WitnessProofs, error) {
		if id == own {
			ans, err := f.Witness(ctx, f.Issuer, l.Bytes())
			if err != nil {
				return nil, err
			}
			return ans.Proofs, nil
		}
		p := byID[id]
		if p == nil {
			return nil, fmt.Errorf("%w: no peer publishes this witness", ErrWitnessUnavailable)
		}
		return f.RequestWitness(ctx, p, l.Bytes())
	}
	var skipped []string
	done := -1
	for k, id := range ids {
		proofs, err := ask(ctx, id)
		switch {
		case errors.Is(err, ErrWitnessFork), errors.Is(err, ErrWitnessStale), errors.Is(err, identity.ErrPersonKeyRequired):
			f.log().WarnContext(ctx, "witness collection refused", "scid", res.Metadata.SCID, "version", res.Metadata.VersionID, "witness", id, "err", err)
			return nil, fmt.Errorf("collect witness proofs for %s: witness %s: %w", res.Metadata.VersionID, id, err)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("collect witness proofs for %s: %w", res.Metadata.VersionID, ctx.Err())
		case err != nil:
			skipped = append(skipped, fmt.Sprintf("%s: %v", id, err))
			f.log().InfoContext(ctx, "witness skipped", "scid", res.Metadata.SCID, "witness", id, "err", err)
			continue
		}
		if set.add(proofs, id) == 0 {
			skipped = append(skipped, id+": answered no valid proof")
			continue
		}
		if set.unmet(need) < 0 {
			done = k
			break
		}
	}
	if done < 0 {
		i := set.unmet(need)
		w := need[i]
		msg := fmt.Sprintf("%d of %d witnesses signed %s, %d needed", set.signed(w, i), len(w.Witnesses), res.Entries[i].VersionID, w.Threshold)
		if len(skipped) > 0 {
			if len(skipped) > 8 {
				skipped = append(skipped[:8], "…")
			}
			msg += " (" + strings.Join(skipped, "; ") + ")"
		}
		return nil, fmt.Errorf("collect witness proofs: %w: %s", ErrWitnessThreshold, msg)
	}
	// The threshold is met: the others too, best-effort.
	if rest := ids[done+1:]; len(rest) > 0 {
		rctx, cancel := context.WithTimeout(ctx, collectRestTimeout)
		var (
			mu sync.Mutex
			wg sync.WaitGroup
		)
		for _, id := range rest {
			wg.Add(1)
			go func() {
				defer wg.Done()
				proofs, err := ask(rctx, id)
				if err != nil {
					f.log().InfoContext(ctx, "witness not reached after the threshold", "scid", res.Metadata.SCID, "witness", id, "err", err)
					return
				}
				mu.Lock()
				set.add(proofs, id)
				mu.Unlock()
			}()
		}
		wg.Wait()
		cancel()
	}
	file := set.bytes()
	if _, err := webvh.Verify(l.Bytes(), webvh.Options{Now: f.now, Witness: func() ([]byte, error) { return file, nil }}); err != nil {
		return nil, fmt.Errorf("collect witness proofs: the collected proofs do not verify: %w", err)
	}
	return file, nil
}

// didLogs is where this cloud keeps the did:webvh logs it knows.
func (f *Federation) didLogs() identity.DIDLogStore {
	if s, ok := f.Store.(identity.DIDLogStore); ok {
		return s
	}
	if f.Accounts != nil && f.Accounts.DIDLogs != nil {
		return f.Accounts.DIDLogs
	}
	return nil
}

// ValidSCID reports whether s has the form of a did:webvh SCID: 46
// base58btc characters.
func ValidSCID(s string) bool {
	if len(s) != 46 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", c) {
			return false
		}
	}
	return true
}

// DIDAnswer is the answer of DIDsPath/{scid}.
type DIDAnswer struct {
	Log     string          `json:"log"`     // did.jsonl
	Witness json.RawMessage `json:"witness"` // did-witness.json: an array
}

// mountDIDs adds DIDsPath/{scid}.
func (f *Federation) mountDIDs(r chi.Router) {
	lim := &limits.Limits{Scale: 1}
	r.With(lim.PerIP(didsPerIP, time.Minute, true)).Get(DIDsPath+"/{scid}", f.serveDID)
}

// serveDID is GET /federation/v1/dids/{scid}.
func (f *Federation) serveDID(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	scid := chi.URLParam(r, "scid")
	if !ValidSCID(scid) {
		writeError(w, http.StatusBadRequest, "invalid_request", "not a did:webvh SCID")
		return
	}
	s := f.didLogs()
	if s == nil {
		writeError(w, http.StatusNotFound, "not_found", "no DID log of this SCID here")
		return
	}
	l, err := s.GetDIDLogBySCID(r.Context(), scid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no DID log of this SCID here")
		return
	case err != nil:
		f.log().ErrorContext(r.Context(), "DID log", "scid", scid, "err", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the DID log could not be read")
		return
	}
	witness := json.RawMessage("[]")
	if len(l.Witness) > 0 && json.Valid(l.Witness) && strings.HasPrefix(strings.TrimSpace(string(l.Witness)), "[") {
		witness = l.Witness
	}
	raw, err := json.Marshal(DIDAnswer{Log: string(l.Log), Witness: witness})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "server_error", "the DID log could not be encoded")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=30")
	w.WriteHeader(http.StatusOK)
	w.Write(raw)
}

// FetchDIDLog asks peer p for its copy of the log of scid (DIDsPath), read
// within the did:webvh bounds; an error wrapping webvh.ErrNotFound when it
// has none. The copy is not verified here.
func (f *Federation) FetchDIDLog(ctx context.Context, p *Peer, scid string) (log, witness []byte, err error) {
	if !ValidSCID(scid) {
		return nil, nil, fmt.Errorf("%q is not a SCID", scid)
	}
	ctx, cancel := context.WithTimeout(ctx, didFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base()+DIDsPath+"/"+scid, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client().Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("DID log from %s: %w", p.Issuer, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil, fmt.Errorf("DID log from %s: %w", p.Issuer, webvh.ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("DID log from %s: %s", p.Issuer, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, int64(maxDIDAnswer)+1))
	if err != nil {
		return nil, nil, fmt.Errorf("DID log from %s: %w", p.Issuer, err)
	}
	if len(raw) > maxDIDAnswer {
		return nil, nil, fmt.Errorf("DID log from %s: %w: the answer is over %d bytes", p.Issuer, webvh.ErrTooLarge, maxDIDAnswer)
	}
	var ans DIDAnswer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, nil, fmt.Errorf("DID log from %s: malformed answer: %v", p.Issuer, err)
	}
	if len(ans.Log) > webvh.DefaultLimits.MaxLogBytes || len(ans.Witness) > webvh.DefaultLimits.MaxWitnessBytes {
		return nil, nil, fmt.Errorf("DID log from %s: %w", p.Issuer, webvh.ErrTooLarge)
	}
	return []byte(ans.Log), ans.Witness, nil
}

// DIDLogCopy is one verified copy of a DID log.
type DIDLogCopy struct {
	From    string // the peer it came from; "" for this cloud's store
	Log     []byte
	Witness []byte // did-witness.json ("[]" when none)
	Result  *webvh.Result
}

// verifyCopy verifies a copy of the log of scid: every did:webvh rule with
// the witness threshold met, and rule 2 (identity.CheckAuthority).
func (f *Federation) verifyCopy(scid, from string, log, witness []byte) (*DIDLogCopy, error) {
	if len(witness) == 0 {
		witness = []byte("[]")
	}
	res, err := webvh.Verify(log, webvh.Options{Now: f.now, Witness: func() ([]byte, error) { return witness, nil }})
	if err != nil {
		return nil, err
	}
	if res.Metadata.SCID != scid {
		return nil, fmt.Errorf("%w: the log's SCID is %s", webvh.ErrDIDMismatch, res.Metadata.SCID)
	}
	if !res.Metadata.Witnessed {
		return nil, webvh.ErrWitness
	}
	if err := identity.CheckAuthority(res, 0); err != nil {
		return nil, err
	}
	return &DIDLogCopy{From: from, Log: log, Witness: witness, Result: res}, nil
}

// LatestDIDLog returns the best verified copy of the log of scid among
// this cloud's (its did_logs row) and its peers' (DIDsPath, asked a few at
// a time): each must verify with its witness threshold met and keep rule
// 2; the head by identity.PreferLog wins. An error wrapping
// webvh.ErrNotFound when no copy verifies; the refusals are logged.
func (f *Federation) LatestDIDLog(ctx context.Context, scid string) (*DIDLogCopy, error) {
	if !ValidSCID(scid) {
		return nil, fmt.Errorf("%q is not a SCID: %w", scid, webvh.ErrNotFound)
	}
	var (
		mu    sync.Mutex
		best  *DIDLogCopy
		notes []string
	)
	consider := func(from string, log, witness []byte) {
		c, err := f.verifyCopy(scid, from, log, witness)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			where := from
			if where == "" {
				where = "this cloud"
			}
			notes = append(notes, where+": "+err.Error())
			f.log().WarnContext(ctx, "a copy of a DID log was refused", "scid", scid, "from", where, "err", err)
			return
		}
		if best == nil || identity.PreferLog(c.Result, best.Result) > 0 {
			best = c
		}
	}
	if s := f.didLogs(); s != nil {
		l, err := s.GetDIDLogBySCID(ctx, scid)
		switch {
		case err == nil:
			consider("", l.Log, l.Witness)
		case !errors.Is(err, store.ErrNotFound):
			notes = append(notes, "this cloud: "+err.Error())
		}
	}
	peers, err := f.Store.ListPeers(ctx)
	if err != nil {
		return nil, err
	}
	sem := make(chan struct{}, didFetchParallel)
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			log, witness, err := f.FetchDIDLog(ctx, p, scid)
			if err != nil {
				if !errors.Is(err, webvh.ErrNotFound) {
					mu.Lock()
					notes = append(notes, err.Error())
					mu.Unlock()
				}
				return
			}
			consider(p.Issuer, log, witness)
		}()
	}
	wg.Wait()
	if best == nil {
		msg := "no copy here or at a peer"
		if len(notes) > 0 {
			if len(notes) > 4 {
				notes = append(notes[:4], "…")
			}
			msg = strings.Join(notes, "; ")
		}
		return nil, fmt.Errorf("DID log %s: %w: %s", scid, webvh.ErrNotFound, msg)
	}
	return best, nil
}
