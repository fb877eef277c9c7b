-- +goose Up
-- The pairwise subjects of replicated accounts, learned from their home
-- cloud (POST /federation/v1/subjects): peers never hold the account's
-- pairwise secret, only the subs of the sectors the person used here. A
-- row goes with its replica.
CREATE TABLE replica_subjects (
    account_did TEXT NOT NULL REFERENCES accounts (did) ON DELETE CASCADE,
    sector      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    learned_at  INTEGER NOT NULL,
    PRIMARY KEY (account_did, sector)
);

-- +goose Down
DROP TABLE replica_subjects;
