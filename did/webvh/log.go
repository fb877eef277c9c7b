package webvh

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gowebpki/jcs"
)

// Refusals. Every error of [Verify] wraps exactly one of these.
var (
	ErrInvalidDID   = errors.New("invalid did:webvh DID")
	ErrTooLarge     = errors.New("did:webvh log over a limit")
	ErrMalformed    = errors.New("malformed did:webvh log entry")
	ErrVersionID    = errors.New("bad versionId")
	ErrEntryHash    = errors.New("entry hash does not match")
	ErrVersionTime  = errors.New("bad versionTime")
	ErrParameters   = errors.New("invalid parameters")
	ErrSCID         = errors.New("SCID does not verify")
	ErrState        = errors.New("invalid DID document state")
	ErrProof        = errors.New("invalid proof")
	ErrUnauthorized = errors.New("proof not made by an authorized update key")
	ErrPreRotation  = errors.New("pre-rotation commitment broken")
	ErrPortable     = errors.New("move not allowed")
	ErrDeactivated  = errors.New("DID is deactivated")
	ErrWitness      = errors.New("witness threshold not met")
	ErrDIDMismatch  = errors.New("log does not belong to the DID")
)

// Limits bound what a log may make a verifier hold.
type Limits struct {
	MaxLogBytes     int // whole did.jsonl
	MaxEntries      int
	MaxLineBytes    int // one entry
	MaxDepth        int // JSON nesting of one entry
	MaxWitnessBytes int // whole did-witness.json
	MaxWitnessProof int // proofs in did-witness.json, all versions together
}

// DefaultLimits are used where Options.Limits is zero.
var DefaultLimits = Limits{
	MaxLogBytes:     1 << 20,
	MaxEntries:      1000,
	MaxLineBytes:    128 << 10,
	MaxDepth:        32,
	MaxWitnessBytes: 256 << 10,
	MaxWitnessProof: 512,
}

// DefaultMaxClockSkew is how far in the future a versionTime may be.
const DefaultMaxClockSkew = 2 * time.Minute

// maxProofs bounds the proofs of one log entry.
const maxProofs = 8

// Options control [Verify].
type Options struct {
	// DID, when set, is the DID being resolved: its SCID must be the log's
	// and some entry's state.id must equal it.
	DID string
	// Witness returns the did-witness.json content. It is called only
	// after every other check has passed, and only when some entry must be
	// witnessed; nil then means the proofs are unavailable.
	Witness func() ([]byte, error)
	// Now is the verifier's clock; nil means time.Now.
	Now func() time.Time
	// MaxClockSkew is the tolerance for versionTime in the future; zero
	// means DefaultMaxClockSkew.
	MaxClockSkew time.Duration
	// Limits; the zero value means DefaultLimits.
	Limits Limits
	// AllowInvalidTail keeps the valid entries before the first entry that
	// fails (Result.Invalid then holds the refusal) instead of refusing the
	// log, so that earlier versions can still be resolved by versionId,
	// versionNumber or versionTime. A failing first entry is always refused.
	AllowInvalidTail bool
}

// Entry is one verified log entry.
type Entry struct {
	VersionID     string
	VersionNumber int
	VersionTime   time.Time
	// Parameters and State are the entry's JSON as published.
	Parameters json.RawMessage
	State      json.RawMessage
	// DID is state.id.
	DID string
	// Line is the entry's line of did.jsonl, without the newline.
	Line []byte
	// Signers are the update keys (multikeys) whose proofs the entry
	// carries, in proof order, each verified and authorized.
	Signers []string
	// UpdateKeys, NextKeyHashes, Portable and Deactivated are the
	// parameters in effect after this entry.
	UpdateKeys    []string
	NextKeyHashes []string
	Portable      bool
	Deactivated   bool
}

// Metadata is the DID document metadata of a resolution (as the
// specification's Read section lists it), after the last entry.
type Metadata struct {
	VersionID     string
	VersionNumber int
	VersionTime   time.Time
	Created       time.Time
	Updated       time.Time
	SCID          string
	Portable      bool
	Deactivated   bool
	TTL           int64
	UpdateKeys    []string
	NextKeyHashes []string
	// Witness is the configuration active for the next entry; nil when none.
	Witness  *Witness
	Watchers []string
	// Witnessed reports that every entry that had to be witnessed met its
	// threshold (true too when no entry had to be).
	Witnessed bool
}

// Result is a verified log.
type Result struct {
	// DID is the current DID (state.id of the last entry).
	DID string
	// Document is the current DID document, as published in the log.
	Document json.RawMessage
	Metadata Metadata
	// Entries are the verified entries, oldest first.
	Entries []Entry
	// Invalid is why the entries after Entries were refused; it is set only
	// with Options.AllowInvalidTail. The current DID must then not be
	// resolved: only the versions in Entries may.
	Invalid error
}

// Version returns the entry with the given versionId.
func (r *Result) Version(versionID string) (*Entry, bool) {
	for i := range r.Entries {
		if r.Entries[i].VersionID == versionID {
			return &r.Entries[i], true
		}
	}
	return nil, false
}

// At returns the entry that was current at t: the last one whose
// versionTime is not after t.
func (r *Result) At(t time.Time) (*Entry, bool) {
	var e *Entry
	for i := range r.Entries {
		if r.Entries[i].VersionTime.After(t) {
			break
		}
		e = &r.Entries[i]
	}
	return e, e != nil
}

// state is what verification carries from one entry to the next.
type state struct {
	scid          string
	did           string
	updateKeys    []string
	nextKeyHashes []string
	witness       *Witness
	watchers      []string
	portable      bool
	deactivated   bool
	ttl           int64
	versionID     string
	versionNumber int
	versionTime   time.Time
}

func (o *Options) limits() Limits {
	if o.Limits == (Limits{}) {
		return DefaultLimits
	}
	return o.Limits
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Verify checks a did:webvh log (the bytes of did.jsonl) against every rule
// of the specification (see the package documentation) and returns the
// resolved DID. A log that breaks any rule is refused as a whole.
func Verify(log []byte, opts Options) (*Result, error) {
	l, err := verifyLog(log, opts, false)
	if err != nil {
		return nil, err
	}
	return l.res, nil
}

// verifyLog verifies a log; with skipWitness the witness proofs are not
// consulted (a controller collects them after making an entry).
func verifyLog(log []byte, opts Options, skipWitness bool) (*Log, error) {
	lim := opts.limits()
	var want *Identifier
	if opts.DID != "" {
		var err error
		if want, err = ParseDID(opts.DID); err != nil {
			return nil, err
		}
	}
	lines, err := splitLines(bytes.Clone(log), lim)
	if err != nil {
		return nil, err
	}
	skew := opts.MaxClockSkew
	if skew == 0 {
		skew = DefaultMaxClockSkew
	}
	latest := opts.now().Add(skew)
	var (
		st      *state
		states  []*state // states[i] is the state after entry i
		entries []Entry
		// witnessedBy[i] is the witness configuration entry i needs.
		witnessedBy []*Witness
		invalid     error
	)
	for i, line := range lines {
		e, next, need, err := verifyEntry(st, line, latest, lim)
		if err == nil && i == 0 && want != nil && next.scid != want.SCID {
			err = fmt.Errorf("%w: the log's SCID is %s, resolving %s", ErrDIDMismatch, next.scid, opts.DID)
		}
		if err != nil {
			err = fmt.Errorf("entry %d: %w", i+1, err)
			if !opts.AllowInvalidTail || i == 0 {
				return nil, err
			}
			invalid = err
			break
		}
		entries = append(entries, *e)
		witnessedBy = append(witnessedBy, need)
		st = next
		states = append(states, st)
	}
	witnessed := false
	if !skipWitness {
		failed, err := checkWitnesses(entries, witnessedBy, opts, lim)
		switch {
		case err == nil:
			witnessed = true
		case failed <= 0 || !opts.AllowInvalidTail:
			return nil, err
		default:
			invalid, entries, st = err, entries[:failed], states[failed-1]
			witnessed = true
		}
	}
	if want != nil && !slices.ContainsFunc(entries, func(e Entry) bool { return e.DID == opts.DID }) {
		return nil, fmt.Errorf("%w: no entry's state.id is %s", ErrDIDMismatch, opts.DID)
	}
	last := entries[len(entries)-1]
	md := Metadata{
		VersionID:     last.VersionID,
		VersionNumber: last.VersionNumber,
		VersionTime:   last.VersionTime,
		Created:       entries[0].VersionTime,
		Updated:       last.VersionTime,
		SCID:          st.scid,
		Portable:      st.portable,
		Deactivated:   st.deactivated,
		TTL:           st.ttl,
		UpdateKeys:    st.updateKeys,
		NextKeyHashes: st.nextKeyHashes,
		Watchers:      st.watchers,
		Witnessed:     witnessed,
	}
	if st.witness.Active() {
		md.Witness = st.witness
	}
	return &Log{
		lines: lines[:len(entries)],
		res:   &Result{DID: last.DID, Document: last.State, Metadata: md, Entries: entries, Invalid: invalid},
		st:    st,
	}, nil
}

// splitLines bounds the log and cuts it into entries.
func splitLines(log []byte, lim Limits) ([][]byte, error) {
	if len(log) > lim.MaxLogBytes {
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrTooLarge, len(log), lim.MaxLogBytes)
	}
	log = bytes.TrimSuffix(log, []byte("\n"))
	if len(log) == 0 {
		return nil, fmt.Errorf("%w: the log is empty", ErrMalformed)
	}
	if n := bytes.Count(log, []byte("\n")) + 1; n > lim.MaxEntries {
		return nil, fmt.Errorf("%w: %d entries, over %d", ErrTooLarge, n, lim.MaxEntries)
	}
	lines := bytes.Split(log, []byte("\n"))
	for i, l := range lines {
		if len(l) > lim.MaxLineBytes {
			return nil, fmt.Errorf("entry %d: %w: %d bytes, over %d", i+1, ErrTooLarge, len(l), lim.MaxLineBytes)
		}
		if len(bytes.TrimSpace(l)) == 0 {
			return nil, fmt.Errorf("entry %d: %w: blank line", i+1, ErrMalformed)
		}
	}
	return lines, nil
}

// depthOK reports whether the JSON text b nests at most max levels.
func depthOK(b []byte, max int) bool {
	depth, inStr, esc := 0, false, false
	for _, c := range b {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				return false
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return true
}

// entryFields are the members of a log entry.
var entryFields = []string{"versionId", "versionTime", "parameters", "state", "proof"}

// decodeEntry parses one line strictly: valid JSON with no duplicate keys,
// bounded nesting, exactly the entry members.
func decodeEntry(line []byte, lim Limits) (map[string]json.RawMessage, error) {
	if !depthOK(line, lim.MaxDepth) {
		return nil, fmt.Errorf("%w: JSON nested deeper than %d", ErrTooLarge, lim.MaxDepth)
	}
	// JCS parses strictly and refuses duplicate member names, which
	// encoding/json would silently resolve to the last one.
	if _, err := jcs.Transform(line); err != nil {
		return nil, fmt.Errorf("%w: not valid JSON: %v", ErrMalformed, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	for k := range m {
		if !slices.Contains(entryFields, k) {
			return nil, fmt.Errorf("%w: unknown member %q", ErrMalformed, k)
		}
	}
	for _, k := range entryFields {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("%w: no %q", ErrMalformed, k)
		}
	}
	return m, nil
}

// stringField decodes a JSON string member.
func stringField(m map[string]json.RawMessage, k string) (string, error) {
	var s string
	if err := json.Unmarshal(m[k], &s); err != nil {
		return "", fmt.Errorf("%w: %s is not a string", ErrMalformed, k)
	}
	return s, nil
}

// proofs decodes the proof member: one proof object or a non-empty array.
func proofs(raw json.RawMessage) ([]*Proof, error) {
	var list []json.RawMessage
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
		list = []json.RawMessage{raw}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%w: proof is neither an object nor an array", ErrProof)
	}
	if len(list) == 0 || len(list) > maxProofs {
		return nil, fmt.Errorf("%w: %d proofs (1 to %d allowed)", ErrProof, len(list), maxProofs)
	}
	out := make([]*Proof, 0, len(list))
	for _, r := range list {
		p, err := parseProof(r)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrProof, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// parseVersionID splits "N-hash".
func parseVersionID(s string) (int, string, error) {
	num, hash, ok := strings.Cut(s, "-")
	if !ok || strings.Contains(hash, "-") {
		return 0, "", fmt.Errorf("%w: %.80q is not {number}-{entryHash}", ErrVersionID, s)
	}
	if num == "" || len(num) > 9 || strings.Trim(num, "0123456789") != "" || num[0] == '0' {
		return 0, "", fmt.Errorf("%w: %.80q: version number is not a positive decimal integer", ErrVersionID, s)
	}
	n, _ := strconv.Atoi(num)
	if err := checkHashString(hash); err != nil {
		return 0, "", fmt.Errorf("%w: %.80q: entryHash: %v", ErrVersionID, s, err)
	}
	return n, hash, nil
}

// hashInput returns the entry without its proof and with versionId set,
// as a member map.
func withoutProof(m map[string]json.RawMessage, versionID string) map[string]json.RawMessage {
	v, _ := json.Marshal(versionID)
	return map[string]json.RawMessage{
		"versionId":   v,
		"versionTime": m["versionTime"],
		"parameters":  m["parameters"],
		"state":       m["state"],
	}
}

// entryHash returns base58btc(multihash(JCS(entry without proof, versionId = prev))).
func entryHash(m map[string]json.RawMessage, prev string) (string, error) {
	c, err := canonical(withoutProof(m, prev))
	if err != nil {
		return "", err
	}
	return hashString(c), nil
}

// computeSCID returns the SCID of a first entry whose SCID occurrences are
// the placeholder: base58btc(multihash(JCS(entry, versionId "{SCID}"))).
func computeSCID(prelim map[string]json.RawMessage) (string, error) {
	c, err := canonical(withoutProof(prelim, scidPlaceholder))
	if err != nil {
		return "", err
	}
	return hashString(c), nil
}

const scidPlaceholder = "{SCID}"

// verifySCID recomputes the SCID of a first entry.
func verifySCID(m map[string]json.RawMessage, scid string) error {
	b, err := json.Marshal(withoutProof(m, scidPlaceholder))
	if err != nil {
		return err
	}
	var prelim map[string]json.RawMessage
	if err := json.Unmarshal(bytes.ReplaceAll(b, []byte(scid), []byte(scidPlaceholder)), &prelim); err != nil {
		return err
	}
	got, err := computeSCID(prelim)
	if err != nil {
		return err
	}
	if got != scid {
		return fmt.Errorf("%w: computed %s, parameters.scid is %s", ErrSCID, got, scid)
	}
	return nil
}

// verifyEntry checks one entry against the state after the previous one
// (nil for the first) and returns the entry, the new state, and the witness
// configuration that must witness this entry (nil if none).
func verifyEntry(prev *state, line []byte, latest time.Time, lim Limits) (*Entry, *state, *Witness, error) {
	m, err := decodeEntry(line, lim)
	if err != nil {
		return nil, nil, nil, err
	}
	first := prev == nil
	if prev != nil && prev.deactivated {
		return nil, nil, nil, fmt.Errorf("%w: no entry may follow deactivation", ErrDeactivated)
	}

	// versionId: numbering and form.
	vid, err := stringField(m, "versionId")
	if err != nil {
		return nil, nil, nil, err
	}
	num, hash, err := parseVersionID(vid)
	if err != nil {
		return nil, nil, nil, err
	}
	wantNum := 1
	if !first {
		wantNum = prev.versionNumber + 1
	}
	if num != wantNum {
		return nil, nil, nil, fmt.Errorf("%w: version number %d, want %d", ErrVersionID, num, wantNum)
	}

	// versionTime.
	vts, err := stringField(m, "versionTime")
	if err != nil {
		return nil, nil, nil, err
	}
	vt, err := parseUTC(vts)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrVersionTime, err)
	}
	if !first && !vt.After(prev.versionTime) {
		return nil, nil, nil, fmt.Errorf("%w: %s is not after the previous entry's %s", ErrVersionTime, vts, prev.versionTime.Format(time.RFC3339))
	}
	if vt.After(latest) {
		return nil, nil, nil, fmt.Errorf("%w: %s is in the future", ErrVersionTime, vts)
	}

	// parameters.
	p, err := parseParams(m["parameters"])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrParameters, err)
	}
	next, need, err := applyParams(prev, p)
	if err != nil {
		return nil, nil, nil, err
	}

	// SCID (first entry) and the entry hash chain.
	prevVID := next.scid
	if first {
		if err := verifySCID(m, next.scid); err != nil {
			if !errors.Is(err, ErrSCID) {
				err = fmt.Errorf("%w: %v", ErrMalformed, err)
			}
			return nil, nil, nil, err
		}
	} else {
		prevVID = prev.versionID
	}
	got, err := entryHash(m, prevVID)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if got != hash {
		return nil, nil, nil, fmt.Errorf("%w: versionId %s, computed %s", ErrEntryHash, vid, got)
	}

	// state.
	did, err := checkState(prev, next, m["state"])
	if err != nil {
		return nil, nil, nil, err
	}
	next.did = did

	// proofs, by the active update keys.
	active := next.updateKeys
	if !first && len(prev.nextKeyHashes) == 0 {
		active = prev.updateKeys
	}
	ps, err := proofs(m["proof"])
	if err != nil {
		return nil, nil, nil, err
	}
	doc := withoutProof(m, vid)
	signers := make([]string, 0, len(ps))
	for _, pr := range ps {
		mk, err := verifyProof(doc, pr)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: %v", ErrProof, err)
		}
		if !slices.Contains(active, mk) {
			return nil, nil, nil, fmt.Errorf("%w: %s is not among the active updateKeys", ErrUnauthorized, mk)
		}
		signers = append(signers, mk)
	}

	next.versionID, next.versionNumber, next.versionTime = vid, num, vt
	return &Entry{
		VersionID:     vid,
		VersionNumber: num,
		VersionTime:   vt,
		Parameters:    m["parameters"],
		State:         m["state"],
		DID:           did,
		Line:          line,
		Signers:       signers,
		UpdateKeys:    next.updateKeys,
		NextKeyHashes: next.nextKeyHashes,
		Portable:      next.portable,
		Deactivated:   next.deactivated,
	}, next, need, nil
}

// applyParams applies one entry's parameters to the previous state and
// returns the new state and the witness configuration for this entry.
func applyParams(prev *state, p *params) (*state, *Witness, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrParameters, fmt.Sprintf(format, a...))
	}
	var next state
	if prev == nil {
		if p.Method == nil {
			return nil, nil, bad("the first entry must set method")
		}
		if p.SCID == nil {
			return nil, nil, bad("the first entry must set scid")
		}
		if checkHashString(*p.SCID) != nil || !isSCID(*p.SCID) {
			return nil, nil, fmt.Errorf("%w: scid %q is not a base58btc SHA-256 multihash", ErrSCID, *p.SCID)
		}
		if p.UpdateKeys == nil || len(*p.UpdateKeys) == 0 {
			return nil, nil, bad("the first entry must set non-empty updateKeys")
		}
		next = state{scid: *p.SCID, witness: &Witness{}, ttl: DefaultTTL}
	} else {
		next = *prev
		if p.SCID != nil {
			return nil, nil, bad("scid may appear only in the first entry")
		}
	}
	if p.Method != nil && *p.Method != MethodV1 {
		return nil, nil, bad("method %q is not %q, the only version supported", *p.Method, MethodV1)
	}

	// Pre-rotation: while the previous entry committed to nextKeyHashes,
	// this one must reveal committed keys and say what comes next.
	if prev != nil && len(prev.nextKeyHashes) > 0 {
		if p.UpdateKeys == nil {
			return nil, nil, fmt.Errorf("%w: pre-rotation is active, the entry must set updateKeys", ErrPreRotation)
		}
		if p.NextKeyHashes == nil && !p.nulls["nextKeyHashes"] {
			return nil, nil, fmt.Errorf("%w: pre-rotation is active, the entry must set nextKeyHashes", ErrPreRotation)
		}
		for _, k := range *p.UpdateKeys {
			if !slices.Contains(prev.nextKeyHashes, KeyHash(k)) {
				return nil, nil, fmt.Errorf("%w: update key %s was not committed in nextKeyHashes", ErrPreRotation, k)
			}
		}
	}
	if p.UpdateKeys != nil {
		next.updateKeys = *p.UpdateKeys
	} else if p.nulls["updateKeys"] {
		next.updateKeys = nil
	}
	if p.NextKeyHashes != nil {
		next.nextKeyHashes = *p.NextKeyHashes
	} else if p.nulls["nextKeyHashes"] {
		next.nextKeyHashes = nil
	}
	if p.Watchers != nil {
		next.watchers = *p.Watchers
	} else if p.nulls["watchers"] {
		next.watchers = nil
	}
	if p.TTL != nil {
		next.ttl = *p.TTL
	} else if p.nulls["ttl"] {
		next.ttl = DefaultTTL
	}
	if p.Portable != nil {
		if *p.Portable && prev != nil {
			return nil, nil, fmt.Errorf("%w: portable may be set to true only in the first entry", ErrPortable)
		}
		next.portable = *p.Portable
	}
	if p.Deactivated != nil {
		next.deactivated = *p.Deactivated
	}

	// Witnesses: a change from none takes effect at once; any other change
	// only after this entry.
	need := next.witness
	if p.Witness != nil {
		if !next.witness.Active() {
			need = p.Witness
		}
		next.witness = p.Witness
	}
	if !need.Active() {
		need = nil
	}
	return &next, need, nil
}

// isSCID reports whether s has the form of a did:webvh SCID: 46 base58btc
// characters.
func isSCID(s string) bool {
	if len(s) != 46 {
		return false
	}
	for _, c := range []byte(s) {
		if !strings.ContainsRune("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", rune(c)) {
			return false
		}
	}
	return true
}

// checkState validates an entry's DID document and returns its id.
func checkState(prev, next *state, raw json.RawMessage) (string, error) {
	var doc struct {
		ID          *string         `json:"id"`
		AlsoKnownAs json.RawMessage `json:"alsoKnownAs"`
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return "", fmt.Errorf("%w: state is not a JSON object", ErrState)
	}
	if err := json.Unmarshal(raw, &doc); err != nil || doc.ID == nil {
		return "", fmt.Errorf("%w: state has no string id", ErrState)
	}
	id, err := ParseDID(*doc.ID)
	if err != nil {
		return "", fmt.Errorf("%w: state.id: %w", ErrState, err)
	}
	if id.SCID != next.scid {
		return "", fmt.Errorf("%w: state.id %s does not carry the SCID %s", ErrState, *doc.ID, next.scid)
	}
	if prev != nil && *doc.ID != prev.did {
		if !prev.portable {
			return "", fmt.Errorf("%w: the DID moved from %s to %s but is not portable", ErrPortable, prev.did, *doc.ID)
		}
		var aka []string
		if len(doc.AlsoKnownAs) > 0 {
			_ = json.Unmarshal(doc.AlsoKnownAs, &aka)
		}
		if !slices.Contains(aka, prev.did) {
			return "", fmt.Errorf("%w: the moved DID %s must list %s in alsoKnownAs", ErrPortable, *doc.ID, prev.did)
		}
	}
	return *doc.ID, nil
}
