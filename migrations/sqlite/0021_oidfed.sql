-- +goose Up
-- OpenID Federation (package oidfed). Times in microseconds since 1970 (UTC).
-- oidfed_subordinates: the clouds this cloud, as a trust anchor, vouches
-- for (commonsid commons add-member), with their federation keys as last
-- verified (jwks, a JWK Set) and the metadata stated about them (JSON).
CREATE TABLE oidfed_subordinates (
    entity_id  TEXT PRIMARY KEY,
    jwks       TEXT NOT NULL,
    metadata   TEXT NOT NULL DEFAULT '',
    added_at   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- oidfed_anchors: the trust anchors this cloud joined (commonsid commons
-- join), their keys as pinned at join or carried since by their signed
-- configuration, and the "commons cloud" trust mark they issued this cloud.
CREATE TABLE oidfed_anchors (
    entity_id  TEXT PRIMARY KEY,
    jwks       TEXT NOT NULL,
    trust_mark TEXT NOT NULL DEFAULT '',
    joined_at  INTEGER NOT NULL
);
-- oidfed_members: the peers this cloud trusts because their trust chain
-- to an anchor verified: the anchor, the chain's expiry, when it was last
-- resolved and the last failure. A peer added by hand has no row here.
CREATE TABLE oidfed_members (
    issuer     TEXT PRIMARY KEY,
    anchor     TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    checked_at INTEGER NOT NULL,
    last_error TEXT NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE oidfed_members;
DROP TABLE oidfed_anchors;
DROP TABLE oidfed_subordinates;
