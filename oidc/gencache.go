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
}

// len is the number of entries held.
func (c *genCache[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}
