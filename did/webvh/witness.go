package webvh

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"
)

// WitnessProofs is one record of did-witness.json: the witness proofs over
// one versionId.
type WitnessProofs struct {
	VersionID string            `json:"versionId"`
	Proof     []json.RawMessage `json:"proof"`
}

// witnessDocument is the document a witness signs: {"versionId": …}.
func witnessDocument(versionID string) map[string]json.RawMessage {
	v, _ := json.Marshal(versionID)
	return map[string]json.RawMessage{"versionId": v}
}

// WitnessProof returns a witness's eddsa-jcs-2022 proof over versionID, as
// a witness (holding priv, listed as did:key in the witness parameter)
// makes it after verifying the entry. created is the proof time.
func WitnessProof(priv ed25519.PrivateKey, versionID string, created time.Time) (json.RawMessage, error) {
	p, err := signProof(witnessDocument(versionID), priv, created)
	if err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

// VerifyWitnessProof checks one proof of a did-witness.json record over
// versionID (form and signature, as a verifier counts it) and returns the
// did:key of the witness that made it.
func VerifyWitnessProof(raw json.RawMessage, versionID string) (string, error) {
	p, err := parseProof(raw)
	if err != nil {
		return "", err
	}
	mk, err := verifyProof(witnessDocument(versionID), p)
	if err != nil {
		return "", err
	}
	return "did:key:" + mk, nil
}

// checkWitnesses verifies that every entry with a witness configuration in
// need has a threshold of distinct listed witnesses with a valid proof on
// its versionId or a later one. On failure it returns the index of the
// first entry that is not witnessed (0 when the whole file is refused).
func checkWitnesses(entries []Entry, need []*Witness, opts Options, lim Limits) (int, error) {
	required := -1
	for i, w := range need {
		if w != nil {
			required = i
			break
		}
	}
	if required < 0 {
		return -1, nil
	}
	if opts.Witness == nil {
		return required, fmt.Errorf("entry %d: %w: the DID uses witnesses and no did-witness.json was supplied", required+1, ErrWitness)
	}
	raw, err := opts.Witness()
	if err != nil {
		return 0, fmt.Errorf("%w: did-witness.json: %w", ErrWitness, err)
	}
	if len(raw) > lim.MaxWitnessBytes {
		return 0, fmt.Errorf("%w: did-witness.json is %d bytes, over %d", ErrTooLarge, len(raw), lim.MaxWitnessBytes)
	}
	if !depthOK(raw, lim.MaxDepth) {
		return 0, fmt.Errorf("%w: did-witness.json nested deeper than %d", ErrTooLarge, lim.MaxDepth)
	}
	var records []WitnessProofs
	if err := json.Unmarshal(raw, &records); err != nil {
		return 0, fmt.Errorf("%w: did-witness.json is not an array of {versionId, proof}: %v", ErrWitness, err)
	}
	n := 0
	for _, r := range records {
		n += len(r.Proof)
	}
	if n > lim.MaxWitnessProof {
		return 0, fmt.Errorf("%w: did-witness.json holds %d proofs, over %d", ErrTooLarge, n, lim.MaxWitnessProof)
	}
	index := map[string]int{}
	for i, e := range entries {
		index[e.VersionID] = i
	}
	// signedAt[witness did:key] = the latest entry index it validly signed.
	// Proofs on versionIds not in this log, malformed or failing proofs are
	// ignored: they are no evidence for any entry.
	signedAt := map[string]int{}
	for _, r := range records {
		i, ok := index[r.VersionID]
		if !ok {
			continue
		}
		doc := witnessDocument(r.VersionID)
		for _, raw := range r.Proof {
			p, err := parseProof(raw)
			if err != nil {
				continue
			}
			mk, err := didKeyMultikey(p.VerificationMethod)
			if err != nil {
				continue
			}
			id := "did:key:" + mk
			if j, seen := signedAt[id]; seen && j >= i {
				continue // already counted at this or a later entry
			}
			if _, err := verifyProof(doc, p); err != nil {
				continue
			}
			signedAt[id] = i
		}
	}
	for i, w := range need {
		if w == nil {
			continue
		}
		got := 0
		for _, m := range w.Witnesses {
			if j, ok := signedAt[m.ID]; ok && j >= i {
				got++
			}
		}
		if got < w.Threshold {
			return i, fmt.Errorf("entry %d (%s): %w: %d of the %d required witness proofs", i+1, entries[i].VersionID, ErrWitness, got, w.Threshold)
		}
	}
	return -1, nil
}
