-- +goose Up
-- The did:webvh logs this cloud has witnessed for other clouds, one row per
-- SCID: the longest log witnessed (log), its DID, and its last entry
-- (version_number, version_id, entry_hash: the hash part of version_id).
-- A log offered later must extend this one; a different entry at a version
-- already witnessed is a fork and is refused. peer is the cloud that first
-- asked for the SCID: the logs of each peer are bounded in number.
CREATE TABLE witnessed_logs (
    scid           TEXT PRIMARY KEY,
    did            TEXT NOT NULL,
    version_number INTEGER NOT NULL,
    version_id     TEXT NOT NULL,
    entry_hash     TEXT NOT NULL,
    log            TEXT NOT NULL,
    peer           TEXT NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX witnessed_logs_peer ON witnessed_logs (peer);

-- +goose Down
DROP TABLE witnessed_logs;
