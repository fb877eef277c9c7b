package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/store"
)

// testBackchannel: the outbox of logout deliveries keeps what was queued
// (times to the microsecond), is bounded, rolls back with the transaction
// that queued, hands a due delivery to one claimer only, records attempts,
// and purges what has expired.
func testBackchannel(t *testing.T, s Store) {
	ob, ok := s.(oidc.BackchannelStore)
	if !ok {
		t.Fatal("the store has no logout outbox (oidc.BackchannelStore)")
	}
	mk := func(id string, next time.Time) *oidc.BackchannelDelivery {
		return &oidc.BackchannelDelivery{ID: id, ClientID: "c1", URI: "https://rp.example/bc", Subject: "sub-" + id, SID: "sid-" + id,
			Status: oidc.BackchannelPending, NextAt: next, CreatedAt: fixed, ExpiresAt: fixed.Add(24 * time.Hour)}
	}
	a, b := mk("a", fixed), mk("b", fixed.Add(time.Minute))
	if err := ob.QueueBackchannel(ctx, []*oidc.BackchannelDelivery{a, b}, 10); err != nil {
		t.Fatal(err)
	}
	got, err := ob.GetBackchannel(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(a, got); d != "" {
		t.Fatalf("stored delivery (-want +got):\n%s", d)
	}
	if _, err := ob.GetBackchannel(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing delivery: %v", err)
	}
	if err := ob.QueueBackchannel(ctx, []*oidc.BackchannelDelivery{mk("a", fixed)}, 10); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("same id again: %v", err)
	}
	// Bounded: past max pending nothing is written.
	if err := ob.QueueBackchannel(ctx, []*oidc.BackchannelDelivery{mk("c", fixed), mk("d", fixed)}, 3); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("over the bound: %v", err)
	}
	if _, err := ob.GetBackchannel(ctx, "c"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused batch left a row: %v", err)
	}
	// Queued inside a transaction that rolls back: gone.
	boom := errors.New("boom")
	err = s.InTx(ctx, func(ctx context.Context) error {
		if err := ob.QueueBackchannel(ctx, []*oidc.BackchannelDelivery{mk("e", fixed)}, 10); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, err := ob.GetBackchannel(ctx, "e"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a rolled-back delivery stayed: %v", err)
	}

	// Only a is due; two claimers, one gets it.
	until := fixed.Add(10 * time.Second)
	c1, err := ob.ClaimBackchannel(ctx, fixed.Add(time.Second), until, 8)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ob.ClaimBackchannel(ctx, fixed.Add(time.Second), until, 8)
	if err != nil {
		t.Fatal(err)
	}
	if len(c1) != 1 || c1[0].ID != "a" || !c1[0].NextAt.Equal(until) || len(c2) != 0 {
		t.Fatalf("claims: %v then %v", ids(c1), ids(c2))
	}
	// An attempt failed: retried later; then done.
	x := c1[0]
	x.Attempts, x.LastError, x.NextAt = 1, "answered 500", fixed.Add(30*time.Second)
	if err := ob.UpdateBackchannel(ctx, x); err != nil {
		t.Fatal(err)
	}
	if c, _ := ob.ClaimBackchannel(ctx, fixed.Add(20*time.Second), until, 8); len(c) != 0 {
		t.Fatalf("claim at +20s, before any is due: %v", ids(c))
	}
	c3, err := ob.ClaimBackchannel(ctx, fixed.Add(31*time.Second), fixed.Add(41*time.Second), 8)
	if err != nil || len(c3) != 1 || c3[0].ID != "a" || c3[0].Attempts != 1 || c3[0].LastError != "answered 500" {
		t.Fatalf("claim at +31s: %v %v", ids(c3), err)
	}
	x = c3[0]
	x.Status, x.Attempts, x.LastError, x.ExpiresAt = oidc.BackchannelDone, 2, "", fixed.Add(time.Hour)
	if err := ob.UpdateBackchannel(ctx, x); err != nil {
		t.Fatal(err)
	}
	if c, _ := ob.ClaimBackchannel(ctx, fixed.Add(time.Hour), fixed.Add(2*time.Hour), 8); len(c) != 1 || c[0].ID != "b" {
		t.Fatalf("a done delivery was claimed again: %v", ids(c))
	}
	if err := ob.UpdateBackchannel(ctx, mk("nope", fixed)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing delivery: %v", err)
	}
	// Purge: a expires after an hour, b after a day.
	n, err := ob.PurgeBackchannel(ctx, fixed.Add(2*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if _, err := ob.GetBackchannel(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("purged delivery still there: %v", err)
	}
	if _, err := ob.GetBackchannel(ctx, "b"); err != nil {
		t.Fatalf("unexpired delivery purged: %v", err)
	}
}

func ids(ds []*oidc.BackchannelDelivery) string {
	s := "["
	for _, d := range ds {
		s += fmt.Sprintf(" %s", d.ID)
	}
	return s + " ]"
}
