-- +goose Up
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE accounts (
    did                    TEXT PRIMARY KEY,
    handle                 TEXT NOT NULL UNIQUE,
    email                  TEXT NOT NULL DEFAULT '',
    email_verified         INTEGER NOT NULL DEFAULT 0,
    name                   TEXT NOT NULL DEFAULT '',
    password_hash          TEXT NOT NULL DEFAULT '',
    status                 TEXT NOT NULL,
    home_issuer            TEXT NOT NULL,
    did_key_sealed         BLOB,
    pairwise_secret_sealed BLOB,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    deleted_at             INTEGER
);

CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    status         TEXT NOT NULL,
    private_sealed BLOB NOT NULL,
    public_jwk     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    rotated_at     INTEGER,
    retired_at     INTEGER
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (alg) WHERE status = 'active';

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE accounts;
DROP TABLE meta;
