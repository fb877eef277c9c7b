-- +goose Up
-- Keys a peer publishes that are not pinned here and that no pinned key of
-- the peer vouched for: what it signs with them is refused until an
-- operator confirms the new keys (commonsid peer trust URL). At most a
-- bounded number are kept per peer.
CREATE TABLE federation_pending_keys (
    peer       TEXT NOT NULL REFERENCES peers (issuer) ON DELETE CASCADE,
    kid        TEXT NOT NULL,
    reason     TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (peer, kid)
);

-- +goose Down
DROP TABLE federation_pending_keys;
