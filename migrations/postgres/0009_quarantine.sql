-- +goose Up
-- Peer events refused for a reason that retrying as received will not fix
-- (bad signature, malformed, content that cannot be applied), and events
-- held behind an earlier refused event of the same account. The feed goes
-- on past them; an operator lists, retries or drops them. At most a bounded
-- number are kept per peer: the oldest give way, counted in
-- federation_quarantine_dropped.
CREATE TABLE federation_quarantine (
    peer        TEXT NOT NULL REFERENCES peers (issuer) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    type        TEXT NOT NULL DEFAULT '',
    account_did TEXT NOT NULL DEFAULT '',
    event       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    held_by     BIGINT NOT NULL DEFAULT 0,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (peer, seq)
);

CREATE TABLE federation_quarantine_dropped (
    peer    TEXT PRIMARY KEY REFERENCES peers (issuer) ON DELETE CASCADE,
    dropped BIGINT NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE federation_quarantine_dropped;
DROP TABLE federation_quarantine;
