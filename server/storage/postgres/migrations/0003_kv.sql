-- The durable key/value state cache. Versions come from one sequence, so
-- that a deleted and re-created key never repeats a version.

CREATE TABLE kv (
    namespace  TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value      BYTEA NOT NULL,
    version    BIGINT NOT NULL,
    expires_at TIMESTAMPTZ,            -- NULL: never expires
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX kv_expires ON kv (expires_at) WHERE expires_at IS NOT NULL;

CREATE SEQUENCE kv_revision;
