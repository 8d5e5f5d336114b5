-- Connection metadata and the audit log. Times are Unix microseconds.

CREATE TABLE sessions (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    device_id    TEXT    NOT NULL DEFAULT '',
    gateway      TEXT    NOT NULL,
    transport    TEXT    NOT NULL DEFAULT '',
    remote_addr  TEXT    NOT NULL DEFAULT '',
    since_us     INTEGER NOT NULL,
    last_seen_us INTEGER NOT NULL,
    closed_us    INTEGER            -- NULL while the session is open
);
CREATE INDEX sessions_user ON sessions (user_id, id);
CREATE INDEX sessions_gateway ON sessions (gateway, id);
-- Expiry scans open sessions by last_seen; purge scans closed ones.
CREATE INDEX sessions_open_last_seen ON sessions (last_seen_us) WHERE closed_us IS NULL;
CREATE INDEX sessions_closed ON sessions (closed_us) WHERE closed_us IS NOT NULL;

-- AUTOINCREMENT so that ids are never reused after a purge: cursors held by
-- readers stay meaningful.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us       INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL DEFAULT '',
    detail      TEXT,               -- JSON object or NULL
    remote_addr TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at_us, id);
CREATE INDEX audit_log_actor ON audit_log (actor, at_us, id);

-- The audit log is append-only: rows are inserted and, by retention,
-- deleted, never changed.
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
