package sqlstore

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// tokenChannel is the PostgreSQL channel on which a revocation of access
// tokens is announced, so that every replica drops its cached ones.
const tokenChannel = "commonsid_tokens"

// OnTokensRevoked registers fn, called whenever access tokens may have been
// revoked: at once in this process, and (PostgreSQL, with ListenTokens
// running) when any process commits a revocation.
func (d *DB) OnTokensRevoked(fn func()) { d.revoked.add(fn) }

func (d *DB) fireTokensRevoked() { d.revoked.fire() }

// hooks is a list of functions called on a notification.
type hooks struct {
	mu  sync.Mutex
	fns []func()
}

func (h *hooks) add(fn func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fns = append(h.fns, fn)
}

func (h *hooks) fire() {
	h.mu.Lock()
	fns := append([]func(){}, h.fns...)
	h.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// tokensRevoked announces a revocation made through ctx (inside its
// transaction, if any: PostgreSQL delivers the notification at commit).
func (d *DB) tokensRevoked(ctx context.Context) error {
	// Caches are flushed once the revocation is committed: a read between a
	// flush and the commit would still find the tokens and cache them.
	d.afterCommit(ctx, d.fireTokensRevoked)
	if d.dialect != Postgres {
		return nil
	}
	_, err := d.q(ctx).ExecContext(ctx, `SELECT pg_notify('`+tokenChannel+`', '')`)
	return err
}

// ListenTokens follows revocations announced by every process on
// PostgreSQL until ctx ends, reconnecting after errors. On SQLite it
// returns at once (one server process; other processes' revocations reach
// caches through their short lifetime).
func (d *DB) ListenTokens(ctx context.Context, log *slog.Logger) {
	if d.dialect != Postgres {
		return
	}
	for ctx.Err() == nil {
		err := d.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		log.Warn("listening for token revocations and events", "err", err)
		d.fireTokensRevoked() // notifications may have been missed
		d.fireEvents()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (d *DB) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, d.pg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+tokenChannel+"; LISTEN "+eventChannel); err != nil {
		return err
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Channel == eventChannel {
			d.fireEvents()
		} else {
			d.fireTokensRevoked()
		}
	}
}
