-- +goose Up
-- The WebAuthn user handle of each account with passkeys: random bytes,
-- stable for the account, that say nothing about the person. Authenticators
-- return it when a person signs in with a passkey.
CREATE TABLE passkey_users (
    account_did TEXT PRIMARY KEY REFERENCES accounts (did) ON DELETE CASCADE,
    user_handle BYTEA NOT NULL UNIQUE
);

-- Passkeys (WebAuthn credentials). Only public data: the credential id, the
-- COSE public key and what the authenticator reported about itself.
CREATE TABLE passkeys (
    credential_id      BYTEA PRIMARY KEY,
    account_did        TEXT NOT NULL REFERENCES accounts (did) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    public_key         BYTEA NOT NULL,
    attestation_type   TEXT NOT NULL DEFAULT '',
    attestation_format TEXT NOT NULL DEFAULT '',
    aaguid             BYTEA,
    sign_count         BIGINT NOT NULL DEFAULT 0,
    transports         TEXT NOT NULL DEFAULT '',
    attachment         TEXT NOT NULL DEFAULT '',
    user_verified      BOOLEAN NOT NULL DEFAULT FALSE,
    backup_eligible    BOOLEAN NOT NULL DEFAULT FALSE,
    backup_state       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         BIGINT NOT NULL,
    last_used_at       BIGINT
);
CREATE INDEX passkeys_account ON passkeys (account_did, created_at);

-- A deleted account keeps no credentials, whichever path deleted it.
-- +goose StatementBegin
CREATE FUNCTION forget_passkeys_of_deleted_account() RETURNS trigger AS $$
BEGIN
    DELETE FROM passkeys WHERE account_did = NEW.did;
    DELETE FROM passkey_users WHERE account_did = NEW.did;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER accounts_deleted_forget_passkeys AFTER UPDATE OF status ON accounts
FOR EACH ROW WHEN (NEW.status = 'deleted')
EXECUTE FUNCTION forget_passkeys_of_deleted_account();

-- WebAuthn ceremonies between their begin and finish steps, so that any
-- replica can finish one. The browser's cookie carries the id; only its hash
-- is kept. Each row is taken (deleted) by the finish step.
CREATE TABLE webauthn_ceremonies (
    id_hash    TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    data       BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires ON webauthn_ceremonies (expires_at);

-- +goose Down
DROP TABLE webauthn_ceremonies;
DROP TRIGGER accounts_deleted_forget_passkeys ON accounts;
DROP FUNCTION forget_passkeys_of_deleted_account();
DROP TABLE passkeys;
DROP TABLE passkey_users;
