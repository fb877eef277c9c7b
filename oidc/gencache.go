package oidc

import (
	"sync"
	"time"
)

// genCache is a map whose entries live between one and two periods: puts
// go to the current generation, which becomes the previous one after a
// period (or once it holds max entries), when the previous one is dropped.
// Its memory follows the rate of puts over the last two periods, and never
// exceeds two generations of max entries.
type genCache[K comparable, V any] struct {
	period time.Duration
	max    int

	mu        sync.Mutex
	start     time.Time
	cur, prev map[K]V
	epoch     uint64 // counts flushes
}

func newGenCache[K comparable, V any](period time.Duration, max int) *genCache[K, V] {
	return &genCache[K, V]{period: period, max: max}
}

// age retires generations older than the period; c.mu is held.
func (c *genCache[K, V]) age(now time.Time) {
	switch d := now.Sub(c.start); {
	case d < c.period:
		return
	case d < 2*c.period:
		c.prev = c.cur
	default:
		c.prev = nil
	}
	c.cur, c.start = nil, now
}

func (c *genCache[K, V]) get(k K, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.age(now)
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	v, ok := c.prev[k]
	return v, ok
}

func (c *genCache[K, V]) put(k K, v V, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(k, v, now)
}

func (c *genCache[K, V]) putLocked(k K, v V, now time.Time) {
	c.age(now)
	if len(c.cur) >= c.max {
		c.prev, c.cur, c.start = c.cur, nil, now
	}
	if c.cur == nil {
		c.cur = make(map[K]V)
	}
	c.cur[k] = v
}

// flush empties the cache.
func (c *genCache[K, V]) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur, c.prev = nil, nil
	c.epoch++
}

// since returns the number of flushes so far: taken before reading what is
// to be put, and given to putSince, it keeps out a value read before a
// flush that happened while it was being read.
func (c *genCache[K, V]) since() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// putSince puts v unless the cache was flushed after since returned epoch.
func (c *genCache[K, V]) putSince(epoch uint64, k K, v V, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch == epoch {
		c.putLocked(k, v, now)
	}
}

// len is the number of entries held.
func (c *genCache[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}
