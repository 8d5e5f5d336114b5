-- Outgoing webhooks, their dead letters, push subscriptions and
-- per-conversation notification settings (services/webhook, services/push).

CREATE TABLE webhooks (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    url         TEXT        NOT NULL,
    secret      BYTEA       NOT NULL,
    event_types TEXT        NOT NULL,   -- JSON array of strings
    disabled    BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE webhook_dead_letters (
    id         BIGSERIAL   PRIMARY KEY,
    webhook_id TEXT COLLATE "C" NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id   TEXT        NOT NULL,
    event_type TEXT        NOT NULL,
    payload    BYTEA       NOT NULL,
    attempts   INTEGER     NOT NULL,
    last_error TEXT        NOT NULL,
    at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_dead_letters_webhook ON webhook_dead_letters (webhook_id, id);

CREATE TABLE push_subscriptions (
    user_id    TEXT COLLATE "C" NOT NULL,
    endpoint   TEXT COLLATE "C" NOT NULL,
    p256dh     BYTEA       NOT NULL,
    auth       BYTEA       NOT NULL,
    provider   TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, endpoint)
);

CREATE TABLE notify_settings (
    user_id      TEXT COLLATE "C" NOT NULL,
    conversation TEXT COLLATE "C" NOT NULL,
    level        TEXT        NOT NULL CHECK (level IN ('all', 'mentions', 'none')),
    when_online  BOOLEAN     NOT NULL DEFAULT FALSE,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, conversation)
);
