-- The message log. channels.last_seq is the per-channel counter:
-- AppendMessage increments it with UPDATE ... RETURNING in the transaction
-- that inserts the message. The row lock that UPDATE takes orders
-- concurrent appenders to one channel, and a rolled-back append also rolls
-- back its increment, so sequence numbers are gapless and strictly
-- increasing in commit order. Messages with seq < first_seq were trimmed.

CREATE TABLE channels (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name      TEXT COLLATE "C" NOT NULL UNIQUE,
    last_seq  BIGINT NOT NULL,
    first_seq BIGINT NOT NULL
);

CREATE TABLE messages (
    channel_id BIGINT NOT NULL REFERENCES channels (id),
    seq        BIGINT NOT NULL,
    sender     TEXT NOT NULL,
    client_id  TEXT NOT NULL DEFAULT '',
    body       BYTEA NOT NULL,
    headers    JSONB,                  -- a JSON object or NULL
    at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel_id, seq)
);

-- Idempotency keys: one row per (sender, client id) committed within the
-- de-duplication window. digest covers body and headers so that a reused
-- key with other content is told apart from a resend.
CREATE TABLE message_dedup (
    sender     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    channel_id BIGINT NOT NULL REFERENCES channels (id),
    seq        BIGINT NOT NULL,
    digest     BYTEA NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (sender, client_id)
);
CREATE INDEX message_dedup_at ON message_dedup (at);
