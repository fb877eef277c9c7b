-- +goose Up
-- The cloud's event log, in order: what peers will replicate
-- (account.created|updated|moved|deleted, privacy.updated, consent.*,
-- token.revoked, service.*). Written in the same transaction as the change.
CREATE TABLE events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type        TEXT NOT NULL,
    account_did TEXT NOT NULL DEFAULT '',
    at          BIGINT NOT NULL,
    payload     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_account ON events (account_did, seq);

-- +goose Down
DROP TABLE events;
