-- +goose Up
-- The did:webvh log (did.jsonl) of each account homed here with a did:webvh
-- DID. name is the account's path segment in the DID
-- (did:webvh:{SCID}:{host}:…:accounts:{name}), under which the home serves
-- the log; version is the number of the log's last entry.
CREATE TABLE account_did_logs (
    did        TEXT PRIMARY KEY REFERENCES accounts (did) ON DELETE CASCADE,
    name       TEXT NOT NULL UNIQUE,
    log        TEXT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE account_did_logs;
