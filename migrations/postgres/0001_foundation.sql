-- +goose Up
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE accounts (
    did                    TEXT PRIMARY KEY,
    handle                 TEXT NOT NULL UNIQUE,
    email                  TEXT NOT NULL DEFAULT '',
    email_verified         BOOLEAN NOT NULL DEFAULT FALSE,
    name                   TEXT NOT NULL DEFAULT '',
    password_hash          TEXT NOT NULL DEFAULT '',
    status                 TEXT NOT NULL,
    home_issuer            TEXT NOT NULL,
    did_key_sealed         BYTEA,
    pairwise_secret_sealed BYTEA,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    deleted_at             BIGINT
);

CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    status         TEXT NOT NULL,
    private_sealed BYTEA NOT NULL,
    public_jwk     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    rotated_at     BIGINT,
    retired_at     BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (alg) WHERE status = 'active';

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE accounts;
DROP TABLE meta;
