-- +goose Up
-- Second factors. An account has at most one authenticator app (TOTP,
-- RFC 6238): its secret sealed with the key-encryption key (bound to the
-- account's DID), confirmed_at set once the person has entered a correct
-- code (until then it is an enrolment and signs nothing), and last_step the
-- last time step whose code was accepted, so that no code is used twice.
CREATE TABLE mfa_totp (
    account_did   TEXT PRIMARY KEY REFERENCES accounts (did) ON DELETE CASCADE,
    secret_sealed BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    confirmed_at  INTEGER,
    last_step     INTEGER NOT NULL DEFAULT 0
);

-- One-time recovery codes: only the SHA-256 of each (they are random and
-- high-entropy); used_at is set when one is spent.
CREATE TABLE mfa_recovery_codes (
    account_did TEXT NOT NULL REFERENCES accounts (did) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    used_at     INTEGER,
    PRIMARY KEY (account_did, code_hash)
);

-- The person's choice to require a second factor at every sign-in.
CREATE TABLE mfa_settings (
    account_did TEXT PRIMARY KEY REFERENCES accounts (did) ON DELETE CASCADE,
    required    INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL
);

-- A deleted account keeps no second factor, whichever path deleted it.
-- +goose StatementBegin
CREATE TRIGGER accounts_deleted_forget_mfa AFTER UPDATE OF status ON accounts
WHEN NEW.status = 'deleted'
BEGIN
    DELETE FROM mfa_totp WHERE account_did = NEW.did;
    DELETE FROM mfa_recovery_codes WHERE account_did = NEW.did;
    DELETE FROM mfa_settings WHERE account_did = NEW.did;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER accounts_deleted_forget_mfa;
DROP TABLE mfa_settings;
DROP TABLE mfa_recovery_codes;
DROP TABLE mfa_totp;
