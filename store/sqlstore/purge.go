package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// PurgeBatch is how many rows one purge statement deletes at most: each
// batch is a short transaction, so that a table filled by a flood of
// requests is emptied without holding the write lock (SQLite) or a long
// transaction (PostgreSQL) for the whole of it.
const PurgeBatch = 1000

// expiring lists the tables whose rows carry expires_at, with their key:
// codes, tokens and their sessions; sign-in challenges (written by
// anonymous /authorize requests); browser sessions; client assertion ids;
// peers' revoked tokens; passkey ceremonies (written by anonymous
// /login/passkey/begin requests; also dropped when one is taken).
var expiring = []struct{ table, key string }{
	{"oauth_requests", "kind, signature_hash"},
	{"auth_challenges", "id_hash"},
	{"browser_sessions", "id_hash"},
	{"client_assertion_jtis", "jti_hash"},
	{"federation_revoked_tokens", "issuer, token_hash"},
	{"webauthn_ceremonies", "id_hash"},
	{"pushed_auth_requests", "uri_hash"},
	{"dpop_jtis", "jti_hash"},
}

// PurgeExpired deletes what can no longer be used: expired codes, tokens
// and their sessions, sign-in challenges, browser sessions, client
// assertion ids, peers' revoked tokens and passkey ceremonies, in batches
// of PurgeBatch rows. It returns the number of rows removed.
func (d *DB) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	for _, t := range expiring {
		q := `DELETE FROM ` + t.table + ` WHERE (` + t.key + `) IN
			(SELECT ` + t.key + ` FROM ` + t.table + ` WHERE expires_at < $1 LIMIT ` + strconv.Itoa(PurgeBatch) + `)`
		for {
			if err := ctx.Err(); err != nil {
				return total, fmt.Errorf("purge %s: %w", t.table, err)
			}
			res, err := d.q(ctx).ExecContext(ctx, q, toMicros(now))
			if err != nil {
				return total, fmt.Errorf("purge %s: %w", t.table, err)
			}
			n, _ := res.RowsAffected()
			total += n
			if n < PurgeBatch {
				break
			}
		}
	}
	return total, nil
}

// PurgeTombstones removes deleted accounts whose tombstone is older than
// before, freeing their handles.
func (d *DB) PurgeTombstones(ctx context.Context, before time.Time) (int64, error) {
	res, err := d.q(ctx).ExecContext(ctx, `DELETE FROM accounts WHERE status = 'deleted' AND deleted_at < $1`, toMicros(before))
	if err != nil {
		return 0, fmt.Errorf("purge tombstones: %w", err)
	}
	return res.RowsAffected()
}
