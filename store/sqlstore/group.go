package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"
	"time"
)

// writeGroup collects rows written outside a transaction so that rows
// written at the same moment by concurrent requests go to the database in
// one statement and one commit. One caller at a time writes: it takes
// everything queued so far (its own row first), writes it, tells the others
// how it went, and hands the pen to the first caller that queued meanwhile.
// Under load one statement carries many rows; alone, a row is written at
// once. Each caller still returns only once its own row is committed.
type writeGroup[T any] struct {
	mu      sync.Mutex
	queue   []*waiter[T]
	writing bool
}

type waiter[T any] struct {
	v    T
	done chan error // the outcome, or errLead
}

const (
	groupBatchMax     = 64
	groupWriteTimeout = 30 * time.Second
)

// errLead tells a waiting caller that it now writes.
var errLead = errors.New("write the queued rows")

// add queues v and returns once the batch holding it has been written by
// write, with write's outcome.
func (g *writeGroup[T]) add(v T, write func([]T) error) error {
	p := &waiter[T]{v: v, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	lead := !g.writing
	g.writing = true
	g.mu.Unlock()
	if !lead {
		if err := <-p.done; err != errLead {
			return err
		}
	}
	g.mu.Lock()
	n := min(len(g.queue), groupBatchMax)
	batch := slices.Clone(g.queue[:n])
	g.queue = slices.Delete(g.queue, 0, n)
	g.mu.Unlock()

	vals := make([]T, len(batch))
	for i, w := range batch {
		vals[i] = w.v
	}
	err := write(vals)
	for _, w := range batch {
		if w != p {
			w.done <- err
		}
	}
	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		g.mu.Unlock()
		next.done <- errLead
	} else {
		g.writing = false
		g.mu.Unlock()
	}
	return err
}

// writeBatch runs write for a batch of a write group: on its own context,
// since the batch carries other requests' rows that must not be lost if the
// writing request goes away; on SQLite in a transaction, so that the
// process's writer lock covers it.
func (d *DB) writeBatch(ctx context.Context, write func(context.Context, querier) error) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), groupWriteTimeout)
	defer cancel()
	if d.wmu == nil {
		return write(wctx, d.db)
	}
	return d.tx(wctx, func(tx *sql.Tx) error { return write(wctx, tx) })
}
