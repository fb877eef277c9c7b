package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/store"
)

// testWitnessedLogs: the witnessed head of a SCID is stored once, moved
// only from the head it was read at (compare-and-swap), and read back.
func testWitnessedLogs(t *testing.T, s Store) {
	if _, err := s.WitnessedLog(ctx, "QmUnknown"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown SCID: %v", err)
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	l1 := &federation.WitnessedLog{SCID: "QmSCID", DID: "did:webvh:QmSCID:example.org", VersionNumber: 1,
		VersionID: "1-QmOne", EntryHash: "QmOne", Log: []byte("{\"one\":1}\n"), Peer: "https://b.example", UpdatedAt: at}
	if ok, err := s.PutWitnessedLog(ctx, l1, ""); err != nil || !ok {
		t.Fatalf("first head: %v %v", ok, err)
	}
	// A second first head is refused and changes nothing.
	other := *l1
	other.VersionID, other.Log = "1-QmOther", []byte("other\n")
	if ok, err := s.PutWitnessedLog(ctx, &other, ""); err != nil || ok {
		t.Fatalf("second first head: %v %v", ok, err)
	}
	got, err := s.WitnessedLog(ctx, "QmSCID")
	if err != nil || got.VersionID != "1-QmOne" || string(got.Log) != string(l1.Log) || got.DID != l1.DID ||
		got.VersionNumber != 1 || got.EntryHash != "QmOne" || !got.UpdatedAt.Equal(at) {
		t.Fatalf("head: %+v %v", got, err)
	}
	l2 := &federation.WitnessedLog{SCID: "QmSCID", DID: l1.DID, VersionNumber: 2, VersionID: "2-QmTwo", EntryHash: "QmTwo",
		Log: []byte("{\"one\":1}\n{\"two\":2}\n"), Peer: "https://c.example", UpdatedAt: at.Add(time.Second)}
	// Moving from a head that is not the stored one fails.
	if ok, err := s.PutWitnessedLog(ctx, l2, "1-QmOther"); err != nil || ok {
		t.Fatalf("move from a wrong head: %v %v", ok, err)
	}
	if ok, err := s.PutWitnessedLog(ctx, l2, "1-QmOne"); err != nil || !ok {
		t.Fatalf("move: %v %v", ok, err)
	}
	got, err = s.WitnessedLog(ctx, "QmSCID")
	if err != nil || got.VersionID != "2-QmTwo" || got.VersionNumber != 2 || string(got.Log) != string(l2.Log) || got.Peer != "https://b.example" {
		t.Fatalf("moved head: %+v %v", got, err)
	}
	// The SCIDs are counted by the peer that first asked.
	l3 := *l1
	l3.SCID = "QmThird"
	if ok, err := s.PutWitnessedLog(ctx, &l3, ""); err != nil || !ok {
		t.Fatalf("third: %v %v", ok, err)
	}
	for peer, want := range map[string]int{"https://b.example": 2, "https://c.example": 0} {
		if n, err := s.CountWitnessedLogs(ctx, peer); err != nil || n != want {
			t.Fatalf("count of %s: %d %v, want %d", peer, n, err, want)
		}
	}
}
