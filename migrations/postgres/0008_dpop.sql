-- +goose Up
-- DPoP proof ids (RFC 9449 §11.1) seen at the token and UserInfo endpoints,
-- for replay detection: the hash of the key thumbprint and jti, kept until
-- the proof could no longer be accepted anyway. Purged with the other
-- expiring rows.
CREATE TABLE dpop_jtis (
    jti_hash   TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dpop_jtis_expires ON dpop_jtis (expires_at);

-- +goose Down
DROP TABLE dpop_jtis;
