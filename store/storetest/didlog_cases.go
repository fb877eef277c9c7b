package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

// eventLister is what a store that keeps the event log provides.
type eventLister interface {
	ListEvents(ctx context.Context, after int64, limit int) ([]federation.LogEvent, error)
}

func webvhLog(scid, host, name string, version int, at time.Time) *identity.DIDLog {
	d := "did:webvh:" + scid + ":" + host + ":accounts:" + name
	return &identity.DIDLog{DID: d, SCID: scid, CurrentDID: d, Name: name, HomeIssuer: "https://" + host,
		Log: []byte(fmt.Sprintf("{\"v\":%d}\n", version)), Version: version, UpdatedAt: at}
}

// testDIDLogStore: logs are kept per SCID, with or without an account
// here; PutDIDLog is a compare-and-swap on the version; every DID an
// account has had leads to it; the logs homed at an issuer are paged.
func testDIDLogStore(t *testing.T, s Store) {
	at := fixed
	a := account("dora")
	l := webvhLog("QmDora", "a.example", "doraname", 1, at)
	a.DID, a.HomeIssuer = l.DID, l.HomeIssuer
	l.Escrow = []byte{0, 1, 2, 255}
	var before int64
	el, hasEvents := s.(eventLister)
	if hasEvents {
		evs, err := el.ListEvents(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) > 0 {
			before = evs[len(evs)-1].Seq
		}
	}
	if err := s.CreateAccountWithDIDLog(ctx, a, l); err != nil {
		t.Fatal(err)
	}
	if hasEvents {
		evs, err := el.ListEvents(ctx, before, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 2 || evs[0].Type != "did.log" || evs[1].Type != "account.created" ||
			evs[0].AccountDID != a.DID || evs[0].Payload["scid"] != "QmDora" {
			t.Fatalf("events of the creation: %+v", evs)
		}
	}
	check := func(what string, got *identity.DIDLog, err error, want *identity.DIDLog) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got.DID != want.DID || got.SCID != want.SCID || got.CurrentDID != want.CurrentDID || got.Name != want.Name ||
			got.HomeIssuer != want.HomeIssuer || string(got.Log) != string(want.Log) || got.Version != want.Version ||
			string(got.Witness) != string(want.Witness) || (got.Witness == nil) != (want.Witness == nil) ||
			string(got.Escrow) != string(want.Escrow) || (got.Escrow == nil) != (want.Escrow == nil) ||
			!got.UpdatedAt.Equal(want.UpdatedAt) {
			t.Fatalf("%s: got %+v, want %+v", what, got, want)
		}
	}
	got, err := s.GetDIDLog(ctx, a.DID)
	check("by account", got, err, l)
	got, err = s.GetDIDLogBySCID(ctx, "QmDora")
	check("by SCID", got, err, l)
	got, err = s.GetDIDLogByName(ctx, "doraname")
	check("by name", got, err, l)
	for _, f := range []func() (*identity.DIDLog, error){
		func() (*identity.DIDLog, error) { return s.GetDIDLog(ctx, "did:webvh:QmNone:a.example:accounts:x") },
		func() (*identity.DIDLog, error) { return s.GetDIDLogBySCID(ctx, "QmNone") },
		func() (*identity.DIDLog, error) { return s.GetDIDLogByName(ctx, "nosuchname") },
	} {
		if _, err := f(); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown log: %v", err)
		}
	}

	// A second log of the same SCID is not inserted; a second account with
	// the same SCID is not created.
	dup := webvhLog("QmDora", "a.example", "other", 1, at)
	if ok, err := s.PutDIDLog(ctx, dup, 0); err != nil || ok {
		t.Fatalf("second insert of a SCID: %v %v", ok, err)
	}
	b := account("dorb")
	b.DID = dup.DID
	if err := s.CreateAccountWithDIDLog(ctx, b, dup); err == nil {
		t.Fatal("an account was created with a SCID already stored")
	}
	if _, err := s.GetAccount(ctx, b.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("account of a refused log: %v", err)
	}

	// A move: version 2 names another host; the first DID stays the key.
	moved := webvhLog("QmDora", "b.example", "doraname", 2, at.Add(time.Minute))
	moved.DID = a.DID
	moved.Witness = []byte(`[{"versionId":"2-Qm","proof":[]}]`)
	if ok, err := s.PutDIDLog(ctx, moved, 3); err != nil || ok {
		t.Fatalf("CAS from a wrong version: %v %v", ok, err)
	}
	got, err = s.GetDIDLogBySCID(ctx, "QmDora")
	check("after a refused CAS", got, err, l)
	if _, err := s.AccountForDID(ctx, moved.CurrentDID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused CAS added a DID: %v", err)
	}
	if ok, err := s.PutDIDLog(ctx, moved, 1); err != nil || !ok {
		t.Fatalf("CAS: %v %v", ok, err)
	}
	got, err = s.GetDIDLog(ctx, a.DID)
	check("after the move", got, err, moved)
	if ok, err := s.PutDIDLog(ctx, moved, 1); err != nil || ok {
		t.Fatalf("CAS from a stale version: %v %v", ok, err)
	}
	for _, d := range []string{a.DID, moved.CurrentDID} {
		if acct, err := s.AccountForDID(ctx, d); err != nil || acct != a.DID {
			t.Fatalf("account of %s: %q %v", d, acct, err)
		}
	}
	if dids, err := s.AccountDIDs(ctx, a.DID); err != nil || fmt.Sprint(dids) != fmt.Sprint([]string{a.DID, moved.CurrentDID}) {
		t.Fatalf("account DIDs: %v %v", dids, err)
	}

	// An account without a log is found by its own DID only.
	k := mustAccount(t, s, "kim")
	if acct, err := s.AccountForDID(ctx, k.DID); err != nil || acct != k.DID {
		t.Fatalf("account of a did:key: %q %v", acct, err)
	}
	if _, err := s.AccountForDID(ctx, "did:key:z6MkNobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown DID: %v", err)
	}

	// A log homed elsewhere, without an account here, inside a transaction
	// that rolls back: nothing is kept.
	far := webvhLog("QmFar", "c.example", "farname", 1, at)
	err = s.InTx(ctx, func(ctx context.Context) error {
		if ok, err := s.PutDIDLog(ctx, far, 0); err != nil || !ok {
			return fmt.Errorf("put in a transaction: %v %v", ok, err)
		}
		return errors.New("roll back")
	})
	if err == nil || err.Error() != "roll back" {
		t.Fatal(err)
	}
	if _, err := s.GetDIDLogBySCID(ctx, "QmFar"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rolled-back log: %v", err)
	}
	if _, err := s.AccountForDID(ctx, far.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rolled-back DID: %v", err)
	}
	err = s.InTx(ctx, func(ctx context.Context) error {
		if ok, err := s.PutDIDLog(ctx, far, 0); err != nil || !ok {
			return fmt.Errorf("put in a transaction: %v %v", ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err = s.GetDIDLogByName(ctx, "farname")
	check("a log without an account", got, err, far)
	if acct, err := s.AccountForDID(ctx, far.DID); err != nil || acct != far.DID {
		t.Fatalf("account of a log without an account: %q %v", acct, err)
	}
	if _, err := s.GetAccount(ctx, far.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("account row of a remote log: %v", err)
	}

	// A name shared by two rows: the one whose account is here wins.
	clash := webvhLog("QmClash", "d.example", "doraname", 1, at.Add(time.Hour))
	if ok, err := s.PutDIDLog(ctx, clash, 0); err != nil || !ok {
		t.Fatalf("clash: %v %v", ok, err)
	}
	got, err = s.GetDIDLogByName(ctx, "doraname")
	check("shared name", got, err, moved)

	// Paging of the logs homed at an issuer, in SCID order.
	var want []string
	for i := range 5 {
		scid := fmt.Sprintf("QmPage%d", i)
		want = append(want, scid)
		if ok, err := s.PutDIDLog(ctx, webvhLog(scid, "p.example", fmt.Sprintf("page%d", i), 1, at), 0); err != nil || !ok {
			t.Fatalf("page log %d: %v %v", i, ok, err)
		}
	}
	var seen []string
	after := ""
	for {
		page, err := s.ListDIDLogsHomedAt(ctx, "https://p.example", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 2 {
			t.Fatalf("page of %d over a limit of 2", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, p := range page {
			if p.HomeIssuer != "https://p.example" {
				t.Fatalf("log homed at %s listed", p.HomeIssuer)
			}
			seen = append(seen, p.SCID)
		}
		after = page[len(page)-1].SCID
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("paged SCIDs %v, want %v", seen, want)
	}
	if page, err := s.ListDIDLogsHomedAt(ctx, "https://b.example", "", 10); err != nil || len(page) != 1 || page[0].SCID != "QmDora" {
		t.Fatalf("logs homed at b.example: %v %v", page, err)
	}

	// A deleted account's log, DIDs and witnessed head are forgotten; the
	// others' stay.
	wl := &federation.WitnessedLog{SCID: "QmDora", DID: l.DID, VersionNumber: 1, VersionID: "1-QmD", EntryHash: "QmD",
		Log: []byte("{}\n"), Peer: "https://a.example", UpdatedAt: at}
	if ok, err := s.PutWitnessedLog(ctx, wl, ""); err != nil || !ok {
		t.Fatalf("witnessed head: %v %v", ok, err)
	}
	if err := s.ForgetDIDLog(ctx, a.DID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDIDLog(ctx, a.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the forgotten log: %v", err)
	}
	if _, err := s.WitnessedLog(ctx, "QmDora"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the forgotten witnessed head: %v", err)
	}
	if dids, err := s.AccountDIDs(ctx, a.DID); err != nil || len(dids) > 1 {
		t.Fatalf("DIDs after forgetting: %v %v", dids, err)
	}
	if page, err := s.ListDIDLogsHomedAt(ctx, "https://p.example", "", 10); err != nil || len(page) != len(want) {
		t.Fatalf("the other logs after forgetting one: %v %v", page, err)
	}
	if err := s.ForgetDIDLog(ctx, a.DID); err != nil {
		t.Fatalf("forgetting again: %v", err)
	}
}
