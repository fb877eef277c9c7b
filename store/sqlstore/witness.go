package sqlstore

import (
	"context"
	"fmt"

	"github.com/onecommons/commonsid/federation"
)

var _ federation.WitnessStore = (*DB)(nil)

// WitnessedLog returns the head witnessed for a SCID, or store.ErrNotFound.
func (d *DB) WitnessedLog(ctx context.Context, scid string) (*federation.WitnessedLog, error) {
	var (
		l   federation.WitnessedLog
		log string
		at  int64
	)
	err := d.q(ctx).QueryRowContext(ctx, `SELECT scid, did, version_number, version_id, entry_hash, log, peer, updated_at
		FROM witnessed_logs WHERE scid = $1`, scid).Scan(&l.SCID, &l.DID, &l.VersionNumber, &l.VersionID, &l.EntryHash, &log, &l.Peer, &at)
	if err != nil {
		return nil, fmt.Errorf("witnessed log %s: %w", scid, mapErr(err))
	}
	l.Log, l.UpdatedAt = []byte(log), fromMicros(at)
	return &l, nil
}

// CountWitnessedLogs returns how many SCIDs peer first asked to witness.
func (d *DB) CountWitnessedLogs(ctx context.Context, peer string) (int, error) {
	var n int
	if err := d.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM witnessed_logs WHERE peer = $1`, peer).Scan(&n); err != nil {
		return 0, fmt.Errorf("count witnessed logs: %w", err)
	}
	return n, nil
}

// PutWitnessedLog stores l as the head of its SCID when the head stored is
// still prevVersionID ("": none stored yet; l.Peer is kept only then). It returns false, storing
// nothing, when another head was stored in between.
func (d *DB) PutWitnessedLog(ctx context.Context, l *federation.WitnessedLog, prevVersionID string) (bool, error) {
	var (
		n   int64
		err error
	)
	if prevVersionID == "" {
		res, e := d.q(ctx).ExecContext(ctx, `INSERT INTO witnessed_logs (scid, did, version_number, version_id, entry_hash, log, peer, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (scid) DO NOTHING`,
			l.SCID, l.DID, l.VersionNumber, l.VersionID, l.EntryHash, string(l.Log), l.Peer, toMicros(l.UpdatedAt))
		if err = e; err == nil {
			n, err = res.RowsAffected()
		}
	} else {
		res, e := d.q(ctx).ExecContext(ctx, `UPDATE witnessed_logs SET did = $2, version_number = $3, version_id = $4, entry_hash = $5,
			log = $6, updated_at = $7 WHERE scid = $1 AND version_id = $8`,
			l.SCID, l.DID, l.VersionNumber, l.VersionID, l.EntryHash, string(l.Log), toMicros(l.UpdatedAt), prevVersionID)
		if err = e; err == nil {
			n, err = res.RowsAffected()
		}
	}
	if err != nil {
		return false, fmt.Errorf("put witnessed log %s: %w", l.SCID, err)
	}
	return n == 1, nil
}
