-- +goose Up
-- Logout tokens owed to services (OpenID Connect Back-Channel Logout):
-- one row per service to tell, written in the same transaction as the
-- sign-out, revocation or account change that ends its sign-in, so that a
-- restart loses none. The token is signed afresh at each attempt; id is
-- its jti. status is pending, done or failed; next_at is when a pending
-- row is next tried (or until when a worker holds it); done and failed
-- rows are kept for a day, then purged.
CREATE TABLE backchannel_deliveries (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    uri         TEXT NOT NULL,
    subject     TEXT NOT NULL DEFAULT '',
    sid         TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    last_error  TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX backchannel_due ON backchannel_deliveries (status, next_at);
CREATE INDEX backchannel_expiry ON backchannel_deliveries (expires_at);

-- +goose Down
DROP TABLE backchannel_deliveries;
