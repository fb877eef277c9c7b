-- +goose Up
-- Pushed authorization requests (RFC 9126): the parameters a client pushed,
-- kept until its request_uri is used (once) or expires. Keyed by the hash
-- of the request_uri.
CREATE TABLE pushed_auth_requests (
    uri_hash    TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    form        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX pushed_auth_requests_expires ON pushed_auth_requests (expires_at);

-- +goose Down
DROP TABLE pushed_auth_requests;
