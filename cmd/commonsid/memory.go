package main

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The server's live heap is small (tens of MiB) and its garbage
// short-lived. It collects at GOGC=200, half as often as Go's default,
// within a soft memory limit that keeps a small server small: the limit is
// never under twice the live heap plus headroom, so that collection is never
// more frequent than Go's default either, however large the heap grows.
// GOGC and GOMEMLIMIT in the environment still decide.
const (
	gcPercent      = 200
	memoryFloor    = 64 << 20 // the limit of a server whose live heap is small
	memoryHeadroom = 16 << 20
	memoryRetune   = 5 * time.Second
)

// memoryLimit is the soft limit for a live heap of live bytes.
func memoryLimit(live uint64) int64 {
	return max(int64(memoryFloor), 2*int64(live)+memoryHeadroom)
}

// tuneMemory applies the collection settings above until ctx ends, when
// the earlier ones come back.
func tuneMemory(ctx context.Context) {
	if os.Getenv("GOGC") == "" {
		prev := debug.SetGCPercent(gcPercent)
		context.AfterFunc(ctx, func() { debug.SetGCPercent(prev) })
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	prev := debug.SetMemoryLimit(-1) // reads it
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	retune := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetMemoryLimit(memoryLimit(sample[0].Value.Uint64()))
		}
	}
	retune()
	go func() {
		t := time.NewTicker(memoryRetune)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				debug.SetMemoryLimit(prev)
				return
			case <-t.C:
				retune()
			}
		}
	}()
}
