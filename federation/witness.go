package federation

// Witnessing did:webvh logs.
//
// Every cloud is a did:webvh witness for its peers. Its witness key is an
// Ed25519 key first derived from the cloud's key-encryption key with
// HKDF-SHA256 (info WitnessKeyInfo), then stored sealed in meta so that it
// stays the same across restarts and key-encryption key rotations; its did:key is the cloud's witness id, published in
// discovery as
//
//	"federation_witness": {"id": "did:key:z6Mk…", "endpoint": ISSUER/federation/v1/witness}
//
// A peer asks for witness proofs on a DID log before its witness threshold
// is met:
//
//	POST /federation/v1/witness             (peer token, as /events)
//	Content-Type: application/jsonl         (or text/jsonl)
//	<did.jsonl, at most webvh.DefaultLimits.MaxLogBytes>
//	→ 200 {"witness": "did:key:…", "proofs": [{"versionId": …, "proof": [ … ]}, …]}
//
// The proofs are did-witness.json records: one eddsa-jcs-2022 proof by the
// witness did:key over {"versionId": …} for each entry not witnessed
// before (for the last entry when the log is the one witnessed before).
//
// Rules, per log SCID, against the log this cloud witnessed before (the
// witnessed_logs table holds its longest log):
//
//   - The log must verify as did:webvh (webvh.Open: every check but the
//     witness threshold, which the proofs asked for are to meet). A log
//     that does not is 400 invalid_log with the verifier's reason; one over
//     a webvh bound is 413.
//   - Its new entries must keep rule 2 (identity.CheckAuthority): an
//     entry signed by the custodial key alone that makes a change only the
//     person's key may make is 409 {"error": "unauthorized_change"},
//     logged at warn, and nothing is stored.
//   - Its entries must extend the witnessed log entry for entry (the same
//     versionId at every version witnessed). A different entry at a
//     version already witnessed is a fork: 409 {"error": "fork"}, logged at
//     warn, and nothing is stored. The controller, or a thief of its update
//     key, tried to rewrite history.
//   - A log shorter than the witnessed one is 409 {"error": "stale"}: the
//     witness has already seen later entries.
//   - A peer has at most MaxWitnessedPerPeer SCIDs witnessed (counted
//     by the peer that first asked for each); a new one over it is 403.
//     This cloud's own logs (CollectWitness, in-process) are not counted.
//   - Otherwise the new log becomes the witnessed head (a compare-and-swap
//     on the previous head, so two requests racing cannot both extend it
//     differently) and the proofs are answered.
//
// Federation.RequestWitness is the asking side, through the guarded client.
import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/store"
)

// WitnessPath is the route of the witness endpoint.
const WitnessPath = "/federation/v1/witness"

// WitnessKeyInfo is the HKDF info from which the witness key is derived.
const WitnessKeyInfo = keys.WitnessKeyInfo

const (
	// witnessTimeout bounds a request to a peer's witness.
	witnessTimeout = 15 * time.Second
	// maxWitnessAnswer bounds the answer read from a peer's witness.
	maxWitnessAnswer = 2 << 20
	// MaxWitnessedPerPeer bounds the SCIDs one peer has this cloud
	// witness (each log is at most webvh.DefaultLimits.MaxLogBytes).
	MaxWitnessedPerPeer = 10000
	// witnessRetries bounds the compare-and-swap attempts of one request.
	witnessRetries = 3
)

// Errors of the witness (Federation.Witness, Federation.RequestWitness).
var (
	// ErrWitnessFork: the log has a different entry at a version already
	// witnessed.
	ErrWitnessFork = errors.New("the log forks the log witnessed before")
	// ErrWitnessStale: the log is older than the one witnessed before.
	ErrWitnessStale = errors.New("the log is older than the one witnessed before")
	// ErrWitnessRefused: the witness refused the log for another reason.
	ErrWitnessRefused = errors.New("the witness refused the log")
	// ErrWitnessUnavailable: the witness could not be asked.
	ErrWitnessUnavailable = errors.New("the witness cannot be reached")
)

// WitnessedLog is the longest log witnessed for one SCID.
type WitnessedLog struct {
	SCID          string
	DID           string // state.id of the last entry
	VersionNumber int
	VersionID     string
	EntryHash     string // the hash part of VersionID
	Log           []byte
	Peer          string // the cloud that first asked for this SCID
	UpdatedAt     time.Time
}

// WitnessStore keeps the witnessed logs.
type WitnessStore interface {
	// WitnessedLog returns the head witnessed for scid, or store.ErrNotFound.
	WitnessedLog(ctx context.Context, scid string) (*WitnessedLog, error)
	// CountWitnessedLogs returns how many SCIDs peer first asked for.
	CountWitnessedLogs(ctx context.Context, peer string) (int, error)
	// PutWitnessedLog stores l as the head of its SCID when the stored head
	// is still prevVersionID ("": none stored); false when another head was
	// stored in between, and then nothing is stored.
	PutWitnessedLog(ctx context.Context, l *WitnessedLog, prevVersionID string) (bool, error)
}

// WitnessAnswer is the answer of the witness endpoint.
type WitnessAnswer struct {
	Witness string                `json:"witness"` // the witness did:key
	Proofs  []webvh.WitnessProofs `json:"proofs"`
}

// WitnessService is the discovery entry federation_witness.
type WitnessService struct {
	ID       string `json:"id"`
	Endpoint string `json:"endpoint"`
}

// WitnessKey is this cloud's witness key: the seed stored sealed in meta
// (first derived from the key-encryption key, so rotating that key keeps
// the witness id), see keys.KEK.WitnessSeed.
func (f *Federation) WitnessKey() (ed25519.PrivateKey, error) {
	if f.Keys == nil || f.Keys.KEK == nil {
		return nil, errors.New("witness key: no key-encryption key")
	}
	seed, err := f.Keys.KEK.WitnessSeed()
	if err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// WitnessID is this cloud's witness id: the did:key of its witness key, as
// listed in a log's witness parameter.
func (f *Federation) WitnessID() (string, error) {
	k, err := f.WitnessKey()
	if err != nil {
		return "", err
	}
	return "did:key:" + webvh.Multikey(k.Public().(ed25519.PublicKey)), nil
}

// WitnessService returns the discovery entry of this cloud's witness; nil
// when it has no witness key.
func (f *Federation) WitnessService() *WitnessService {
	id, err := f.WitnessID()
	if err != nil {
		f.log().Error("witness", "err", err)
		return nil
	}
	return &WitnessService{ID: id, Endpoint: f.Issuer + WitnessPath}
}

// witnessError is a refusal of the witness endpoint.
type witnessError struct {
	status int
	code   string
	err    error
}

func (e *witnessError) Error() string { return e.err.Error() }
func (e *witnessError) Unwrap() error { return e.err }

// Witness checks a log against the one witnessed before for its SCID (see
// the rules above), stores it as the new head and returns the proofs for
// its new entries. A refusal is a *witnessError wrapping ErrWitnessFork,
// ErrWitnessStale, identity.ErrPersonKeyRequired or the webvh error. peer names the asker in the log.
func (f *Federation) Witness(ctx context.Context, peer string, log []byte) (*WitnessAnswer, error) {
	key, err := f.WitnessKey()
	if err != nil {
		return nil, err
	}
	l, err := webvh.Open(log, webvh.Options{Now: f.now})
	if err != nil {
		status, code := http.StatusBadRequest, "invalid_log"
		if errors.Is(err, webvh.ErrTooLarge) {
			status, code = http.StatusRequestEntityTooLarge, "too_large"
		}
		return nil, &witnessError{status, code, err}
	}
	res := l.Result()
	entries, scid := res.Entries, res.Metadata.SCID
	for range witnessRetries {
		old, err := f.Store.WitnessedLog(ctx, scid)
		prevID, known := "", 0
		switch {
		case errors.Is(err, store.ErrNotFound) && peer == f.Issuer:
			// This cloud's own accounts (CollectWitness): bounded by them.
		case errors.Is(err, store.ErrNotFound):
			n, err := f.Store.CountWitnessedLogs(ctx, peer)
			if err != nil {
				return nil, err
			}
			if n >= MaxWitnessedPerPeer {
				return nil, &witnessError{http.StatusForbidden, "access_denied", fmt.Errorf("%w: this cloud witnesses at most %d DID logs for one peer", ErrWitnessRefused, MaxWitnessedPerPeer)}
			}
		case err != nil:
			return nil, err
		default:
			ol, err := webvh.Open(old.Log, webvh.Options{Now: f.now})
			if err != nil {
				return nil, fmt.Errorf("the log witnessed for %s no longer verifies: %w", scid, err)
			}
			oe := ol.Result().Entries
			for i := range min(len(oe), len(entries)) {
				if oe[i].VersionID != entries[i].VersionID {
					f.log().WarnContext(ctx, "witness: refused a forked DID log", "peer", peer, "scid", scid, "did", res.DID,
						"version", i+1, "witnessed", oe[i].VersionID, "offered", entries[i].VersionID)
					return nil, &witnessError{http.StatusConflict, "fork", fmt.Errorf("%w: entry %d is %s, the witnessed entry %d is %s",
						ErrWitnessFork, i+1, entries[i].VersionID, i+1, oe[i].VersionID)}
				}
			}
			if len(entries) < len(oe) {
				return nil, &witnessError{http.StatusConflict, "stale", fmt.Errorf("%w: it ends at version %d, version %d (%s) was witnessed",
					ErrWitnessStale, len(entries), len(oe), old.VersionID)}
			}
			prevID, known = old.VersionID, len(oe)
		}
		if known < len(entries) {
			// Rule 2: a change only the person's key may make, signed by
			// the custodial key alone, is not witnessed.
			if err := identity.CheckAuthority(res, known); err != nil {
				f.log().WarnContext(ctx, "witness: refused an unauthorized change of a DID log", "peer", peer, "scid", scid, "did", res.DID, "err", err)
				return nil, &witnessError{http.StatusConflict, "unauthorized_change", fmt.Errorf("%w: %w", ErrWitnessRefused, err)}
			}
		}
		last := entries[len(entries)-1]
		if known == len(entries) {
			known-- // the same log again: prove its last entry
		} else {
			_, hash, _ := strings.Cut(last.VersionID, "-")
			ok, err := f.Store.PutWitnessedLog(ctx, &WitnessedLog{SCID: scid, DID: res.DID, VersionNumber: last.VersionNumber,
				VersionID: last.VersionID, EntryHash: hash, Log: l.Bytes(), Peer: peer, UpdatedAt: f.now()}, prevID)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue // another request moved the head: check again
			}
		}
		now := f.now()
		ans := &WitnessAnswer{Witness: "did:key:" + webvh.Multikey(key.Public().(ed25519.PublicKey))}
		for _, e := range entries[known:] {
			p, err := webvh.WitnessProof(key, e.VersionID, now)
			if err != nil {
				return nil, err
			}
			ans.Proofs = append(ans.Proofs, webvh.WitnessProofs{VersionID: e.VersionID, Proof: []json.RawMessage{p}})
		}
		return ans, nil
	}
	return nil, &witnessError{http.StatusConflict, "conflict", errors.New("the witnessed log of this DID kept changing; ask again")}
}

// witnessBurst and witnessRate bound the logs one peer has verified here
// (each up to the webvh limits): a burst, then a few a second.
const (
	witnessBurst = 30
	witnessRate  = 2
)

// serveWitness is POST /federation/v1/witness.
func (f *Federation) serveWitness(w http.ResponseWriter, r *http.Request) {
	p, ok := f.authorize(w, r)
	if !ok {
		return
	}
	if ok, wait := f.witnessLimit.allowWith(p.Issuer, f.now(), witnessBurst, witnessRate); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		writeError(w, http.StatusTooManyRequests, "slow_down", fmt.Sprintf("a peer asks for at most %d witness proofs a second", witnessRate))
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || (mt != "application/jsonl" && mt != "text/jsonl") {
		writeError(w, http.StatusUnsupportedMediaType, "invalid_request", "the body must be a did:webvh log (did.jsonl) sent as application/jsonl")
		return
	}
	limit := webvh.DefaultLimits.MaxLogBytes
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a DID log is at most %d bytes", limit))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid_request", "the body could not be read")
		return
	}
	ans, err := f.Witness(r.Context(), p.Issuer, body)
	var we *witnessError
	if errors.As(err, &we) {
		writeError(w, we.status, we.code, we.err.Error())
		return
	}
	if err != nil {
		f.log().ErrorContext(r.Context(), "witness endpoint", "peer", p.Issuer, "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "the log could not be witnessed")
		return
	}
	f.log().InfoContext(r.Context(), "witnessed a DID log", "peer", p.Issuer, "versions", len(ans.Proofs))
	writeJSON(w, http.StatusOK, ans)
}

// RequestWitness asks the peer p to witness log and returns its proofs
// (did-witness.json records). A fork or a stale log is ErrWitnessFork or
// ErrWitnessStale; another refusal ErrWitnessRefused (with
// identity.ErrPersonKeyRequired for an unauthorized change); a peer that
// cannot be asked ErrWitnessUnavailable.
func (f *Federation) RequestWitness(ctx context.Context, p *Peer, log []byte) ([]webvh.WitnessProofs, error) {
	ctx, cancel := context.WithTimeout(ctx, witnessTimeout)
	defer cancel()
	tok, err := f.PeerToken(ctx, p.Issuer)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base()+WitnessPath, bytes.NewReader(log))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWitnessUnavailable, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/jsonl")
	resp, err := f.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrWitnessUnavailable, p.Issuer, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxWitnessAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrWitnessUnavailable, p.Issuer, err)
	}
	if len(raw) > maxWitnessAnswer {
		return nil, fmt.Errorf("%w: %s answered over %d bytes", ErrWitnessUnavailable, p.Issuer, maxWitnessAnswer)
	}
	if resp.StatusCode == http.StatusOK {
		var ans WitnessAnswer
		if err := json.Unmarshal(raw, &ans); err != nil || len(ans.Proofs) == 0 {
			return nil, fmt.Errorf("%w: %s answered no witness proofs", ErrWitnessUnavailable, p.Issuer)
		}
		return ans.Proofs, nil
	}
	var out struct {
		Code string `json:"error"`
		Desc string `json:"error_description"`
	}
	json.Unmarshal(raw, &out)
	switch {
	case resp.StatusCode == http.StatusConflict && out.Code == "fork":
		return nil, fmt.Errorf("%w: %s: %s", ErrWitnessFork, p.Issuer, out.Desc)
	case resp.StatusCode == http.StatusConflict && out.Code == "stale":
		return nil, fmt.Errorf("%w: %s: %s", ErrWitnessStale, p.Issuer, out.Desc)
	case resp.StatusCode == http.StatusConflict && out.Code == "unauthorized_change":
		return nil, fmt.Errorf("%w: %s: %w: %s", ErrWitnessRefused, p.Issuer, identity.ErrPersonKeyRequired, out.Desc)
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return nil, fmt.Errorf("%w: %s answered %s %s: %s", ErrWitnessRefused, p.Issuer, resp.Status, out.Code, out.Desc)
	}
	return nil, fmt.Errorf("%w: %s answered %s %s", ErrWitnessUnavailable, p.Issuer, resp.Status, out.Code)
}
