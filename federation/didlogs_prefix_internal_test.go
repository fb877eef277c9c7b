package federation

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did/webvh"
)

// TestWitnessedPrefix: a log whose last entry still waits for its
// witnesses is announced up to its last witnessed entry; a witnessed log
// as it is.
func TestWitnessedPrefix(t *testing.T) {
	_, signer, _ := ed25519.GenerateKey(rand.Reader)
	_, w1, _ := ed25519.GenerateKey(rand.Reader)
	_, w2, _ := ed25519.GenerateKey(rand.Reader)
	id := func(k ed25519.PrivateKey) string { return "did:key:" + webvh.Multikey(k.Public().(ed25519.PublicKey)) }
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	l1, err := webvh.Create(webvh.CreateOptions{HostPath: "a.example:accounts:x",
		UpdateKeys: []ed25519.PublicKey{signer.Public().(ed25519.PublicKey)}, Time: t0, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := l1.Update(webvh.UpdateOptions{Witness: &webvh.Witness{Threshold: 2, Witnesses: []webvh.WitnessMember{{ID: id(w1)}, {ID: id(w2)}}},
		Time: t0.Add(time.Minute), Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	v2 := l2.Result().Metadata.VersionID
	proof := func(k ed25519.PrivateKey) json.RawMessage {
		p, err := webvh.WitnessProof(k, v2, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	one, _ := json.Marshal([]webvh.WitnessProofs{{VersionID: v2, Proof: []json.RawMessage{proof(w1)}}})
	if got := witnessedPrefix(l2.Bytes(), one, nil); string(got) != string(l1.Bytes())+"\n" && string(got) != string(l1.Bytes()) {
		t.Fatalf("one proof of two: announced %d bytes, want the genesis (%d)", len(got), len(l1.Bytes()))
	}
	both, _ := json.Marshal([]webvh.WitnessProofs{{VersionID: v2, Proof: []json.RawMessage{proof(w1), proof(w2)}}})
	if got := witnessedPrefix(l2.Bytes(), both, nil); string(got) != string(l2.Bytes()) {
		t.Fatal("a witnessed log was cut")
	}
	if got := witnessedPrefix([]byte("not a log\n"), nil, nil); string(got) != "not a log\n" {
		t.Fatal("an invalid log was changed")
	}
}
