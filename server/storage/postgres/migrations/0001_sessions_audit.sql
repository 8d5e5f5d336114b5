-- Connection metadata and the audit log. Text keys that are listed in
-- order use COLLATE "C", so that ordering and cursors are by bytes, as on
-- SQLite, whatever the database's locale.

CREATE TABLE sessions (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    user_id     TEXT COLLATE "C" NOT NULL,
    device_id   TEXT NOT NULL DEFAULT '',
    gateway     TEXT COLLATE "C" NOT NULL,
    transport   TEXT NOT NULL DEFAULT '',
    remote_addr TEXT NOT NULL DEFAULT '',
    since       TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL,
    closed_at   TIMESTAMPTZ            -- NULL while the session is open
);
CREATE INDEX sessions_user ON sessions (user_id, id);
CREATE INDEX sessions_gateway ON sessions (gateway, id);
-- Expiry scans open sessions by last_seen; purge scans closed ones.
CREATE INDEX sessions_open_last_seen ON sessions (last_seen) WHERE closed_at IS NULL;
CREATE INDEX sessions_closed ON sessions (closed_at) WHERE closed_at IS NOT NULL;

CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT COLLATE "C" NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL DEFAULT '',
    detail      JSONB,                 -- a JSON object or NULL
    remote_addr TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at, id);
CREATE INDEX audit_log_actor ON audit_log (actor, at, id);

-- The audit log is append-only: rows are inserted and, by retention,
-- deleted, never changed.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
