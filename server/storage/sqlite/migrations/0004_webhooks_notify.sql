-- Outgoing webhooks, their dead letters, push subscriptions and
-- per-conversation notification settings (services/webhook, services/push).

CREATE TABLE webhooks (
    id          TEXT    NOT NULL PRIMARY KEY,
    url         TEXT    NOT NULL,
    secret      BLOB    NOT NULL,
    event_types TEXT    NOT NULL,   -- JSON array of strings
    disabled    INTEGER NOT NULL DEFAULT 0,
    created_us  INTEGER NOT NULL,
    updated_us  INTEGER NOT NULL
);

CREATE TABLE webhook_dead_letters (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id   TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    attempts   INTEGER NOT NULL,
    last_error TEXT    NOT NULL,
    at_us      INTEGER NOT NULL
);
CREATE INDEX webhook_dead_letters_webhook ON webhook_dead_letters (webhook_id, id);

CREATE TABLE push_subscriptions (
    user_id    TEXT    NOT NULL,
    endpoint   TEXT    NOT NULL,
    p256dh     BLOB    NOT NULL,
    auth       BLOB    NOT NULL,
    provider   TEXT    NOT NULL,
    created_us INTEGER NOT NULL,
    PRIMARY KEY (user_id, endpoint)
);

CREATE TABLE notify_settings (
    user_id      TEXT    NOT NULL,
    conversation TEXT    NOT NULL,
    level        TEXT    NOT NULL CHECK (level IN ('all', 'mentions', 'none')),
    when_online  INTEGER NOT NULL DEFAULT 0,
    updated_us   INTEGER NOT NULL,
    PRIMARY KEY (user_id, conversation)
);
