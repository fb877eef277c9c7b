-- +goose Up
-- Per peer: the feed epoch its cursor counts in, and its resyncs. A resync
-- replays the peer's feed from 0 after its epoch changed or its head went
-- below the cursor (a restored database); while it runs, resyncing is 1.
CREATE TABLE federation_peer_epochs (
    peer       TEXT PRIMARY KEY REFERENCES peers (issuer) ON DELETE CASCADE,
    epoch      TEXT NOT NULL DEFAULT '',
    resyncing  INTEGER NOT NULL DEFAULT 0,
    reason     TEXT NOT NULL DEFAULT '',
    resync_at  BIGINT NOT NULL DEFAULT 0,
    done_at    BIGINT NOT NULL DEFAULT 0,
    resyncs    INTEGER NOT NULL DEFAULT 0
);

-- What a running replay has mentioned (accounts, services, consents with
-- the replica's client_id): at its end, the peer's replicas, services and
-- consents not listed here are dropped.
CREATE TABLE federation_resync_seen (
    peer      TEXT NOT NULL REFERENCES peers (issuer) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    id        TEXT NOT NULL,
    client_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (peer, kind, id, client_id)
);

-- +goose Down
DROP TABLE federation_resync_seen;
DROP TABLE federation_peer_epochs;
