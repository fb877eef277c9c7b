-- +goose Up
-- OAuth 2.0 / OpenID Connect clients (services). metadata is the RFC 7591
-- client metadata as JSON; secrets and registration access tokens are kept
-- only as SHA-256 hashes.
CREATE TABLE clients (
    client_id               TEXT PRIMARY KEY,
    secret_hash             TEXT NOT NULL DEFAULT '',
    registration_token_hash TEXT NOT NULL DEFAULT '',
    metadata                TEXT NOT NULL,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);

-- Every OAuth artefact fosite stores: authorization codes, access tokens,
-- refresh tokens, PKCE and OpenID Connect sessions. Keyed by the hash of the
-- token signature; request_id is the grant that issued it.
CREATE TABLE oauth_requests (
    kind                  TEXT NOT NULL,
    signature_hash        TEXT NOT NULL,
    request_id            TEXT NOT NULL,
    client_id             TEXT NOT NULL,
    subject               TEXT NOT NULL DEFAULT '',
    active                INTEGER NOT NULL DEFAULT 0,
    requested_at          INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL,
    access_signature_hash TEXT NOT NULL DEFAULT '',
    request               TEXT NOT NULL,
    PRIMARY KEY (kind, signature_hash)
);
CREATE INDEX oauth_requests_request_id ON oauth_requests (request_id, kind);
CREATE INDEX oauth_requests_subject_client ON oauth_requests (subject, client_id);
CREATE INDEX oauth_requests_expires ON oauth_requests (expires_at);

-- Client assertion (private_key_jwt) jti values seen, for replay detection.
CREATE TABLE client_assertion_jtis (
    jti_hash   TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);

-- Browser sign-on sessions. The cookie carries the id; only its hash is kept.
CREATE TABLE browser_sessions (
    id_hash      TEXT PRIMARY KEY,
    account_did  TEXT NOT NULL REFERENCES accounts (did),
    auth_time    INTEGER NOT NULL,
    amr          TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    user_agent   TEXT NOT NULL DEFAULT '',
    ip           TEXT NOT NULL DEFAULT ''
);
CREATE INDEX browser_sessions_account ON browser_sessions (account_did);

-- Authorization requests waiting for login or consent.
CREATE TABLE auth_challenges (
    id_hash     TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    form        TEXT NOT NULL,
    not_before  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- What a person granted a service.
CREATE TABLE consents (
    account_did    TEXT NOT NULL REFERENCES accounts (did),
    client_id      TEXT NOT NULL,
    scopes         TEXT NOT NULL DEFAULT '',
    claims         TEXT NOT NULL DEFAULT '',
    subject_sector TEXT NOT NULL DEFAULT '',
    granted_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    last_used_at   INTEGER,
    PRIMARY KEY (account_did, client_id)
);

-- The person-visible activity log.
CREATE TABLE activity (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_did TEXT NOT NULL,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    client_id   TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT '{}',
    ip          TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX activity_account ON activity (account_did, id);

-- Per-person privacy settings, as versioned JSON.
CREATE TABLE privacy_settings (
    account_did TEXT PRIMARY KEY REFERENCES accounts (did),
    version     INTEGER NOT NULL,
    settings    TEXT NOT NULL,
    -- copied out of settings so that pruning is one statement
    activity_retention_days INTEGER NOT NULL DEFAULT 365,
    updated_at  INTEGER NOT NULL
);

-- +goose Down
DROP TABLE privacy_settings;
DROP TABLE activity;
DROP TABLE consents;
DROP TABLE auth_challenges;
DROP TABLE browser_sessions;
DROP TABLE client_assertion_jtis;
DROP TABLE oauth_requests;
DROP TABLE clients;
