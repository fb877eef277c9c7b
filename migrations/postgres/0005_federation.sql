-- +goose Up
-- Clouds this cloud federates with: their keys (pinned at peering and
-- refreshed from their did:web document and JWKS) and how far their event
-- feed has been applied here.
CREATE TABLE peers (
    issuer        TEXT PRIMARY KEY,
    did           TEXT NOT NULL,
    jwks_uri      TEXT NOT NULL,
    endpoint      TEXT NOT NULL DEFAULT '',
    jwks          TEXT NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}',
    cursor        BIGINT NOT NULL DEFAULT 0,
    added_at      BIGINT NOT NULL,
    keys_at       BIGINT NOT NULL,
    last_event_at BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT NOT NULL DEFAULT ''
);

-- Every peer event applied here, once: the idempotency record.
CREATE TABLE federation_applied (
    peer        TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    type        TEXT NOT NULL,
    account_did TEXT NOT NULL DEFAULT '',
    event_at    BIGINT NOT NULL,
    applied_at  BIGINT NOT NULL,
    PRIMARY KEY (peer, seq)
);

-- Peer events refused (bad signature, wrong issuer, out of order…).
CREATE TABLE federation_rejected (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    peer    TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    reason  TEXT NOT NULL,
    at      BIGINT NOT NULL,
    event   TEXT NOT NULL
);

-- Access tokens of peers revoked on their home cloud: SHA-256 of the JWT
-- signature, kept until the token would have expired.
CREATE TABLE federation_revoked_tokens (
    issuer     TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, token_hash)
);

-- Services registered on peers (public metadata and pairwise sectors):
-- what a fork on this cloud of a peer's service joins.
CREATE TABLE federation_services (
    issuer     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    metadata   TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, client_id)
);

-- +goose Down
DROP TABLE federation_services;
DROP TABLE federation_revoked_tokens;
DROP TABLE federation_rejected;
DROP TABLE federation_applied;
DROP TABLE peers;
