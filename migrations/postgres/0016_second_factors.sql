-- +goose Up
-- Second factors. An account has at most one authenticator app (TOTP,
-- RFC 6238): its secret sealed with the key-encryption key (bound to the
-- account's DID), confirmed_at set once the person has entered a correct
-- code (until then it is an enrolment and signs nothing), and last_step the
-- last time step whose code was accepted, so that no code is used twice.
CREATE TABLE mfa_totp (
    account_did   TEXT PRIMARY KEY REFERENCES accounts (did) ON DELETE CASCADE,
    secret_sealed BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    confirmed_at  BIGINT,
    last_step     BIGINT NOT NULL DEFAULT 0
);

-- One-time recovery codes: only the SHA-256 of each (they are random and
-- high-entropy); used_at is set when one is spent.
CREATE TABLE mfa_recovery_codes (
    account_did TEXT NOT NULL REFERENCES accounts (did) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT,
    PRIMARY KEY (account_did, code_hash)
);

-- The person's choice to require a second factor at every sign-in.
CREATE TABLE mfa_settings (
    account_did TEXT PRIMARY KEY REFERENCES accounts (did) ON DELETE CASCADE,
    required    BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at  BIGINT NOT NULL
);

-- A deleted account keeps no second factor, whichever path deleted it.
-- +goose StatementBegin
CREATE FUNCTION forget_mfa_of_deleted_account() RETURNS trigger AS $$
BEGIN
    DELETE FROM mfa_totp WHERE account_did = NEW.did;
    DELETE FROM mfa_recovery_codes WHERE account_did = NEW.did;
    DELETE FROM mfa_settings WHERE account_did = NEW.did;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER accounts_deleted_forget_mfa AFTER UPDATE OF status ON accounts
FOR EACH ROW WHEN (NEW.status = 'deleted')
EXECUTE FUNCTION forget_mfa_of_deleted_account();

-- +goose Down
DROP TRIGGER accounts_deleted_forget_mfa ON accounts;
DROP FUNCTION forget_mfa_of_deleted_account();
DROP TABLE mfa_settings;
DROP TABLE mfa_recovery_codes;
DROP TABLE mfa_totp;
