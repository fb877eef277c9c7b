package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// LockCloud takes the lock that keeps rotating the key-encryption key
// apart from every other process using the cloud: shared by serve and every
// command while they run, exclusive for keys rotate-kek. It does not wait:
// a lock held the other way gives ErrLocked. release gives it back.
//
// On SQLite it is an advisory lock (flock) on the file <database>.lock
// next to the database; on PostgreSQL a session advisory lock on a
// connection of its own, keyed by the database and schema, so it holds
// across machines.
func (d *DB) LockCloud(ctx context.Context, exclusive bool) (release func(), err error) {
	if d.dialect == SQLite {
		path := strings.TrimPrefix(d.where, "sqlite:")
		return flockFile(path+".lock", exclusive)
	}
	if d.pg == nil {
		return nil, errors.New("lock: no PostgreSQL configuration")
	}
	conn, err := pgx.ConnectConfig(ctx, d.pg.Copy())
	if err != nil {
		return nil, fmt.Errorf("lock %s: %s", d.where, redactPG(rootCause(err).Error()))
	}
	fn := "pg_try_advisory_lock_shared"
	if exclusive {
		fn = "pg_try_advisory_lock"
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT `+fn+`(hashtext('commonsid/cloud-lock/' || current_schema()))`).Scan(&ok); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("lock %s: %w", d.where, err)
	}
	if !ok {
		conn.Close(context.Background())
		return nil, ErrLocked
	}
	// Closing the session releases its advisory locks.
	return func() { conn.Close(context.Background()) }, nil
}
