-- +goose Up
-- The did:webvh log of every account this cloud knows, one row per SCID:
-- homed here, moved away from here, or homed elsewhere and learned from the
-- federation (with or without an account row here: no foreign key).
-- account_did is the account's first DID (accounts.did, its key);
-- current_did is state.id of the log's last entry, name its last path
-- segment and home_issuer the issuer it names; version is the number of the
-- last entry. witness is did-witness.json and escrow the pairwise secret
-- sealed under the recovery kit ('' when none).
CREATE TABLE did_logs (
    scid        TEXT PRIMARY KEY,
    account_did TEXT NOT NULL UNIQUE,
    current_did TEXT NOT NULL,
    name        TEXT NOT NULL,
    home_issuer TEXT NOT NULL,
    version     INTEGER NOT NULL,
    log         TEXT NOT NULL,
    witness     TEXT NOT NULL DEFAULT '',
    escrow      BLOB NOT NULL DEFAULT x'',
    updated_at  INTEGER NOT NULL
);
CREATE INDEX did_logs_name ON did_logs (name);
CREATE INDEX did_logs_home ON did_logs (home_issuer, scid);

-- Every DID an account has had (did), mapped to the account's key.
CREATE TABLE account_dids (
    did         TEXT PRIMARY KEY,
    account_did TEXT NOT NULL,
    added_at    INTEGER NOT NULL
);
CREATE INDEX account_dids_account ON account_dids (account_did);

-- The logs of the accounts homed here: did:webvh:{SCID}:… (SCID is the
-- third colon-separated part).
INSERT INTO did_logs (scid, account_did, current_did, name, home_issuer, version, log, witness, escrow, updated_at)
SELECT substr(substr(l.did, 11), 1, instr(substr(l.did, 11), ':') - 1), l.did, l.did, l.name, a.home_issuer, l.version, l.log, '', x'', l.updated_at
FROM account_did_logs l JOIN accounts a ON a.did = l.did;
INSERT INTO account_dids (did, account_did, added_at)
SELECT account_did, account_did, updated_at FROM did_logs;
DROP TABLE account_did_logs;

-- +goose Down
CREATE TABLE account_did_logs (
    did        TEXT PRIMARY KEY REFERENCES accounts (did) ON DELETE CASCADE,
    name       TEXT NOT NULL UNIQUE,
    log        TEXT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT OR IGNORE INTO account_did_logs (did, name, log, version, updated_at)
SELECT l.account_did, l.name, l.log, l.version, l.updated_at
FROM did_logs l JOIN accounts a ON a.did = l.account_did;
DROP TABLE account_dids;
DROP TABLE did_logs;
