package oidc

import (
	"testing"
	"time"
)

func TestGenCache(t *testing.T) {
	c := newGenCache[string, int](time.Second, 3)
	t0 := time.Unix(1000, 0)
	c.put("a", 1, t0)
	if v, ok := c.get("a", t0.Add(500*time.Millisecond)); !ok || v != 1 {
		t.Fatalf("fresh entry: %v %v", v, ok)
	}
	// One period on, "a" is in the previous generation and still found.
	c.put("b", 2, t0.Add(1100*time.Millisecond))
	if _, ok := c.get("a", t0.Add(1200*time.Millisecond)); !ok {
		t.Fatal("entry lost after one period")
	}
	// Two periods after it was put, "a" is gone; "b" is still there.
	if _, ok := c.get("a", t0.Add(2200*time.Millisecond)); ok {
		t.Fatal("entry kept past two periods")
	}
	if _, ok := c.get("b", t0.Add(2200*time.Millisecond)); !ok {
		t.Fatal("younger entry lost")
	}
	// Long idle: everything goes.
	if _, ok := c.get("b", t0.Add(10*time.Second)); ok || c.len() != 0 {
		t.Fatalf("entries kept after idling: %d", c.len())
	}
	// A full generation is retired early: never more than 2×max entries.
	t1 := t0.Add(20 * time.Second)
	for i := range 100 {
		c.put(string(rune('A'+i)), i, t1)
		if n := c.len(); n > 6 {
			t.Fatalf("%d entries held, bound is 6", n)
		}
	}
	if _, ok := c.get(string(rune('A'+99)), t1); !ok {
		t.Fatal("newest entry missing")
	}
	c.flush()
	if c.len() != 0 {
		t.Fatal("flush left entries")
	}
}
