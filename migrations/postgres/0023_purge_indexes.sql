-- +goose Up
-- The purge removes expired rows every minute, a thousand at a time, by
-- expires_at: without these indexes each of its statements read the whole
-- table (browser sessions grow with the population, challenges with
-- anonymous /authorize requests).
CREATE INDEX auth_challenges_expires ON auth_challenges (expires_at);
CREATE INDEX browser_sessions_expires ON browser_sessions (expires_at);
CREATE INDEX client_assertion_jtis_expires ON client_assertion_jtis (expires_at);
CREATE INDEX federation_revoked_tokens_expires ON federation_revoked_tokens (expires_at);
-- The consents under which a service's subs are computed for one sector
-- (ConsentsWithSector): the primary key starts with the account.
CREATE INDEX consents_client_sector ON consents (client_id, subject_sector);

-- +goose Down
DROP INDEX consents_client_sector;
DROP INDEX federation_revoked_tokens_expires;
DROP INDEX client_assertion_jtis_expires;
DROP INDEX browser_sessions_expires;
DROP INDEX auth_challenges_expires;
