package limits

import (
	"context"
	"testing"
	"time"
)

func TestPolicyDelay(t *testing.T) {
	p := Policy{Name: "t", Free: 5, Window: 15 * time.Minute, MaxDelay: 15 * time.Minute}
	for _, c := range []struct {
		failures int
		want     time.Duration
	}{{0, 0}, {4, 0}, {5, 2 * time.Second}, {6, 4 * time.Second}, {10, 64 * time.Second}, {13, 512 * time.Second}, {14, 15 * time.Minute}, {1000, 15 * time.Minute}} {
		if got := p.Delay(c.failures); got != c.want {
			t.Errorf("Delay(%d) = %v, want %v", c.failures, got, c.want)
		}
	}
	ds := p.Delays()
	if len(ds) != 15 || ds[len(ds)-1] != p.MaxDelay {
		t.Fatalf("Delays %v", ds)
	}
}

// TestTake: attempts count as they are taken, a right answer clears the
// budget, a refund gives one back, the scale moves the free failures, and
// off allows everything.
func TestTake(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &Limits{Scale: 1, Now: func() time.Time { return now }}
	for i := range 5 {
		a, wait, err := l.Take(ctx, Account, "k")
		if err != nil || wait != 0 || a.Count != i+1 {
			t.Fatalf("take %d: %+v %v %v", i+1, a, wait, err)
		}
		if i == 4 && !a.Started(Account) {
			t.Fatal("the 5th failure does not start the delay")
		}
	}
	if a, wait, _ := l.Take(ctx, Account, "k"); a != nil || wait != 2*time.Second {
		t.Fatalf("6th take: %v %v, want a 2s wait", a, wait)
	}
	if _, wait, _ := l.Take(ctx, Source, "k"); wait != 0 {
		t.Fatal("another policy shares the key's budget")
	}
	now = now.Add(2 * time.Second)
	a, wait, _ := l.Take(ctx, Account, "k")
	if wait != 0 {
		t.Fatalf("after the delay: wait %v", wait)
	}
	a.Clear(ctx)
	if a, _, _ := l.Take(ctx, Account, "k"); a.Count != 1 {
		t.Fatalf("after Clear: count %d", a.Count)
	}
	a, _, _ = l.Take(ctx, Account, "k")
	a.Refund(ctx)
	if a, _, _ := l.Take(ctx, Account, "k"); a.Count != 2 {
		t.Fatalf("after Refund: count %d, want 2", a.Count)
	}
	double := &Limits{Scale: 2, Now: l.Now}
	for range 10 {
		if _, wait, _ := double.Take(ctx, Account, "d"); wait != 0 {
			t.Fatal("scale 2 allows 10 free failures")
		}
	}
	if _, wait, _ := double.Take(ctx, Account, "d"); wait == 0 {
		t.Fatal("scale 2: the 11th is not delayed")
	}
	off := &Limits{}
	for range 100 {
		if a, wait, err := off.Take(ctx, Account, "k"); err != nil || wait != 0 || a == nil {
			t.Fatal("off limits something")
		}
	}
}

// TestStepAndClear: a Step scales the doubling, Once allows one take per
// period, and Clear forgets a key's failures.
func TestStepAndClear(t *testing.T) {
	p := Policy{Name: "s", Free: 1, Step: time.Minute, Window: time.Hour, MaxDelay: time.Hour}
	if p.Delay(1) != 2*time.Minute || p.Delay(3) != 8*time.Minute || p.Delay(10) != time.Hour {
		t.Fatalf("Step delays %v %v %v", p.Delay(1), p.Delay(3), p.Delay(10))
	}
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &Limits{Scale: 1, Now: func() time.Time { return now }}
	once := Once("o", time.Hour)
	if _, wait, _ := l.Take(ctx, once, "k"); wait != 0 {
		t.Fatal("first take waits")
	}
	if _, wait, _ := l.Take(ctx, once, "k"); wait != time.Hour {
		t.Fatalf("second take within the hour: wait %v, want 1h", wait)
	}
	now = now.Add(time.Hour)
	if a, wait, _ := l.Take(ctx, once, "k"); wait != 0 || a.Count != 1 {
		t.Fatalf("take after the hour: %+v %v", a, wait)
	}
	for range 6 {
		l.Take(ctx, Account, "x")
	}
	if err := l.Clear(ctx, Account, "x"); err != nil {
		t.Fatal(err)
	}
	if a, wait, _ := l.Take(ctx, Account, "x"); wait != 0 || a.Count != 1 {
		t.Fatalf("after Clear: %+v %v", a, wait)
	}
}
