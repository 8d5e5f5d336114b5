-- The durable key/value state cache. Versions come from kv_revision, one
-- store-wide counter, so that a deleted and re-created key never repeats a
-- version.

CREATE TABLE kv (
    namespace  TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      BLOB    NOT NULL,
    version    INTEGER NOT NULL,
    expires_us INTEGER,             -- NULL: never expires
    updated_us INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX kv_expires ON kv (expires_us) WHERE expires_us IS NOT NULL;

CREATE TABLE kv_revision (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    rev INTEGER NOT NULL
);
INSERT INTO kv_revision (id, rev) VALUES (1, 0);
