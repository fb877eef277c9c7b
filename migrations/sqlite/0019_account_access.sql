-- +goose Up
-- Contributors' access (package access): each account's contribution level
-- beyond basic, until expires_at (0 for basic), who set it (source:
-- operator or notice:<payment service>) and when; notice_id is the notice
-- that set it, if one did. A replica holds its home's grant. Times in
-- microseconds since 1970 (UTC).
CREATE TABLE account_access (
    account_did TEXT PRIMARY KEY REFERENCES accounts (did) ON DELETE CASCADE,
    level       TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    source      TEXT NOT NULL,
    set_at      INTEGER NOT NULL,
    notice_id   TEXT NOT NULL DEFAULT ''
);
-- Every notice a payment service sent that was applied, by service and
-- notice id, so that a replayed notice is refused (409). Only services
-- holding a configured secret can add rows.
CREATE TABLE access_notices (
    source      TEXT NOT NULL,
    notice_id   TEXT NOT NULL,
    account_did TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (source, notice_id)
);

-- A deleted account keeps no grant, whichever path deleted it.
-- +goose StatementBegin
CREATE TRIGGER accounts_deleted_forget_access AFTER UPDATE OF status ON accounts
WHEN NEW.status = 'deleted'
BEGIN
    DELETE FROM account_access WHERE account_did = NEW.did;
    DELETE FROM access_notices WHERE account_did = NEW.did;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER accounts_deleted_forget_access;
DROP TABLE access_notices;
DROP TABLE account_access;
