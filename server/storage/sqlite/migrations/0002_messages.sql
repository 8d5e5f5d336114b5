-- The message log. channels.last_seq is the per-channel counter that
-- AppendMessage increments in the transaction that inserts the message, so
-- sequence numbers are assigned at commit, gapless and strictly increasing.
-- Messages with seq < first_seq have been trimmed.

CREATE TABLE channels (
    id        INTEGER PRIMARY KEY,
    name      TEXT    NOT NULL UNIQUE,
    last_seq  INTEGER NOT NULL,
    first_seq INTEGER NOT NULL
);

CREATE TABLE messages (
    channel_id INTEGER NOT NULL REFERENCES channels (id),
    seq        INTEGER NOT NULL,
    sender     TEXT    NOT NULL,
    client_id  TEXT    NOT NULL DEFAULT '',
    body       BLOB    NOT NULL,
    headers    TEXT,                -- JSON object or NULL
    at_us      INTEGER NOT NULL,
    PRIMARY KEY (channel_id, seq)
);

-- Idempotency keys: one row per (sender, client id) committed within the
-- de-duplication window. digest covers body and headers so that a reused
-- key with other content is told apart from a resend.
CREATE TABLE message_dedup (
    sender     TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    channel_id INTEGER NOT NULL REFERENCES channels (id),
    seq        INTEGER NOT NULL,
    digest     BLOB    NOT NULL,
    at_us      INTEGER NOT NULL,
    PRIMARY KEY (sender, client_id)
) WITHOUT ROWID;
CREATE INDEX message_dedup_at ON message_dedup (at_us);
