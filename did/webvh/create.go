package webvh

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Log is a verified did:webvh log that its controller can extend.
type Log struct {
	lines [][]byte
	res   *Result
	st    *state
}

// Bytes returns did.jsonl: one entry per line, each ending in "\n".
func (l *Log) Bytes() []byte {
	var b bytes.Buffer
	for _, line := range l.lines {
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Result returns the verified state of the log (witness proofs not
// considered: they are collected after an entry is made).
func (l *Log) Result() *Result { return l.res }

// Open verifies a log (as [Verify] does, witness proofs aside, which a
// controller collects after making an entry) so that it can be extended
// with [Log.Update].
func Open(log []byte, opts Options) (*Log, error) {
	return verifyLog(log, opts, true)
}

// CreateOptions describe a new DID.
type CreateOptions struct {
	// HostPath is the DID after the SCID: a domain with an optional %3A
	// port, and optional ':'-separated path segments, e.g.
	// "id.example.org:users:alice". It may hold further "{SCID}"
	// placeholders.
	HostPath string
	// Document is the initial DID document, with the literal "{SCID}"
	// wherever the SCID belongs; its id must be "did:webvh:{SCID}:" +
	// HostPath. Empty means a document with just @context and id.
	Document json.RawMessage
	// UpdateKeys are the keys authorized to sign the next entry (and this
	// one). Signer must hold one of them.
	UpdateKeys []ed25519.PublicKey
	// NextKeyHashes, when non-empty, turns on pre-rotation: the next
	// entry's update keys must be among them (see [KeyHash]).
	NextKeyHashes []string
	// Portable allows the DID to move to another host later. It can only
	// be chosen here.
	Portable bool
	// Witness, when set with witnesses, requires every entry (this one
	// first) to be witnessed.
	Witness  *Witness
	Watchers []string
	// TTL is the cache time in seconds; nil leaves the default (3600).
	TTL *int64
	// Time is the versionTime; zero means now. It is kept to the second.
	Time   time.Time
	Signer ed25519.PrivateKey
}

// Create makes the first entry of a new DID log: the SCID is computed over
// the entry with "{SCID}" placeholders and replaces them, the entry hash is
// computed, and the entry is signed (eddsa-jcs-2022) by Signer.
func Create(o CreateOptions) (*Log, error) {
	if len(o.Signer) != ed25519.PrivateKeySize {
		return nil, errors.New("webvh create: Signer must be an Ed25519 private key")
	}
	prelimDID := "did:webvh:" + scidPlaceholder + ":" + o.HostPath
	if _, err := parseDID(prelimDID, true); err != nil {
		return nil, fmt.Errorf("webvh create: %w", err)
	}
	doc := o.Document
	if len(doc) == 0 {
		doc, _ = json.Marshal(map[string]any{"@context": []string{"https://www.w3.org/ns/did/v1"}, "id": prelimDID})
	}
	var head struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(doc, &head); err != nil || head.ID != prelimDID {
		return nil, fmt.Errorf("webvh create: the document's id must be %s", prelimDID)
	}
	if len(o.UpdateKeys) == 0 {
		return nil, errors.New("webvh create: at least one update key is required")
	}
	keys := make([]string, 0, len(o.UpdateKeys))
	for _, k := range o.UpdateKeys {
		keys = append(keys, Multikey(k))
	}
	if !slices.Contains(keys, Multikey(o.Signer.Public().(ed25519.PublicKey))) {
		return nil, errors.New("webvh create: Signer is not one of the update keys")
	}
	p := map[string]any{
		"method":     MethodV1,
		"scid":       scidPlaceholder,
		"updateKeys": keys,
		"portable":   o.Portable,
	}
	if len(o.NextKeyHashes) > 0 {
		p["nextKeyHashes"] = o.NextKeyHashes
	}
	if o.Witness.Active() {
		p["witness"] = o.Witness
	}
	if len(o.Watchers) > 0 {
		p["watchers"] = o.Watchers
	}
	if o.TTL != nil {
		p["ttl"] = *o.TTL
	}
	pj, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("webvh create: %w", err)
	}
	t := entryTime(o.Time)
	tj, _ := json.Marshal(t.Format(time.RFC3339))
	prelim := map[string]json.RawMessage{"versionTime": tj, "parameters": pj, "state": doc}
	scid, err := computeSCID(prelim)
	if err != nil {
		return nil, fmt.Errorf("webvh create: %w", err)
	}
	text, err := json.Marshal(prelim)
	if err != nil {
		return nil, fmt.Errorf("webvh create: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(bytes.ReplaceAll(text, []byte(scidPlaceholder), []byte(scid)), &m); err != nil {
		return nil, fmt.Errorf("webvh create: %w", err)
	}
	line, err := sealEntry(m, 1, scid, o.Signer, t)
	if err != nil {
		return nil, fmt.Errorf("webvh create: %w", err)
	}
	return verifyLog(append(line, '\n'), Options{}, true)
}

// entryTime is t (or now) in UTC, kept to the second.
func entryTime(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Second)
}

// sealEntry sets the versionId of a preliminary entry (versionTime,
// parameters, state) from its hash chained to prev, signs it, and returns
// its JSON line.
func sealEntry(m map[string]json.RawMessage, number int, prev string, signer ed25519.PrivateKey, t time.Time) ([]byte, error) {
	h, err := entryHash(m, prev)
	if err != nil {
		return nil, err
	}
	vid := fmt.Sprintf("%d-%s", number, h)
	doc := withoutProof(m, vid)
	p, err := signProof(doc, signer, t)
	if err != nil {
		return nil, err
	}
	pj, err := json.Marshal([]*Proof{p})
	if err != nil {
		return nil, err
	}
	vj, _ := json.Marshal(vid)
	line := struct {
		VersionID   json.RawMessage `json:"versionId"`
		VersionTime json.RawMessage `json:"versionTime"`
		Parameters  json.RawMessage `json:"parameters"`
		State       json.RawMessage `json:"state"`
		Proof       json.RawMessage `json:"proof"`
	}{vj, m["versionTime"], m["parameters"], m["state"], pj}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(line); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UpdateOptions describe a new version of a DID. Fields left zero keep the
// current value.
type UpdateOptions struct {
	// Document is the new DID document; empty keeps the current one (moved
	// to the new DID when MoveTo is set).
	Document json.RawMessage
	// UpdateKeys replaces the update keys. Under pre-rotation it is
	// required, and every key must have been committed in NextKeyHashes.
	UpdateKeys []ed25519.PublicKey
	// NextKeyHashes replaces the pre-rotation commitment; a non-nil empty
	// slice ends pre-rotation. Under pre-rotation it is required.
	NextKeyHashes []string
	// Witness replaces the witness configuration ({} to stop using
	// witnesses); it applies from the next entry, or from this one when no
	// witnesses were in use.
	Witness  *Witness
	Watchers []string
	TTL      *int64
	// EndPortability sets portable to false for good.
	EndPortability bool
	// MoveTo is the new HostPath of a portable DID. The SCID stays, the
	// document's DID is rewritten and the old DID is added to alsoKnownAs.
	MoveTo string
	// Deactivate ends the DID: no entry may follow.
	Deactivate bool
	// Time is the versionTime; zero means now. It must be after the
	// previous entry's.
	Time   time.Time
	Signer ed25519.PrivateKey
}

// Update appends a signed entry and returns the extended log. The new log
// is verified before it is returned, so an update that breaks a rule (a key
// not authorized, a move when not portable, pre-rotation not honoured, an
// update after deactivation) is refused with the same error a resolver
// would give.
func (l *Log) Update(o UpdateOptions) (*Log, error) {
	if len(o.Signer) != ed25519.PrivateKeySize {
		return nil, errors.New("webvh update: Signer must be an Ed25519 private key")
	}
	st := l.st
	if st.deactivated {
		return nil, fmt.Errorf("webvh update: %w", ErrDeactivated)
	}
	p := map[string]any{}
	if o.UpdateKeys != nil {
		keys := make([]string, 0, len(o.UpdateKeys))
		for _, k := range o.UpdateKeys {
			keys = append(keys, Multikey(k))
		}
		p["updateKeys"] = keys
	}
	if o.NextKeyHashes != nil {
		p["nextKeyHashes"] = o.NextKeyHashes
	}
	if o.Witness != nil {
		p["witness"] = *o.Witness
	}
	if o.Watchers != nil {
		p["watchers"] = o.Watchers
	}
	if o.TTL != nil {
		p["ttl"] = *o.TTL
	}
	if o.EndPortability {
		p["portable"] = false
	}
	if o.Deactivate {
		p["deactivated"] = true
		if o.UpdateKeys == nil && len(st.nextKeyHashes) == 0 {
			p["updateKeys"] = []string{}
		}
	}
	doc := o.Document
	if len(doc) == 0 {
		doc = l.res.Document
	}
	if o.MoveTo != "" {
		to, err := ParseDID("did:webvh:" + st.scid + ":" + o.MoveTo)
		if err != nil {
			return nil, fmt.Errorf("webvh update: %w", err)
		}
		if len(o.Document) == 0 {
			doc, err = MoveDocument(doc, st.did, to.String())
			if err != nil {
				return nil, fmt.Errorf("webvh update: %w", err)
			}
		} else {
			var head struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(doc, &head) != nil || head.ID != to.String() {
				return nil, fmt.Errorf("webvh update: moving to %s, the document's id must be that DID", to)
			}
		}
	}
	pj, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("webvh update: %w", err)
	}
	t := entryTime(o.Time)
	tj, _ := json.Marshal(t.Format(time.RFC3339))
	m := map[string]json.RawMessage{"versionTime": tj, "parameters": pj, "state": doc}
	line, err := sealEntry(m, st.versionNumber+1, st.versionID, o.Signer, t)
	if err != nil {
		return nil, fmt.Errorf("webvh update: %w", err)
	}
	lines := append(slices.Clone(l.lines), line)
	var b bytes.Buffer
	for _, ln := range lines {
		b.Write(ln)
		b.WriteByte('\n')
	}
	out, err := verifyLog(b.Bytes(), Options{}, true)
	if err != nil {
		return nil, fmt.Errorf("webvh update refused: %w", err)
	}
	return out, nil
}

// MoveDocument rewrites every reference to the DID from in doc to to (the
// DID itself and DID URLs under it), and adds from to alsoKnownAs: the
// document [Log.Update] publishes for a move when none is given.
func MoveDocument(doc json.RawMessage, from, to string) (json.RawMessage, error) {
	var out bytes.Buffer
	rest := []byte(doc)
	for {
		i := bytes.Index(rest, []byte(from))
		if i < 0 {
			out.Write(rest)
			break
		}
		out.Write(rest[:i])
		after := rest[i+len(from):]
		// Only whole DIDs and DID URLs: the DID ends at a quote or at the
		// start of a fragment, path or query.
		if len(after) > 0 && bytes.IndexByte([]byte(`"#/?`), after[0]) >= 0 {
			out.WriteString(to)
		} else {
			out.WriteString(from)
		}
		rest = after
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		return nil, fmt.Errorf("document: %v", err)
	}
	var aka []string
	if raw, ok := m["alsoKnownAs"]; ok {
		if err := json.Unmarshal(raw, &aka); err != nil {
			return nil, fmt.Errorf("document alsoKnownAs is not an array of strings")
		}
	}
	if !slices.Contains(aka, from) {
		aka = append(aka, from)
	}
	m["alsoKnownAs"], _ = json.Marshal(aka)
	return json.Marshal(m)
}
