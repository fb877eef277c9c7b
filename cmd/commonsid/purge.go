package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/onecommons/commonsid/internal/metrics"
	"github.com/onecommons/commonsid/store/sqlstore"
)

// purgePause is the wait between two batches of one table while expired
// rows remain: a backlog (a flood of challenges, a day of tokens after a
// restart) is removed a thousand rows at a time without keeping other
// writers out.
const purgePause = 50 * time.Millisecond

// keepFailures is how long a sign-in failure counter can matter (the
// longest delay of internal/limits plus the window after it).
const keepFailures = time.Hour

// sweepExpired runs one sweep of the expired rows (sqlstore.DB.Sweep),
// counting what it removed in commonsid_purged_rows_total. On PostgreSQL a
// replica that finds another sweeping skips its turn.
func sweepExpired(ctx context.Context, db *sqlstore.DB, log *slog.Logger, now time.Time) sqlstore.SweepResult {
	res, err := db.Sweep(ctx, now, sqlstore.SweepOptions{
		FailuresBefore: now.Add(-keepFailures),
		Pause:          purgePause,
		Deleted:        metrics.Purged,
	})
	switch {
	case err != nil && ctx.Err() == nil:
		log.Warn("purge expired rows", "err", err)
	case res.Skipped:
		log.Debug("purge skipped: another process of this cloud is purging")
	case res.Total() > 0:
		log.Debug("purged", "expired", res.Total())
	}
	return res
}
