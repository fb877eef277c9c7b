package webvh

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
)

func witnessID(k ed25519.PrivateKey) string { return "did:key:" + Multikey(pub(k)) }

// witnessFile builds did-witness.json from versionId → signers.
func witnessFile(t *testing.T, recs ...witnessRec) func() ([]byte, error) {
	t.Helper()
	var out []WitnessProofs
	for _, r := range recs {
		w := WitnessProofs{VersionID: r.versionID}
		for _, k := range r.signers {
			p, err := WitnessProof(k, r.versionID, at(9))
			if err != nil {
				t.Fatal(err)
			}
			w.Proof = append(w.Proof, p)
		}
		w.Proof = append(w.Proof, r.extra...)
		out = append(out, w)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return func() ([]byte, error) { return b, nil }
}

type witnessRec struct {
	versionID string
	signers   []ed25519.PrivateKey
	extra     []json.RawMessage
}

// TestWebVHWitnessThreshold: a 2-of-3 witness configuration, with the
// threshold met and not met in the ways an attacker would try.
func TestWebVHWitnessThreshold(t *testing.T) {
	a := newKey(t)
	w1, w2, w3, outsider := newKey(t), newKey(t), newKey(t), newKey(t)
	cfg := &Witness{Threshold: 2, Witnesses: []WitnessMember{{ID: witnessID(w1)}, {ID: witnessID(w2)}, {ID: witnessID(w3)}}}
	l := mustCreate(t, CreateOptions{HostPath: "example.com", UpdateKeys: []ed25519.PublicKey{pub(a)}, Witness: cfg, Time: at(0), Signer: a})
	l = mustUpdate(t, l, UpdateOptions{Time: at(1), Signer: a})
	v1, v2 := l.Result().Entries[0].VersionID, l.Result().Entries[1].VersionID
	log := l.Bytes()

	forged, _ := WitnessProof(outsider, v2, at(9))
	var tampered map[string]any
	good, _ := WitnessProof(w3, v2, at(9))
	_ = json.Unmarshal(good, &tampered)
	tampered["created"] = at(10).Format("2006-01-02T15:04:05Z")
	tamperedJSON, _ := json.Marshal(tampered)
	// w3's genuine proof of v2 re-attributed to w2.
	var stolen map[string]any
	_ = json.Unmarshal(good, &stolen)
	stolen["verificationMethod"] = "did:key:" + Multikey(pub(w2)) + "#" + Multikey(pub(w2))
	stolenJSON, _ := json.Marshal(stolen)

	cases := []struct {
		name    string
		witness func() ([]byte, error)
		want    error
	}{
		{"two on each entry", witnessFile(t, witnessRec{v1, []ed25519.PrivateKey{w1, w2}, nil}, witnessRec{v2, []ed25519.PrivateKey{w2, w3}, nil}), nil},
		{"two on the latest entry cover the earlier", witnessFile(t, witnessRec{v2, []ed25519.PrivateKey{w1, w3}, nil}), nil},
		{"all three", witnessFile(t, witnessRec{v2, []ed25519.PrivateKey{w1, w2, w3}, nil}), nil},
		{"no file", nil, ErrWitness},
		{"empty file", witnessFile(t), ErrWitness},
		{"one proof", witnessFile(t, witnessRec{v2, []ed25519.PrivateKey{w1}, nil}), ErrWitness},
		{"one witness twice", witnessFile(t, witnessRec{v2, []ed25519.PrivateKey{w1, w1}, nil}), ErrWitness},
		{"one witness on two entries", witnessFile(t, witnessRec{v1, []ed25519.PrivateKey{w1}, nil}, witnessRec{v2, []ed25519.PrivateKey{w1}, nil}), ErrWitness},
		{"proofs only on the earlier entry", witnessFile(t, witnessRec{v1, []ed25519.PrivateKey{w1, w2}, nil}), ErrWitness},
		{"unlisted witness", witnessFile(t, witnessRec{v2, []ed25519.PrivateKey{w1}, []json.RawMessage{forged}}), ErrWitness},
		{"tampered proof", witnessFile(t, witnessRec{v2, []ed25519.PrivateKey{w1}, []json.RawMessage{tamperedJSON}}), ErrWitness},
		{"proof re-attributed", witnessFile(t, witnessRec{v2, []ed25519.PrivateKey{w1}, []json.RawMessage{stolenJSON}}), ErrWitness},
		{"proofs on a versionId not in the log", witnessFile(t, witnessRec{v1, []ed25519.PrivateKey{w1}, nil}, witnessRec{"3-" + hashString([]byte("future")), []ed25519.PrivateKey{w2, w3}, nil}), ErrWitness},
		{"not JSON", func() ([]byte, error) { return []byte("{"), nil }, ErrWitness},
		{"fetch failed", func() ([]byte, error) { return nil, errors.New("connection refused") }, ErrWitness},
		{"bad proofs ignored when enough are good", witnessFile(t, witnessRec{v2, []ed25519.PrivateKey{w1, w2}, []json.RawMessage{forged, tamperedJSON, json.RawMessage(`"junk"`)}}), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Verify(log, Options{Witness: c.witness})
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
			if err == nil && (!res.Metadata.Witnessed || res.Metadata.Witness.Threshold != 2) {
				t.Fatalf("metadata %+v", res.Metadata)
			}
		})
	}
}

// TestWebVHWitnessChanges: when a witness configuration starts to apply.
func TestWebVHWitnessChanges(t *testing.T) {
	a := newKey(t)
	w1, w2 := newKey(t), newKey(t)
	one := &Witness{Threshold: 1, Witnesses: []WitnessMember{{ID: witnessID(w1)}}}
	two := &Witness{Threshold: 1, Witnesses: []WitnessMember{{ID: witnessID(w2)}}}

	// Witnesses added later apply to the entry that adds them.
	l := mustCreate(t, CreateOptions{HostPath: "example.com", UpdateKeys: []ed25519.PublicKey{pub(a)}, Time: at(0), Signer: a})
	l = mustUpdate(t, l, UpdateOptions{Witness: one, Time: at(1), Signer: a})
	v2 := l.Result().Entries[1].VersionID
	if _, err := Verify(l.Bytes(), Options{}); !errors.Is(err, ErrWitness) {
		t.Fatalf("added witnesses, no proofs: %v", err)
	}
	if _, err := Verify(l.Bytes(), Options{Witness: witnessFile(t, witnessRec{v2, []ed25519.PrivateKey{w1}, nil})}); err != nil {
		t.Fatal(err)
	}

	// Replacing witnesses: the entry that replaces them is witnessed by the
	// old ones; the new ones apply from the next entry.
	l = mustUpdate(t, l, UpdateOptions{Witness: two, Time: at(2), Signer: a})
	v3 := l.Result().Entries[2].VersionID
	if _, err := Verify(l.Bytes(), Options{Witness: witnessFile(t, witnessRec{v3, []ed25519.PrivateKey{w2}, nil})}); !errors.Is(err, ErrWitness) {
		t.Fatalf("replacement witnessed by the new witness only: %v", err)
	}
	if _, err := Verify(l.Bytes(), Options{Witness: witnessFile(t, witnessRec{v3, []ed25519.PrivateKey{w1}, nil})}); err != nil {
		t.Fatalf("replacement witnessed by the old witness: %v", err)
	}
	l = mustUpdate(t, l, UpdateOptions{Time: at(3), Signer: a})
	v4 := l.Result().Entries[3].VersionID
	if _, err := Verify(l.Bytes(), Options{Witness: witnessFile(t, witnessRec{v3, []ed25519.PrivateKey{w1}, nil}, witnessRec{v4, []ed25519.PrivateKey{w1}, nil})}); !errors.Is(err, ErrWitness) {
		t.Fatalf("entry after the replacement witnessed by the old witness: %v", err)
	}
	if _, err := Verify(l.Bytes(), Options{Witness: witnessFile(t, witnessRec{v3, []ed25519.PrivateKey{w1}, nil}, witnessRec{v4, []ed25519.PrivateKey{w2}, nil})}); err != nil {
		t.Fatal(err)
	}

	// Turning witnesses off: that entry is still witnessed, later ones not.
	l = mustUpdate(t, l, UpdateOptions{Witness: &Witness{}, Time: at(4), Signer: a})
	v5 := l.Result().Entries[4].VersionID
	l = mustUpdate(t, l, UpdateOptions{Time: at(5), Signer: a})
	base := []witnessRec{{v3, []ed25519.PrivateKey{w1}, nil}, {v4, []ed25519.PrivateKey{w2}, nil}}
	if _, err := Verify(l.Bytes(), Options{Witness: witnessFile(t, base...)}); !errors.Is(err, ErrWitness) {
		t.Fatalf("turning witnesses off unwitnessed: %v", err)
	}
	res, err := Verify(l.Bytes(), Options{Witness: witnessFile(t, append(base, witnessRec{v5, []ed25519.PrivateKey{w2}, nil})...)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Metadata.Witness != nil || !res.Metadata.Witnessed {
		t.Fatalf("metadata %+v", res.Metadata)
	}
}

// TestWebVHWitnessParameter: malformed witness configurations are refused
// when the entry is read, not later.
func TestWebVHWitnessParameter(t *testing.T) {
	w1, w2 := newKey(t), newKey(t)
	id1, id2 := witnessID(w1), witnessID(w2)
	bad := []string{
		`{"threshold":0,"witnesses":[{"id":"` + id1 + `"}]}`,
		`{"threshold":2,"witnesses":[{"id":"` + id1 + `"}]}`,
		`{"threshold":2,"witnesses":[{"id":"` + id1 + `"},{"id":"` + id1 + `"}]}`,
		`{"threshold":1.5,"witnesses":[{"id":"` + id1 + `"},{"id":"` + id2 + `"}]}`,
		`{"threshold":"1","witnesses":[{"id":"` + id1 + `"}]}`,
		`{"witnesses":[{"id":"` + id1 + `"}]}`,
		`{"threshold":1,"witnesses":[]}`,
		`{"threshold":1}`,
		`{"threshold":1,"witnesses":[{"id":"did:web:example.com"}]}`,
		`{"threshold":1,"witnesses":[{"id":"` + Multikey(pub(w1)) + `"}]}`,
		`{"threshold":1,"witnesses":[{"id":"` + id1 + `#` + Multikey(pub(w1)) + `"}]}`,
		`{"threshold":1,"witnesses":[{"id":"did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"}]}`,
		`{"threshold":1,"witnesses":[{"id":"` + id1 + `","weight":1}]}`,
		`{"threshold":1,"witnesses":[{"id":"` + id1 + `"}],"extra":true}`,
		`[]`,
	}
	for _, w := range bad {
		if _, err := parseWitness(json.RawMessage(w)); err == nil {
			t.Errorf("parseWitness(%s) accepted", w)
		}
	}
	for _, w := range []string{`{}`, `null`, `{"threshold":1,"witnesses":[{"id":"` + id1 + `"},{"id":"` + id2 + `"}]}`} {
		if _, err := parseWitness(json.RawMessage(w)); err != nil {
			t.Errorf("parseWitness(%s) = %v", w, err)
		}
	}
}
