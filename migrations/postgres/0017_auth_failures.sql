-- +goose Up
-- The failure budgets of password checks (internal/limits): one row per
-- budget key (an account, a device of an account, a client address, a
-- signed-in account's re-checks), keyed by the SHA-256 of the key so that
-- no handle, DID or address is kept. count attempts since window_start;
-- last_at is the last one. Times in microseconds since 1970 (UTC). Rows
-- that can no longer matter are purged.
CREATE TABLE auth_failures (
    key_hash     TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    count        INTEGER NOT NULL,
    last_at      BIGINT NOT NULL
);
CREATE INDEX auth_failures_last_at ON auth_failures (last_at);

-- +goose Down
DROP TABLE auth_failures;
