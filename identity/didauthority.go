package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/store"
)

// Who may change an account's log (rule 2).
//
// In every account log updateKeys[0] is the cloud's custodial key for the
// account and updateKeys[1:] are the person's keys (the recovery kit). An
// entry is "by the person" when one of its proofs is made by a key other
// than the custodial key in effect before it. While the entry before it has
// person keys, an entry signed only by the custodial key must not:
//
//   - change updateKeys[1:] (which keys, or their order),
//   - change the DID (its host or path: a move),
//   - deactivate the DID,
//   - change nextKeyHashes (pre-rotation; for account logs it stays empty),
//   - change portable.
//
// It may change the document, the witness parameter, watchers, ttl and
// updateKeys[0] (custodial rotation). An entry by the person may do
// anything the did:webvh rules allow, and an account without person keys is
// fully controlled by its custodial key. The genesis entry is not checked:
// whoever made it chose the keys. Witnesses refuse to witness, and every
// cloud refuses to accept, a log that breaks this rule (CheckAuthority).

// ErrPersonKeyRequired refuses an entry that only the person's key may sign.
var ErrPersonKeyRequired = errors.New("only the person's key can make this change")

// CheckAuthority checks rule 2 for every entry of the verified log after
// version from (0: all entries; the genesis entry is never checked). The
// error names the entry and the change, and wraps ErrPersonKeyRequired.
func CheckAuthority(res *webvh.Result, from int) error {
	if res == nil {
		return errors.New("check authority: no log")
	}
	for i := 1; i < len(res.Entries); i++ {
		prev, e := &res.Entries[i-1], &res.Entries[i]
		if e.VersionNumber <= from || len(prev.UpdateKeys) < 2 {
			continue
		}
		// Without pre-rotation every signer is one of prev.UpdateKeys, so a
		// signer other than the custodial key is a person key. Under
		// pre-rotation the entry is signed by the keys it reveals, and its
		// own updateKeys[0] is the custodial key too.
		custodial := []string{prev.UpdateKeys[0]}
		if len(prev.NextKeyHashes) > 0 && len(e.UpdateKeys) > 0 {
			custodial = append(custodial, e.UpdateKeys[0])
		}
		byPerson := slices.ContainsFunc(e.Signers, func(k string) bool { return !slices.Contains(custodial, k) })
		if byPerson {
			continue
		}
		var what string
		switch {
		case !slices.Equal(personKeys(e.UpdateKeys), prev.UpdateKeys[1:]):
			what = "it changes the person's update keys"
		case e.DID != prev.DID:
			what = fmt.Sprintf("it moves the DID from %s to %s", prev.DID, e.DID)
		case e.Deactivated:
			what = "it deactivates the DID"
		case !slices.Equal(e.NextKeyHashes, prev.NextKeyHashes):
			what = "it changes nextKeyHashes"
		case e.Portable != prev.Portable:
			what = "it changes portable"
		default:
			continue
		}
		return fmt.Errorf("entry %s: %w: %s and is signed only by the custodial key", e.VersionID, ErrPersonKeyRequired, what)
	}
	return nil
}

// personKeys returns keys[1:], nil when there are none.
func personKeys(keys []string) []string {
	if len(keys) < 2 {
		return nil
	}
	return keys[1:]
}

// PersonKeys returns the person update keys (multikeys) active after the
// last entry: updateKeys[1:].
func PersonKeys(res *webvh.Result) []string {
	if res == nil {
		return nil
	}
	return slices.Clone(personKeys(res.Metadata.UpdateKeys))
}

// WitnessConfig returns the witness parameter for the given witness ids
// (did:key DIDs), sorted and deduplicated (empty ids dropped), with a
// majority threshold (len/2+1). No ids gives the empty configuration ({}:
// no witnesses).
func WitnessConfig(ids []string) *webvh.Witness {
	list := slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == "" })
	slices.Sort(list)
	list = slices.Compact(list)
	w := &webvh.Witness{}
	if len(list) == 0 {
		return w
	}
	w.Threshold = len(list)/2 + 1
	for _, id := range list {
		w.Witnesses = append(w.Witnesses, webvh.WitnessMember{ID: id})
	}
	return w
}

// PreferLog orders two verified logs of one SCID: >0 when a is the head,
// <0 when b is, 0 when they are the same log. One that extends the other
// wins; at a fork, the branch whose entry at the first differing version
// has the smaller versionId (string compare) wins, so every cloud picks the
// same head whatever order it saw the logs in. A nil log loses.
func PreferLog(a, b *webvh.Result) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	n := min(len(a.Entries), len(b.Entries))
	for i := range n {
		va, vb := a.Entries[i].VersionID, b.Entries[i].VersionID
		if va != vb {
			if va < vb {
				return 1
			}
			return -1
		}
	}
	switch {
	case len(a.Entries) > len(b.Entries):
		return 1
	case len(a.Entries) < len(b.Entries):
		return -1
	}
	return 0
}

// IssuerOfWebVH returns the issuer URL an account DID names and the
// account's name: the inverse of WebVHHostPath. The DID must be
// did:webvh:{SCID}:{host}[%3A{port}][:{issuer path}…]:accounts:{name};
// the host id.localhost reads as http://localhost, any other as https.
func IssuerOfWebVH(didID string) (issuer, name string, err error) {
	id, err := webvh.ParseDID(didID)
	if err != nil {
		return "", "", err
	}
	n := len(id.Path)
	if n < 2 || id.Path[n-2] != AccountsSegment {
		return "", "", fmt.Errorf("%w: %s does not end in :%s:{name}", webvh.ErrInvalidDID, didID, AccountsSegment)
	}
	name = id.Path[n-1]
	if err := checkLogName(name); err != nil {
		return "", "", fmt.Errorf("%w: %s: %v", webvh.ErrInvalidDID, didID, err)
	}
	u := "https://" + id.Host
	if id.Host == "id.localhost" {
		u = "http://localhost"
	}
	if id.Port != 0 {
		u += ":" + strconv.Itoa(id.Port)
	}
	for _, seg := range id.Path[:n-2] {
		u += "/" + url.PathEscape(seg)
	}
	return u, name, nil
}

// checkLogName bounds an account log name: 1 to MaxDIDLogName letters,
// digits, '-' or '_'.
func checkLogName(name string) error {
	if name == "" || len(name) > MaxDIDLogName {
		return fmt.Errorf("account name of %d characters (1 to %d allowed)", len(name), MaxDIDLogName)
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("account name %q has a character other than a letter, digit, '-' or '_'", name)
		}
	}
	return nil
}

// Entry builders. Each appends one entry signed by signer, returns the new
// log (verified as webvh.Log.Update does, witness proofs aside) and refuses
// an entry that rule 2 forbids (ErrPersonKeyRequired) before anything is
// published. A zero now means the current time; it must be after the last
// entry's versionTime.

// AppendMove moves the account DID to toIssuer: the new DID is
// did:webvh:{SCID}:{WebVHHostPath(toIssuer)}:accounts:{name} (same SCID and
// name), updateKeys become [custodial, person keys…], the document's
// verification method (authentication, assertionMethod) becomes the
// Multikey of custodial, references to the old DID are rewritten and the
// old DID is added to alsoKnownAs. A non-nil witnesses replaces the witness
// parameter (nil keeps it). The log must be portable; when it has person
// keys, signer must be one of them.
func AppendMove(l *webvh.Log, toIssuer string, custodial ed25519.PublicKey, witnesses *webvh.Witness, signer ed25519.PrivateKey, now time.Time) (*webvh.Log, error) {
	if l == nil || len(custodial) != ed25519.PublicKeySize {
		return nil, errors.New("account DID move: a log and an Ed25519 custodial key are required")
	}
	res := l.Result()
	_, name, err := IssuerOfWebVH(res.DID)
	if err != nil {
		return nil, fmt.Errorf("account DID move: %w", err)
	}
	hp, err := WebVHHostPath(toIssuer)
	if err != nil {
		return nil, fmt.Errorf("account DID move: %w", err)
	}
	moveTo := hp + ":" + AccountsSegment + ":" + name
	to, err := webvh.ParseDID("did:webvh:" + res.Metadata.SCID + ":" + moveTo)
	if err != nil {
		return nil, fmt.Errorf("account DID move: %w", err)
	}
	doc := res.Document
	if to.String() != res.DID {
		if doc, err = webvh.MoveDocument(doc, res.DID, to.String()); err != nil {
			return nil, fmt.Errorf("account DID move: %w", err)
		}
	}
	if doc, err = setCustodialMethod(doc, to.String(), custodial); err != nil {
		return nil, fmt.Errorf("account DID move: %w", err)
	}
	keys, err := withCustodial(res.Metadata.UpdateKeys, custodial)
	if err != nil {
		return nil, fmt.Errorf("account DID move: %w", err)
	}
	return appendChecked(l, webvh.UpdateOptions{
		Document: doc, UpdateKeys: keys, Witness: witnesses, MoveTo: moveTo, Time: now, Signer: signer,
	})
}

// AppendPersonKey replaces the person key oldPerson by newPerson in the
// update keys (a nil oldPerson adds newPerson after the others). The
// document is kept. When the log has person keys, signer must be one of
// them.
func AppendPersonKey(l *webvh.Log, oldPerson, newPerson ed25519.PublicKey, signer ed25519.PrivateKey, now time.Time) (*webvh.Log, error) {
	if l == nil || len(newPerson) != ed25519.PublicKeySize || (oldPerson != nil && len(oldPerson) != ed25519.PublicKeySize) {
		return nil, errors.New("account person key: a log and Ed25519 keys are required")
	}
	cur := l.Result().Metadata.UpdateKeys
	if len(cur) == 0 {
		return nil, errors.New("account person key: the log has no update keys")
	}
	newMK := webvh.Multikey(newPerson)
	if slices.Contains(cur, newMK) {
		return nil, fmt.Errorf("account person key: %s is already an update key", newMK)
	}
	keys := slices.Clone(cur)
	if oldPerson == nil {
		keys = append(keys, newMK)
	} else {
		i := slices.Index(keys, webvh.Multikey(oldPerson))
		if i < 1 {
			return nil, fmt.Errorf("account person key: %s is not a person key of the log", webvh.Multikey(oldPerson))
		}
		keys[i] = newMK
	}
	pubs, err := publicKeys(keys)
	if err != nil {
		return nil, fmt.Errorf("account person key: %w", err)
	}
	return appendChecked(l, webvh.UpdateOptions{UpdateKeys: pubs, Time: now, Signer: signer})
}

// AppendCustodialKey makes custodial the custodial key: updateKeys[0] and
// the document's verification method. The signer is usually the previous
// custodial key (a custodial rotation, which rule 2 allows).
func AppendCustodialKey(l *webvh.Log, custodial ed25519.PublicKey, signer ed25519.PrivateKey, now time.Time) (*webvh.Log, error) {
	if l == nil || len(custodial) != ed25519.PublicKeySize {
		return nil, errors.New("account custodial key: a log and an Ed25519 key are required")
	}
	res := l.Result()
	doc, err := setCustodialMethod(res.Document, res.DID, custodial)
	if err != nil {
		return nil, fmt.Errorf("account custodial key: %w", err)
	}
	keys, err := withCustodial(res.Metadata.UpdateKeys, custodial)
	if err != nil {
		return nil, fmt.Errorf("account custodial key: %w", err)
	}
	return appendChecked(l, webvh.UpdateOptions{Document: doc, UpdateKeys: keys, Time: now, Signer: signer})
}

// AppendWitnesses replaces the witness parameter by w (an empty Witness
// stops using witnesses).
func AppendWitnesses(l *webvh.Log, w *webvh.Witness, signer ed25519.PrivateKey, now time.Time) (*webvh.Log, error) {
	if l == nil || w == nil {
		return nil, errors.New("account witnesses: a log and a witness configuration are required")
	}
	return appendChecked(l, webvh.UpdateOptions{Witness: w, Time: now, Signer: signer})
}

// appendChecked appends an entry and checks rule 2 on it.
func appendChecked(l *webvh.Log, o webvh.UpdateOptions) (*webvh.Log, error) {
	if o.Time.IsZero() {
		o.Time = time.Now()
	}
	from := l.Result().Metadata.VersionNumber
	out, err := l.Update(o)
	if err != nil {
		return nil, err
	}
	if err := CheckAuthority(out.Result(), from); err != nil {
		return nil, err
	}
	return out, nil
}

// withCustodial returns the update keys with custodial in place of keys[0].
func withCustodial(keys []string, custodial ed25519.PublicKey) ([]ed25519.PublicKey, error) {
	mk := webvh.Multikey(custodial)
	out := []string{mk}
	for _, k := range personKeys(keys) {
		if k == mk {
			return nil, fmt.Errorf("%s is a person key and cannot be the custodial key", mk)
		}
		out = append(out, k)
	}
	return publicKeys(out)
}

// publicKeys decodes multikeys.
func publicKeys(mks []string) ([]ed25519.PublicKey, error) {
	out := make([]ed25519.PublicKey, 0, len(mks))
	for _, mk := range mks {
		k, err := webvh.ParseMultikey(mk)
		if err != nil {
			return nil, fmt.Errorf("update key %s: %w", mk, err)
		}
		out = append(out, k)
	}
	return out, nil
}

// multikeyContext is the JSON-LD context of Multikey verification methods.
const multikeyContext = "https://w3id.org/security/multikey/v1"

// accountDocument is the DID document of an account DID whose custodial key
// is pub: one Multikey method "{id}#{multikey}" in authentication and
// assertionMethod, and alsoKnownAs when given.
func accountDocument(id string, pub ed25519.PublicKey, alsoKnownAs []string) (json.RawMessage, error) {
	m := map[string]any{"@context": []string{did.ContextV1, multikeyContext}, "id": id}
	if len(alsoKnownAs) > 0 {
		m["alsoKnownAs"] = alsoKnownAs
	}
	doc, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return setCustodialMethod(doc, id, pub)
}

// setCustodialMethod makes the Multikey of pub the document's only
// verification method, authentication and assertionMethod, under the DID
// id; the other members are kept.
func setCustodialMethod(doc json.RawMessage, id string, pub ed25519.PublicKey) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil || m == nil {
		return nil, errors.New("the DID document is not a JSON object")
	}
	var ctx []string
	if raw, ok := m["@context"]; ok {
		var one string
		if json.Unmarshal(raw, &one) == nil {
			ctx = []string{one}
		} else if err := json.Unmarshal(raw, &ctx); err != nil {
			return nil, errors.New("the DID document's @context is neither a string nor an array of strings")
		}
	}
	if len(ctx) == 0 {
		ctx = []string{did.ContextV1}
	}
	if !slices.Contains(ctx, multikeyContext) {
		ctx = append(ctx, multikeyContext)
	}
	mk := webvh.Multikey(pub)
	vm := id + "#" + mk
	set := func(k string, v any) {
		m[k], _ = json.Marshal(v)
	}
	set("@context", ctx)
	set("id", id)
	set("verificationMethod", []map[string]string{{
		"id": vm, "type": "Multikey", "controller": id, "publicKeyMultibase": mk,
	}})
	set("authentication", []string{vm})
	set("assertionMethod", []string{vm})
	return json.Marshal(m)
}

// genesisLog makes the first entry of an account log at hostPath (the
// part before :accounts:) under name: updateKeys [custodial, recovery
// (when given)], portable, the account document with alsoKnownAs, and the
// witness parameter when given; signed by the custodial key.
func genesisLog(hostPath, name string, custodial ed25519.PrivateKey, recovery ed25519.PublicKey, alsoKnownAs []string, witness *webvh.Witness, now time.Time) (*webvh.Log, error) {
	if len(custodial) != ed25519.PrivateKeySize || (recovery != nil && len(recovery) != ed25519.PublicKeySize) {
		return nil, errors.New("account DID log: Ed25519 keys are required")
	}
	pub := custodial.Public().(ed25519.PublicKey)
	id := "did:webvh:{SCID}:" + hostPath + ":" + AccountsSegment + ":" + name
	doc, err := accountDocument(id, pub, alsoKnownAs)
	if err != nil {
		return nil, err
	}
	updateKeys := []ed25519.PublicKey{pub}
	if recovery != nil {
		updateKeys = append(updateKeys, recovery)
	}
	return webvh.Create(webvh.CreateOptions{
		HostPath: hostPath + ":" + AccountsSegment + ":" + name, Document: doc,
		UpdateKeys: updateKeys, Portable: true, Witness: witness, Time: now, Signer: custodial,
	})
}

// newLogName returns a fresh account log name: 26 random base32 letters.
func newLogName() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("account DID name: %w", err)
	}
	return nameEncoding.EncodeToString(b), nil
}

// UpgradeLog makes the did:webvh genesis log of a did:key account homed at
// issuer: the custodial key is the did:key's own key (priv, which must be
// the key of didKeyDID) as updateKeys[0], recovery (when given) the person
// key updateKeys[1], portable, and the document lists the did:key in
// alsoKnownAs. The returned DIDLog has DID = didKeyDID (the account's key
// stays its first DID) and CurrentDID = the new did:webvh DID; it is not
// stored.
func UpgradeLog(didKeyDID string, priv ed25519.PrivateKey, recovery ed25519.PublicKey, issuer string, now time.Time) (*DIDLog, error) {
	return upgradeLog(didKeyDID, priv, recovery, issuer, nil, now)
}

func upgradeLog(didKeyDID string, priv ed25519.PrivateKey, recovery ed25519.PublicKey, issuer string, witness *webvh.Witness, now time.Time) (*DIDLog, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("upgrade to did:webvh: an Ed25519 private key is required")
	}
	if !strings.HasPrefix(didKeyDID, "did:key:") {
		return nil, fmt.Errorf("upgrade to did:webvh: %s is not a did:key DID", didKeyDID)
	}
	if d, _ := did.KeyDIDFromPublic(priv.Public().(ed25519.PublicKey)); d != didKeyDID {
		return nil, fmt.Errorf("upgrade to did:webvh: the key is not the key of %s", didKeyDID)
	}
	hp, err := WebVHHostPath(issuer)
	if err != nil {
		return nil, err
	}
	name, err := newLogName()
	if err != nil {
		return nil, err
	}
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	l, err := genesisLog(hp, name, priv, recovery, []string{didKeyDID}, witness, now)
	if err != nil {
		return nil, fmt.Errorf("upgrade to did:webvh: %w", err)
	}
	res := l.Result()
	return &DIDLog{
		DID: didKeyDID, SCID: res.Metadata.SCID, CurrentDID: res.DID, Name: name, HomeIssuer: issuer,
		Log: l.Bytes(), Version: res.Metadata.VersionNumber, UpdatedAt: now,
	}, nil
}

// UpgradeDID makes the did:webvh genesis log of the did:key account a
// homed here, as UpgradeLog, with this cloud's issuer and clock and the
// given witness parameter (nil: none). key is the account's custodial key
// (SigningKey). The account must not have a log yet. The log is returned,
// not stored: the caller stores it (DIDLogStore.PutDIDLog at version 0)
// with the new recovery kit's escrow.
func (s *Service) UpgradeDID(ctx context.Context, a *Account, key *did.Key, recovery ed25519.PublicKey, witnesses *webvh.Witness) (*DIDLog, error) {
	if a == nil || key == nil {
		return nil, errors.New("upgrade to did:webvh: an account and its key are required")
	}
	if s.DIDLogs == nil {
		return nil, errors.New("did:webvh accounts need a store for their logs")
	}
	switch _, err := s.DIDLogs.GetDIDLog(ctx, a.DID); {
	case err == nil:
		return nil, fmt.Errorf("upgrade to did:webvh: %s already has a did:webvh log", a.DID)
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("upgrade to did:webvh: %w", err)
	}
	if key.DID != a.DID {
		return nil, fmt.Errorf("upgrade to did:webvh: the key is not the key of %s", a.DID)
	}
	return upgradeLog(a.DID, key.Private, recovery, s.Issuer, witnesses, s.Now())
}
