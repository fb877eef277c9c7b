package web

import (
	"testing"
	"time"
)

// TestPendingKit: a rotation retried before it is stored signs the same
// entry (same new kit, same time); once stored, a new rotation gets a new
// kit; an entry older than the TTL is made again.
func TestPendingKit(t *testing.T) {
	c := &kitCache{m: map[string]pendingKit{}}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	k1, at1, err := c.get("scid|1-a|z6Mk", now, now)
	if err != nil {
		t.Fatal(err)
	}
	k2, at2, err := c.get("scid|1-a|z6Mk", now.Add(time.Minute), now.Add(time.Minute))
	if err != nil || k2 != k1 || !at2.Equal(at1) {
		t.Fatalf("retry: same kit %v, time %s then %s, %v", k2 == k1, at1, at2, err)
	}
	if k3, _, _ := c.get("scid|1-b|z6Mk", now, now); k3 == k1 {
		t.Fatal("another version got the same kit")
	}
	c.done("scid|1-a|z6Mk")
	if k4, _, _ := c.get("scid|1-a|z6Mk", now, now); k4 == k1 {
		t.Fatal("a stored rotation's kit was given again")
	}
	if k5, _, _ := c.get("scid|1-b|z6Mk", now.Add(2*pendingKitTTL), now); k5 == nil {
		t.Fatal("no kit")
	}
}
