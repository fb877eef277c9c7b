-- +goose Up
-- The hash of the service's commitments (package terms: "sha256-" and the
-- base64url SHA-256 of the canonical commitments document) that the
-- person saw when they consented; '' when the service published none. A
-- consent whose hash differs from the service's current one is asked
-- again before anything is released.
ALTER TABLE consents ADD COLUMN terms_hash TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE consents DROP COLUMN terms_hash;
