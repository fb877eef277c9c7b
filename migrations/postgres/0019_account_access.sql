-- +goose Up
-- Contributors' access (package access): each account's contribution level
-- beyond basic, until expires_at (0 for basic), who set it (source:
-- operator or notice:<payment service>) and when; notice_id is the notice
-- that set it, if one did. A replica holds its home's grant. Times in
-- microseconds since 1970 (UTC).
CREATE TABLE account_access (
    account_did TEXT PRIMARY KEY REFERENCES accounts (did) ON DELETE CASCADE,
    level       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    source      TEXT NOT NULL,
    set_at      BIGINT NOT NULL,
    notice_id   TEXT NOT NULL DEFAULT ''
);
-- Every notice a payment service sent that was applied, by service and
-- notice id, so that a replayed notice is refused (409). Only services
-- holding a configured secret can add rows.
CREATE TABLE access_notices (
    source      TEXT NOT NULL,
    notice_id   TEXT NOT NULL,
    account_did TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (source, notice_id)
);

-- A deleted account keeps no grant, whichever path deleted it.
-- +goose StatementBegin
CREATE FUNCTION forget_access_of_deleted_account() RETURNS trigger AS $$
BEGIN
    DELETE FROM account_access WHERE account_did = NEW.did;
    DELETE FROM access_notices WHERE account_did = NEW.did;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER accounts_deleted_forget_access AFTER UPDATE OF status ON accounts
FOR EACH ROW WHEN (NEW.status = 'deleted')
EXECUTE FUNCTION forget_access_of_deleted_account();

-- +goose Down
DROP TRIGGER accounts_deleted_forget_access ON accounts;
DROP FUNCTION forget_access_of_deleted_account();
DROP TABLE access_notices;
DROP TABLE account_access;
