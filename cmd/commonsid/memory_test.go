package main

import (
	"context"
	"runtime/debug"
	"testing"
	"time"
)

// gcPercentNow reads GOGC without changing it.
func gcPercentNow() int {
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	return p
}

// TestMemoryLimit: a small live heap is held to the floor; a large one
// gets twice its size plus headroom, so collection is never more frequent
// than Go's default.
func TestMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int64
	}{
		{0, memoryFloor},
		{20 << 20, memoryFloor},
		{24 << 20, memoryFloor},
		{40 << 20, 96 << 20},
		{1 << 30, 2<<30 + memoryHeadroom},
	} {
		if got := memoryLimit(c.live); got != c.want {
			t.Errorf("memoryLimit(%d MiB) = %d MiB, want %d MiB", c.live>>20, got>>20, c.want>>20)
		}
	}
}

// TestTuneMemory: serving sets GOGC and the soft limit, and puts the
// earlier settings back when it ends; GOMEMLIMIT in the environment keeps
// the limit as it is.
func TestTuneMemory(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	// A limit of our own that serving would never choose, so that "changed"
	// and "put back" can be told apart from a limit another serve of this
	// process left behind.
	const prevLimit = 1 << 50
	orig, prevGC := debug.SetMemoryLimit(prevLimit), debug.SetGCPercent(100)
	defer debug.SetMemoryLimit(orig)
	defer debug.SetGCPercent(prevGC)
	ctx, cancel := context.WithCancel(context.Background())
	tuneMemory(ctx)
	if got := gcPercentNow(); got != gcPercent {
		t.Errorf("GOGC while serving = %d, want %d", got, gcPercent)
	}
	if got := debug.SetMemoryLimit(-1); got < memoryFloor || got == prevLimit {
		t.Errorf("memory limit while serving = %d", got)
	}
	cancel()
	// The earlier settings come back shortly after the end.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && (gcPercentNow() != 100 || debug.SetMemoryLimit(-1) != prevLimit) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := gcPercentNow(); got != 100 {
		t.Errorf("GOGC after serving = %d, want the earlier 100", got)
	}
	if got := debug.SetMemoryLimit(-1); got != prevLimit {
		t.Errorf("memory limit after serving = %d, want the earlier %d", got, prevLimit)
	}

	t.Setenv("GOMEMLIMIT", "1GiB")
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	tuneMemory(ctx)
	if got := debug.SetMemoryLimit(-1); got != prevLimit {
		t.Errorf("memory limit with GOMEMLIMIT set = %d, want it untouched (%d)", got, prevLimit)
	}
}
