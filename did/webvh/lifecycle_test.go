package webvh

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// t0 is the time of the first entry of test logs.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }

func mustCreate(t testing.TB, o CreateOptions) *Log {
	t.Helper()
	l, err := Create(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustUpdate(t testing.TB, l *Log, o UpdateOptions) *Log {
	t.Helper()
	n, err := l.Update(o)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestWebVHLifecycle: create → rotate under pre-rotation → move (portable)
// → deactivate, verified at every step.
func TestWebVHLifecycle(t *testing.T) {
	a, b, c := newKey(t), newKey(t), newKey(t)
	doc := `{"@context":["https://www.w3.org/ns/did/v1","https://w3id.org/security/multikey/v1"],` +
		`"id":"did:webvh:{SCID}:id.example.org:users:alice",` +
		`"verificationMethod":[{"id":"did:webvh:{SCID}:id.example.org:users:alice#k1","type":"Multikey",` +
		`"controller":"did:webvh:{SCID}:id.example.org:users:alice","publicKeyMultibase":"` + Multikey(pub(a)) + `"}],` +
		`"authentication":["did:webvh:{SCID}:id.example.org:users:alice#k1"]}`
	l := mustCreate(t, CreateOptions{
		HostPath:      "id.example.org:users:alice",
		Document:      json.RawMessage(doc),
		UpdateKeys:    []ed25519.PublicKey{pub(a)},
		NextKeyHashes: []string{KeyHash(Multikey(pub(b)))},
		Portable:      true,
		Time:          at(0),
		Signer:        a,
	})
	first := l.Result()
	scid := first.Metadata.SCID
	oldDID := "did:webvh:" + scid + ":id.example.org:users:alice"
	if first.DID != oldDID || !first.Metadata.Portable || first.Metadata.VersionNumber != 1 {
		t.Fatalf("created %+v", first.Metadata)
	}
	if strings.Contains(string(l.Bytes()), "{SCID}") {
		t.Fatal("placeholder left in the log")
	}

	// Rotate A → B (committed), committing to C.
	l = mustUpdate(t, l, UpdateOptions{
		UpdateKeys:    []ed25519.PublicKey{pub(b)},
		NextKeyHashes: []string{KeyHash(Multikey(pub(c)))},
		Time:          at(1),
		Signer:        b,
	})
	// Move to another host, rotating to C and ending pre-rotation.
	l = mustUpdate(t, l, UpdateOptions{
		MoveTo:        "moved.example.net",
		UpdateKeys:    []ed25519.PublicKey{pub(c)},
		NextKeyHashes: []string{},
		Time:          at(2),
		Signer:        c,
	})
	newDID := "did:webvh:" + scid + ":moved.example.net"
	var moved struct {
		ID                 string   `json:"id"`
		AlsoKnownAs        []string `json:"alsoKnownAs"`
		VerificationMethod []struct {
			ID string `json:"id"`
		} `json:"verificationMethod"`
	}
	if err := json.Unmarshal(l.Result().Document, &moved); err != nil {
		t.Fatal(err)
	}
	if moved.ID != newDID || !slices.Contains(moved.AlsoKnownAs, oldDID) || moved.VerificationMethod[0].ID != newDID+"#k1" {
		t.Fatalf("moved document %+v", moved)
	}
	// Deactivate (pre-rotation is off, so C, the previous key, signs).
	l = mustUpdate(t, l, UpdateOptions{Deactivate: true, Time: at(3), Signer: c})

	res, err := Verify(l.Bytes(), Options{DID: newDID})
	if err != nil {
		t.Fatal(err)
	}
	md := res.Metadata
	if !md.Deactivated || md.VersionNumber != 4 || md.SCID != scid || len(md.UpdateKeys) != 0 || !md.Created.Equal(at(0)) || !md.Updated.Equal(at(3)) {
		t.Fatalf("metadata %+v", md)
	}
	// The old DID still resolves to the log (its SCID, an entry with its id).
	if _, err := Verify(l.Bytes(), Options{DID: oldDID}); err != nil {
		t.Fatalf("resolving the old DID: %v", err)
	}
	// A DID with the right SCID on a host the log never named does not.
	if _, err := Verify(l.Bytes(), Options{DID: "did:webvh:" + scid + ":other.example"}); !errors.Is(err, ErrDIDMismatch) {
		t.Fatalf("other host: %v, want ErrDIDMismatch", err)
	}
	// Nothing follows deactivation.
	if _, err := l.Update(UpdateOptions{Time: at(4), Signer: c}); !errors.Is(err, ErrDeactivated) {
		t.Fatalf("update after deactivation: %v", err)
	}
	// Not even an entry forged past Update.
	forged := appendForged(t, l, map[string]any{}, nil, at(4), c)
	if _, err := Verify(forged, Options{}); !errors.Is(err, ErrDeactivated) {
		t.Fatalf("forged entry after deactivation: %v", err)
	}
}

// appendForged appends a correctly hashed and signed entry with the given
// parameters and state (nil: the current one) to l, without the checks of
// Update: what an attacker holding signer could publish.
func appendForged(t testing.TB, l *Log, params map[string]any, state json.RawMessage, when time.Time, signer ed25519.PrivateKey) []byte {
	t.Helper()
	pj, _ := json.Marshal(params)
	if state == nil {
		state = l.Result().Document
	}
	tj, _ := json.Marshal(when.Format(time.RFC3339))
	m := map[string]json.RawMessage{"versionTime": tj, "parameters": pj, "state": state}
	line, err := sealEntry(m, l.st.versionNumber+1, l.st.versionID, signer, when)
	if err != nil {
		t.Fatal(err)
	}
	return append(l.Bytes(), append(line, '\n')...)
}

// TestWebVHRefusals: the controller-side refusals, and the same entries
// forged past Update refused by Verify.
func TestWebVHRefusals(t *testing.T) {
	a, b, mallory := newKey(t), newKey(t), newKey(t)
	fixed := mustCreate(t, CreateOptions{HostPath: "example.com", UpdateKeys: []ed25519.PublicKey{pub(a)}, Time: at(0), Signer: a})

	t.Run("move when not portable", func(t *testing.T) {
		_, err := fixed.Update(UpdateOptions{MoveTo: "elsewhere.example", Time: at(1), Signer: a})
		if !errors.Is(err, ErrPortable) {
			t.Fatalf("Update = %v, want ErrPortable", err)
		}
		doc, _ := MoveDocument(fixed.Result().Document, fixed.Result().DID, "did:webvh:"+fixed.st.scid+":elsewhere.example")
		if _, err := Verify(appendForged(t, fixed, map[string]any{}, doc, at(1), a), Options{}); !errors.Is(err, ErrPortable) {
			t.Fatalf("forged move: %v, want ErrPortable", err)
		}
	})
	t.Run("portable set later", func(t *testing.T) {
		if _, err := Verify(appendForged(t, fixed, map[string]any{"portable": true}, nil, at(1), a), Options{}); !errors.Is(err, ErrPortable) {
			t.Fatalf("portable:true in entry 2: %v, want ErrPortable", err)
		}
	})
	t.Run("move without alsoKnownAs", func(t *testing.T) {
		p := mustCreate(t, CreateOptions{HostPath: "example.com", Portable: true, UpdateKeys: []ed25519.PublicKey{pub(a)}, Time: at(0), Signer: a})
		doc := json.RawMessage(`{"id":"did:webvh:` + p.st.scid + `:elsewhere.example"}`)
		if _, err := p.Update(UpdateOptions{MoveTo: "elsewhere.example", Document: doc, Time: at(1), Signer: a}); !errors.Is(err, ErrPortable) {
			t.Fatalf("Update = %v, want ErrPortable", err)
		}
	})
	t.Run("move changing the SCID", func(t *testing.T) {
		p := mustCreate(t, CreateOptions{HostPath: "example.com", Portable: true, UpdateKeys: []ed25519.PublicKey{pub(a)}, Time: at(0), Signer: a})
		other := mustCreate(t, CreateOptions{HostPath: "other.example", UpdateKeys: []ed25519.PublicKey{pub(a)}, Time: at(0), Signer: a})
		doc := json.RawMessage(`{"id":"` + other.Result().DID + `","alsoKnownAs":["` + p.Result().DID + `"]}`)
		if _, err := Verify(appendForged(t, p, map[string]any{}, doc, at(1), a), Options{}); !errors.Is(err, ErrState) {
			t.Fatalf("SCID swap: %v, want ErrState", err)
		}
	})
	t.Run("unauthorized key", func(t *testing.T) {
		if _, err := fixed.Update(UpdateOptions{Time: at(1), Signer: mallory}); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Update = %v, want ErrUnauthorized", err)
		}
		// A key the entry itself adds is not authorized without pre-rotation.
		_, err := fixed.Update(UpdateOptions{UpdateKeys: []ed25519.PublicKey{pub(mallory)}, Time: at(1), Signer: mallory})
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("self-authorizing key: %v, want ErrUnauthorized", err)
		}
		if _, err := Verify(appendForged(t, fixed, map[string]any{"updateKeys": []string{Multikey(pub(mallory))}}, nil, at(1), mallory), Options{}); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("forged: %v, want ErrUnauthorized", err)
		}
	})
	t.Run("rotated-out key", func(t *testing.T) {
		l := mustUpdate(t, fixed, UpdateOptions{UpdateKeys: []ed25519.PublicKey{pub(b)}, Time: at(1), Signer: a})
		if _, err := l.Update(UpdateOptions{Time: at(2), Signer: a}); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("old key after rotation: %v, want ErrUnauthorized", err)
		}
		mustUpdate(t, l, UpdateOptions{Time: at(2), Signer: b})
	})
	t.Run("pre-rotation", func(t *testing.T) {
		l := mustCreate(t, CreateOptions{HostPath: "example.com", UpdateKeys: []ed25519.PublicKey{pub(a)},
			NextKeyHashes: []string{KeyHash(Multikey(pub(b)))}, Time: at(0), Signer: a})
		// Mallory holds the current key A but not the committed key B.
		_, err := l.Update(UpdateOptions{UpdateKeys: []ed25519.PublicKey{pub(mallory)}, NextKeyHashes: []string{}, Time: at(1), Signer: mallory})
		if !errors.Is(err, ErrPreRotation) {
			t.Fatalf("uncommitted key: %v, want ErrPreRotation", err)
		}
		if _, err := l.Update(UpdateOptions{Time: at(1), Signer: a}); !errors.Is(err, ErrPreRotation) {
			t.Fatalf("omitted updateKeys: %v, want ErrPreRotation", err)
		}
		_, err = l.Update(UpdateOptions{UpdateKeys: []ed25519.PublicKey{pub(b)}, Time: at(1), Signer: b})
		if !errors.Is(err, ErrPreRotation) {
			t.Fatalf("omitted nextKeyHashes: %v, want ErrPreRotation", err)
		}
		// A and the committed B together: A's hash was not committed.
		_, err = l.Update(UpdateOptions{UpdateKeys: []ed25519.PublicKey{pub(b), pub(a)}, NextKeyHashes: []string{}, Time: at(1), Signer: b})
		if !errors.Is(err, ErrPreRotation) {
			t.Fatalf("uncommitted extra key: %v, want ErrPreRotation", err)
		}
		// Under pre-rotation the entry's own keys sign: the old key A cannot.
		_, err = l.Update(UpdateOptions{UpdateKeys: []ed25519.PublicKey{pub(b)}, NextKeyHashes: []string{}, Time: at(1), Signer: a})
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("old key under pre-rotation: %v, want ErrUnauthorized", err)
		}
		mustUpdate(t, l, UpdateOptions{UpdateKeys: []ed25519.PublicKey{pub(b)}, NextKeyHashes: []string{}, Time: at(1), Signer: b})

		// Committing to the current key does not allow inheriting it: under
		// pre-rotation updateKeys must be explicit.
		same := mustCreate(t, CreateOptions{HostPath: "example.com", UpdateKeys: []ed25519.PublicKey{pub(a)},
			NextKeyHashes: []string{KeyHash(Multikey(pub(a)))}, Time: at(0), Signer: a})
		forged := appendForged(t, same, map[string]any{"nextKeyHashes": []string{}}, nil, at(1), a)
		if _, err := Verify(forged, Options{}); !errors.Is(err, ErrPreRotation) {
			t.Fatalf("inherited updateKeys under pre-rotation: %v, want ErrPreRotation", err)
		}
		explicit := appendForged(t, same, map[string]any{"updateKeys": []string{Multikey(pub(a))}, "nextKeyHashes": []string{}}, nil, at(1), a)
		if _, err := Verify(explicit, Options{}); err != nil {
			t.Fatalf("explicit committed key: %v", err)
		}
	})
	t.Run("time", func(t *testing.T) {
		if _, err := fixed.Update(UpdateOptions{Time: at(0), Signer: a}); !errors.Is(err, ErrVersionTime) {
			t.Fatalf("same versionTime: %v, want ErrVersionTime", err)
		}
		if _, err := fixed.Update(UpdateOptions{Time: time.Now().Add(time.Hour), Signer: a}); !errors.Is(err, ErrVersionTime) {
			t.Fatalf("future versionTime: %v, want ErrVersionTime", err)
		}
	})
}

// TestWebVHCreateRefusals covers the checks Create makes on its input.
func TestWebVHCreateRefusals(t *testing.T) {
	a, b := newKey(t), newKey(t)
	cases := map[string]CreateOptions{
		"bad host":           {HostPath: "127.0.0.1", UpdateKeys: []ed25519.PublicKey{pub(a)}, Signer: a},
		"no update keys":     {HostPath: "example.com", Signer: a},
		"signer not a key":   {HostPath: "example.com", UpdateKeys: []ed25519.PublicKey{pub(b)}, Signer: a},
		"document id":        {HostPath: "example.com", Document: json.RawMessage(`{"id":"did:web:example.com"}`), UpdateKeys: []ed25519.PublicKey{pub(a)}, Signer: a},
		"bad witness":        {HostPath: "example.com", Witness: &Witness{Threshold: 2, Witnesses: []WitnessMember{{ID: "did:key:" + Multikey(pub(b))}}}, UpdateKeys: []ed25519.PublicKey{pub(a)}, Signer: a},
		"ttl out of range":   {HostPath: "example.com", TTL: ptr[int64](-1), UpdateKeys: []ed25519.PublicKey{pub(a)}, Signer: a},
		"watcher not a URL":  {HostPath: "example.com", Watchers: []string{"not a url"}, UpdateKeys: []ed25519.PublicKey{pub(a)}, Signer: a},
		"no signer":          {HostPath: "example.com", UpdateKeys: []ed25519.PublicKey{pub(a)}},
		"path traversal":     {HostPath: "example.com:..", UpdateKeys: []ed25519.PublicKey{pub(a)}, Signer: a},
		"future versionTime": {HostPath: "example.com", Time: time.Now().Add(time.Hour), UpdateKeys: []ed25519.PublicKey{pub(a)}, Signer: a},
	}
	for name, o := range cases {
		if _, err := Create(o); err == nil {
			t.Errorf("%s: Create succeeded", name)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestWebVHOpenAndExtend: a published log read back with Open can be
// extended, and the extension verifies.
func TestWebVHOpenAndExtend(t *testing.T) {
	a := newKey(t)
	l := mustCreate(t, CreateOptions{HostPath: "example.com%3A8443:dids:x", UpdateKeys: []ed25519.PublicKey{pub(a)}, TTL: ptr[int64](60), Time: at(0), Signer: a})
	o, err := Open(l.Bytes(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	o = mustUpdate(t, o, UpdateOptions{Watchers: []string{"https://watcher.example"}, Time: at(1), Signer: a})
	res, err := Verify(o.Bytes(), Options{DID: l.Result().DID})
	if err != nil {
		t.Fatal(err)
	}
	if res.Metadata.TTL != 60 || !slices.Equal(res.Metadata.Watchers, []string{"https://watcher.example"}) || !bytes.HasPrefix(o.Bytes(), l.Bytes()) {
		t.Fatalf("metadata %+v", res.Metadata)
	}
}
