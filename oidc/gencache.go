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

// ttlCache keeps each value for at most ttl after it was read from the
// store, in a genCache of that period holding up to max entries per
// generation. The zero value needs ttl and max set before use.
type ttlCache[K comparable, V any] struct {
	ttl  time.Duration
	max  int
	once sync.Once
	c    *genCache[K, ttlEntry[V]]
}

type ttlEntry[V any] struct {
	v  V
	at time.Time // when it was read
}

func (t *ttlCache[K, V]) gen() *genCache[K, ttlEntry[V]] {
	t.once.Do(func() { t.c = newGenCache[K, ttlEntry[V]](t.ttl, t.max) })
	return t.c
}

// get returns the value of k and when it was read, if that was at most
// ttl before now.
func (t *ttlCache[K, V]) get(k K, now time.Time) (V, time.Time, bool) {
	e, ok := t.gen().get(k, now)
	if !ok || now.Sub(e.at) > t.ttl {
		var zero V
		return zero, time.Time{}, false
	}
	return e.v, e.at, true
}

// since and putSince keep out a value read before a flush that happened
// while it was being read (see genCache.since).
func (t *ttlCache[K, V]) since() uint64 { return t.gen().since() }

func (t *ttlCache[K, V]) putSince(epoch uint64, k K, v V, at, now time.Time) {
	t.gen().putSince(epoch, k, ttlEntry[V]{v, at}, now)
}

func (t *ttlCache[K, V]) flush() { t.gen().flush() }
