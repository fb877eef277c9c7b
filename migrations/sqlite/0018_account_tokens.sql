-- +goose Up
-- Single-use links mailed to a person: verify_email (the address to
-- verify is in email) and reset_password. Only the SHA-256 of the random
-- 32-byte token is kept (base64url). used_at is set when a link is used; rows
-- past expires_at are purged. Times in microseconds since 1970 (UTC).
CREATE TABLE account_tokens (
    token_hash  TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    account_did TEXT NOT NULL REFERENCES accounts (did) ON DELETE CASCADE,
    email       TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX account_tokens_account ON account_tokens (account_did, purpose);
CREATE INDEX account_tokens_expires_at ON account_tokens (expires_at);

-- +goose Down
DROP TABLE account_tokens;
