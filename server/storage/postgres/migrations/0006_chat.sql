-- Chat state (server/storage/chat.go). The events themselves live in the
-- message log under each conversation's channel, which assigns the
-- per-conversation sequence numbers; these tables hold the current state
-- that history and access checks read. Times are Unix microseconds and
-- flags 0/1 integers in both backends, so one set of statements serves
-- both (sqlcommon/chat.go).

CREATE TABLE chat_users (
    id           TEXT    NOT NULL PRIMARY KEY,
    display_name TEXT    NOT NULL DEFAULT '',
    admin        BIGINT NOT NULL DEFAULT 0,
    disabled     BIGINT NOT NULL DEFAULT 0,
    created_us   BIGINT NOT NULL
);

CREATE TABLE chat_conversations (
    id         TEXT    NOT NULL PRIMARY KEY,
    kind       TEXT    NOT NULL,
    name       TEXT    NOT NULL DEFAULT '',
    topic      TEXT    NOT NULL DEFAULT '',
    archived   BIGINT NOT NULL DEFAULT 0,
    creator    TEXT    NOT NULL DEFAULT '',
    direct_key TEXT    NOT NULL DEFAULT '',
    overrides  TEXT    NOT NULL DEFAULT '',   -- JSON object or ''
    created_us BIGINT NOT NULL
);
-- Exactly one direct chat per pair of users.
CREATE UNIQUE INDEX chat_conversations_direct ON chat_conversations (direct_key) WHERE direct_key <> '';
CREATE INDEX chat_conversations_kind ON chat_conversations (kind, id);

CREATE TABLE chat_members (
    conversation TEXT    NOT NULL REFERENCES chat_conversations (id),
    user_id      TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    read_seq     BIGINT NOT NULL DEFAULT 0,
    joined_us    BIGINT NOT NULL,
    PRIMARY KEY (conversation, user_id)
);
CREATE INDEX chat_members_user ON chat_members (user_id, conversation);

CREATE TABLE chat_messages (
    conversation TEXT    NOT NULL REFERENCES chat_conversations (id),
    id           TEXT    NOT NULL,
    seq          BIGINT NOT NULL,
    author       TEXT    NOT NULL,
    text         TEXT    NOT NULL DEFAULT '',
    reply_to     TEXT    NOT NULL DEFAULT '',
    thread       TEXT    NOT NULL DEFAULT '',
    mentions     TEXT    NOT NULL DEFAULT '',  -- JSON array or ''
    mentions_all BIGINT NOT NULL DEFAULT 0,
    attachments  TEXT    NOT NULL DEFAULT '',  -- JSON array or ''
    edited       BIGINT NOT NULL DEFAULT 0,
    deleted      BIGINT NOT NULL DEFAULT 0,
    created_us   BIGINT NOT NULL,
    updated_us   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation, id)
);
CREATE UNIQUE INDEX chat_messages_seq ON chat_messages (conversation, seq);

-- Earlier versions of edited messages; removed when the message is.
CREATE TABLE chat_edits (
    conversation TEXT    NOT NULL,
    message_id   TEXT    NOT NULL,
    n            BIGINT NOT NULL,
    text         TEXT    NOT NULL,
    editor       TEXT    NOT NULL,
    log_seq      BIGINT NOT NULL,
    at_us        BIGINT NOT NULL,
    PRIMARY KEY (conversation, message_id, n)
);

-- One row per mentioned user, for unread-mention counts.
CREATE TABLE chat_mentions (
    conversation TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    seq          BIGINT NOT NULL,
    PRIMARY KEY (conversation, user_id, seq)
);

-- One reaction per user per emoji per message.
CREATE TABLE chat_reactions (
    conversation TEXT    NOT NULL,
    message_id   TEXT    NOT NULL,
    emoji        TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    at_us        BIGINT NOT NULL,
    PRIMARY KEY (conversation, message_id, emoji, user_id)
);
