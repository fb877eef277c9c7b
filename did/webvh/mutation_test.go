package webvh

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/multiformats/go-multibase"
)

// entryMap is a decoded log entry whose members can be edited.
type entryMap map[string]json.RawMessage

func decodeLines(t *testing.T, log []byte) []entryMap {
	t.Helper()
	var out []entryMap
	for _, l := range bytes.Split(bytes.TrimSuffix(log, []byte("\n")), []byte("\n")) {
		var m entryMap
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func encodeLines(t *testing.T, es []entryMap) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, e := range es {
		j, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func raw(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// obj returns a decoded JSON object member of e.
func (e entryMap) obj(t *testing.T, k string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e[k], &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// proof0 returns the first proof of e as a map.
func (e entryMap) proof0(t *testing.T) map[string]any {
	t.Helper()
	var ps []map[string]any
	if err := json.Unmarshal(e["proof"], &ps); err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

// reseal recomputes entry i's versionId from the chain and signs it again
// with signer: the content is then what an authorized (or not) signer
// published, and only the semantic rules can refuse it.
func reseal(t *testing.T, es []entryMap, i int, signer ed25519.PrivateKey) {
	t.Helper()
	prev := ""
	if i == 0 {
		var p map[string]any
		_ = json.Unmarshal(es[0]["parameters"], &p)
		prev, _ = p["scid"].(string)
	} else {
		_ = json.Unmarshal(es[i-1]["versionId"], &prev)
	}
	line, err := sealEntry(es[i], i+1, prev, signer, t0.Add(time.Duration(i)*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var m entryMap
	_ = json.Unmarshal(line, &m)
	es[i] = m
}

// resign replaces entry i's proof by one that signer makes after edit has
// changed the proof options: a valid signature over a proof of the wrong
// form.
func resign(t *testing.T, es []entryMap, i int, signer ed25519.PrivateKey, edit func(*Proof)) {
	t.Helper()
	var vid string
	_ = json.Unmarshal(es[i]["versionId"], &vid)
	doc := withoutProof(es[i], vid)
	mk := Multikey(pub(signer))
	p := &Proof{Type: "DataIntegrityProof", Cryptosuite: Cryptosuite, VerificationMethod: "did:key:" + mk + "#" + mk,
		Created: at(i).Format(time.RFC3339), ProofPurpose: "assertionMethod"}
	edit(p)
	in, err := signingInput(doc, p)
	if err != nil {
		t.Fatal(err)
	}
	p.ProofValue, _ = multibase.Encode(multibase.Base58BTC, ed25519.Sign(signer, in))
	es[i]["proof"] = raw([]any{p})
}

// TestWebVHMutations edits each part of a valid log and checks that Verify
// refuses it for the right reason. "raw" edits are made to the published
// bytes (no re-signing); "resealed" edits are hashed and signed again, as a
// holder of an update key could, so that the rule itself must refuse them.
func TestWebVHMutations(t *testing.T) {
	a, b, mallory := newKey(t), newKey(t), newKey(t)
	l := mustCreate(t, CreateOptions{HostPath: "example.com", UpdateKeys: []ed25519.PublicKey{pub(a)}, Time: at(0), Signer: a})
	l = mustUpdate(t, l, UpdateOptions{UpdateKeys: []ed25519.PublicKey{pub(a), pub(b)}, Time: at(1), Signer: a})
	l = mustUpdate(t, l, UpdateOptions{TTL: ptr[int64](300), Time: at(2), Signer: b})
	good := l.Bytes()
	if _, err := Verify(good, Options{}); err != nil {
		t.Fatal(err)
	}
	scid := l.st.scid

	cases := []struct {
		name string
		edit func(t *testing.T, es []entryMap) []entryMap
		want error
	}{
		// versionId
		{"versionId number", func(t *testing.T, es []entryMap) []entryMap {
			v := strings.Replace(string(es[1]["versionId"]), `"2-`, `"3-`, 1)
			es[1]["versionId"] = json.RawMessage(v)
			return es
		}, ErrVersionID},
		{"versionId hash of other data", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["versionId"] = raw("2-" + hashString([]byte("other")))
			return es
		}, ErrEntryHash},
		{"versionId two dashes", func(t *testing.T, es []entryMap) []entryMap {
			var v string
			_ = json.Unmarshal(es[1]["versionId"], &v)
			es[1]["versionId"] = raw(strings.Replace(v, "-", "--", 1))
			return es
		}, ErrVersionID},
		{"versionId not a multihash", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["versionId"] = raw("2-abc")
			return es
		}, ErrVersionID},
		{"versionId leading zero", func(t *testing.T, es []entryMap) []entryMap {
			v := strings.Replace(string(es[1]["versionId"]), `"2-`, `"02-`, 1)
			es[1]["versionId"] = json.RawMessage(v)
			return es
		}, ErrVersionID},
		{"versionId not a string", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["versionId"] = raw(2)
			return es
		}, ErrMalformed},
		// versionTime
		{"versionTime raw", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["versionTime"] = raw(at(1).Add(time.Second).Format(time.RFC3339))
			return es
		}, ErrEntryHash},
		{"versionTime resealed equal to previous", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["versionTime"] = raw(at(0).Format(time.RFC3339))
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrVersionTime},
		{"versionTime resealed before previous", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["versionTime"] = raw(at(-1).Format(time.RFC3339))
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrVersionTime},
		{"versionTime resealed in the future", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["versionTime"] = raw(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrVersionTime},
		{"versionTime resealed not UTC", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["versionTime"] = raw(at(1).In(time.FixedZone("X", 3600)).Format(time.RFC3339))
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrVersionTime},
		{"versionTime resealed no zone", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["versionTime"] = raw("2026-01-02T04:04:05")
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrVersionTime},
		// parameters
		{"parameters raw", func(t *testing.T, es []entryMap) []entryMap {
			es[2]["parameters"] = raw(map[string]any{"ttl": 301})
			return es
		}, ErrEntryHash},
		{"parameters resealed scid again", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["parameters"] = raw(map[string]any{"scid": scid})
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrParameters},
		{"parameters resealed unknown", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["parameters"] = raw(map[string]any{"witnessThreshold": 0})
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrParameters},
		{"parameters resealed older method", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["parameters"] = raw(map[string]any{"method": "did:webvh:0.5"})
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrParameters},
		{"parameters resealed bad update key", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["parameters"] = raw(map[string]any{"updateKeys": []string{"z6MkNotAKey"}})
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrParameters},
		{"parameters resealed ttl string", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["parameters"] = raw(map[string]any{"ttl": "60"})
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrParameters},
		{"parameters resealed portable true later", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["parameters"] = raw(map[string]any{"portable": true})
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrPortable},
		{"parameters first entry without method", func(t *testing.T, es []entryMap) []entryMap {
			p := es[0].obj(t, "parameters")
			delete(p, "method")
			es[0]["parameters"] = raw(p)
			return es
		}, ErrParameters},
		{"parameters not an object", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["parameters"] = raw([]int{})
			return es
		}, ErrParameters},
		// SCID
		{"scid changed", func(t *testing.T, es []entryMap) []entryMap {
			p := es[0].obj(t, "parameters")
			p["scid"] = hashString([]byte("x"))
			es[0]["parameters"] = raw(p)
			return es
		}, ErrSCID},
		{"scid resealed not matching the entry", func(t *testing.T, es []entryMap) []entryMap {
			p := es[0].obj(t, "parameters")
			s := es[0].obj(t, "state")
			p["scid"] = hashString([]byte("x"))
			s["id"] = "did:webvh:" + hashString([]byte("x")) + ":example.com"
			es[0]["parameters"], es[0]["state"] = raw(p), raw(s)
			reseal(t, es, 0, a)
			return es[:1]
		}, ErrSCID},
		// state
		{"state raw", func(t *testing.T, es []entryMap) []entryMap {
			s := es[1].obj(t, "state")
			s["service"] = []any{map[string]any{"id": "#x", "type": "X", "serviceEndpoint": "https://evil.example"}}
			es[1]["state"] = raw(s)
			return es
		}, ErrEntryHash},
		{"state resealed other SCID", func(t *testing.T, es []entryMap) []entryMap {
			s := es[1].obj(t, "state")
			s["id"] = "did:webvh:" + hashString([]byte("x")) + ":example.com"
			es[1]["state"] = raw(s)
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrState},
		{"state resealed moved without portability", func(t *testing.T, es []entryMap) []entryMap {
			s := es[1].obj(t, "state")
			s["id"] = "did:webvh:" + scid + ":evil.example"
			s["alsoKnownAs"] = []string{"did:webvh:" + scid + ":example.com"}
			es[1]["state"] = raw(s)
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrPortable},
		{"state resealed id not did:webvh", func(t *testing.T, es []entryMap) []entryMap {
			s := es[1].obj(t, "state")
			s["id"] = "did:web:example.com"
			es[1]["state"] = raw(s)
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrState},
		{"state resealed not an object", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["state"] = raw("did")
			reseal(t, es, 1, a)
			return es[:2]
		}, ErrState},
		// proof
		{"proof value", func(t *testing.T, es []entryMap) []entryMap {
			p := es[1].proof0(t)
			v := p["proofValue"].(string)
			c := "2"
			if v[5] == '2' {
				c = "3"
			}
			p["proofValue"] = v[:5] + c + v[6:]
			es[1]["proof"] = raw([]any{p})
			return es
		}, ErrProof},
		{"proof verificationMethod other key", func(t *testing.T, es []entryMap) []entryMap {
			p := es[1].proof0(t)
			mk := Multikey(pub(b))
			p["verificationMethod"] = "did:key:" + mk + "#" + mk
			es[1]["proof"] = raw([]any{p})
			return es
		}, ErrProof},
		{"proof verificationMethod body and fragment differ", func(t *testing.T, es []entryMap) []entryMap {
			p := es[1].proof0(t)
			p["verificationMethod"] = "did:key:" + Multikey(pub(b)) + "#" + Multikey(pub(a))
			es[1]["proof"] = raw([]any{p})
			return es
		}, ErrProof},
		{"proof signed by an unauthorized key", func(t *testing.T, es []entryMap) []entryMap {
			reseal(t, es, 1, mallory)
			return es[:2]
		}, ErrUnauthorized},
		{"proof created changed", func(t *testing.T, es []entryMap) []entryMap {
			p := es[1].proof0(t)
			p["created"] = at(5).Format(time.RFC3339)
			es[1]["proof"] = raw([]any{p})
			return es
		}, ErrProof},
		{"proof created malformed", func(t *testing.T, es []entryMap) []entryMap {
			p := es[1].proof0(t)
			p["created"] = "yesterday"
			es[1]["proof"] = raw([]any{p})
			return es
		}, ErrProof},
		{"proof proofPurpose", func(t *testing.T, es []entryMap) []entryMap {
			p := es[1].proof0(t)
			p["proofPurpose"] = "authentication"
			es[1]["proof"] = raw([]any{p})
			return es
		}, ErrProof},
		{"proof cryptosuite", func(t *testing.T, es []entryMap) []entryMap {
			p := es[1].proof0(t)
			p["cryptosuite"] = "ecdsa-jcs-2019"
			es[1]["proof"] = raw([]any{p})
			return es
		}, ErrProof},
		{"proof extra member", func(t *testing.T, es []entryMap) []entryMap {
			p := es[1].proof0(t)
			p["nonce"] = "x"
			es[1]["proof"] = raw([]any{p})
			return es
		}, ErrProof},
		{"proof resigned proofPurpose authentication", func(t *testing.T, es []entryMap) []entryMap {
			resign(t, es, 1, a, func(p *Proof) { p.ProofPurpose = "authentication" })
			return es
		}, ErrProof},
		{"proof resigned other cryptosuite", func(t *testing.T, es []entryMap) []entryMap {
			resign(t, es, 1, a, func(p *Proof) { p.Cryptosuite = "eddsa-rdfc-2022" })
			return es
		}, ErrProof},
		{"proof resigned other type", func(t *testing.T, es []entryMap) []entryMap {
			resign(t, es, 1, a, func(p *Proof) { p.Type = "Ed25519Signature2020" })
			return es
		}, ErrProof},
		{"proof resigned created malformed", func(t *testing.T, es []entryMap) []entryMap {
			resign(t, es, 1, a, func(p *Proof) { p.Created = "yesterday" })
			return es
		}, ErrProof},
		{"proof resigned verificationMethod claims an authorized key", func(t *testing.T, es []entryMap) []entryMap {
			// Signed by mallory; the fragment names the authorized key A.
			resign(t, es, 1, mallory, func(p *Proof) {
				p.VerificationMethod = "did:key:" + Multikey(pub(mallory)) + "#" + Multikey(pub(a))
			})
			return es
		}, ErrProof},
		{"proof resigned verificationMethod not a did:key", func(t *testing.T, es []entryMap) []entryMap {
			resign(t, es, 1, a, func(p *Proof) { p.VerificationMethod = "did:webvh:" + scid + ":example.com#key-1" })
			return es
		}, ErrProof},
		{"proof resigned, a second proof by an unauthorized key", func(t *testing.T, es []entryMap) []entryMap {
			good := es[1]["proof"]
			resign(t, es, 1, mallory, func(*Proof) {})
			var ps []json.RawMessage
			_ = json.Unmarshal(good, &ps)
			var bad []json.RawMessage
			_ = json.Unmarshal(es[1]["proof"], &bad)
			es[1]["proof"] = raw(append(ps, bad...))
			return es
		}, ErrUnauthorized},
		{"proof empty", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["proof"] = raw([]any{})
			return es
		}, ErrProof},
		{"proof missing", func(t *testing.T, es []entryMap) []entryMap {
			delete(es[1], "proof")
			return es
		}, ErrMalformed},
		{"extra entry member", func(t *testing.T, es []entryMap) []entryMap {
			es[1]["note"] = raw("x")
			return es
		}, ErrMalformed},
		// the chain
		{"entries swapped", func(t *testing.T, es []entryMap) []entryMap {
			es[1], es[2] = es[2], es[1]
			return es
		}, ErrVersionID},
		{"entry removed", func(t *testing.T, es []entryMap) []entryMap {
			return append(es[:1], es[2])
		}, ErrVersionID},
		{"first entry removed", func(t *testing.T, es []entryMap) []entryMap {
			return es[1:]
		}, ErrVersionID},
		{"entry duplicated", func(t *testing.T, es []entryMap) []entryMap {
			return append(es[:2], es[1], es[2])
		}, ErrVersionID},
		{"second entry at the same version", func(t *testing.T, es []entryMap) []entryMap {
			fork := entryMap{}
			for k, v := range es[1] {
				fork[k] = v
			}
			fork["parameters"] = raw(map[string]any{"ttl": 5})
			fork["versionTime"] = raw(at(1).Add(time.Minute).Format(time.RFC3339))
			forked := append([]entryMap{}, es[:2]...)
			forked = append(forked, fork)
			reseal(t, forked, 2, a)
			// reseal numbered it 3 over entry 2; renumber to 2 as a fork.
			var v string
			_ = json.Unmarshal(forked[2]["versionId"], &v)
			forked[2]["versionId"] = raw("2" + v[1:])
			return forked
		}, ErrVersionID},
		{"entry from another log", func(t *testing.T, es []entryMap) []entryMap {
			// Same key and host, created a second later: another SCID.
			other := mustCreate(t, CreateOptions{HostPath: "example.com", UpdateKeys: []ed25519.PublicKey{pub(a)}, Time: at(0).Add(time.Second), Signer: a})
			o2 := mustUpdate(t, other, UpdateOptions{Time: at(1), Signer: a})
			return append(es[:1], decodeLines(t, o2.Bytes())[1])
		}, ErrEntryHash},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			log := encodeLines(t, c.edit(t, decodeLines(t, good)))
			_, err := Verify(log, Options{})
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}

	t.Run("unmodified still verifies after the edits", func(t *testing.T) {
		if _, err := Verify(encodeLines(t, decodeLines(t, good)), Options{}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWebVHLimits: inputs over the bounds are refused before any work.
func TestWebVHLimits(t *testing.T) {
	a := newKey(t)
	l := mustCreate(t, CreateOptions{HostPath: "example.com", UpdateKeys: []ed25519.PublicKey{pub(a)}, Time: at(0), Signer: a})
	for i := 1; i <= 3; i++ {
		l = mustUpdate(t, l, UpdateOptions{Time: at(i), Signer: a})
	}
	log := l.Bytes()
	small := Limits{MaxLogBytes: 1 << 20, MaxEntries: 3, MaxLineBytes: 64 << 10, MaxDepth: 32, MaxWitnessBytes: 1024, MaxWitnessProof: 4}
	if _, err := Verify(log, Options{Limits: small}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("entries: %v", err)
	}
	small.MaxEntries, small.MaxLogBytes = 10, len(log)-1
	if _, err := Verify(log, Options{Limits: small}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("size: %v", err)
	}
	small.MaxLogBytes, small.MaxLineBytes = 1<<20, 100
	if _, err := Verify(log, Options{Limits: small}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("line: %v", err)
	}
	deep := []byte(`{"versionId":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`)
	if _, err := Verify(deep, Options{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("depth: %v", err)
	}
	if _, err := Verify(append([]byte("\n"), log...), Options{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("blank line: %v", err)
	}
	if _, err := Verify(nil, Options{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty: %v", err)
	}
	dup := bytes.Replace(log, []byte(`{"versionId":`), []byte(`{"versionId":"1-x","versionId":`), 1)
	if _, err := Verify(dup, Options{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("duplicate member: %v", err)
	}
}
